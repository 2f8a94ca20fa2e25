#pragma once
/// @file
/// amsg::net::Cohort: a leader's view of its workers, by rank, and the fan-out
/// operations that reach them all (broadcast, scatter) with one outcome per worker.
///
/// @code
///   Node leader{{.listen = {"tcp://10.0.0.1:5555"}}};
///   Cohort cohort{leader};
///   cohort.add("tcp://10.0.0.2:5555");               // rank 0: a static member
///   cohort.accept_joins();                           // and workers that announce themselves
///   leader.start();
///   cohort.wait_ready(8, 10s);
///   FanoutResult r = co_await cohort.broadcast("offload", blocks, {"off-7", 500ms});
///   for (std::size_t i = 0; i < r.outcomes.size(); ++i)  // rank r.ranks[i]
///     if (!r.outcomes[i].is_success()) ...
///
///   // on a worker (which listens on tcp://10.0.0.2:5555):
///   std::uint32_t rank = Cohort::join(worker, "tcp://10.0.0.1:5555", "tcp://10.0.0.2:5555");
/// @endcode
///
/// Membership: a static list (add()), or workers that dial the leader and
/// announce themselves (accept_joins() on the leader, Cohort::join() on the
/// worker). Either way the leader dials each worker: a worker must listen. A
/// member is ready once the leader's hello exchange with it completed; it
/// leaves when the leader loses it (no PING for heartbeat_timeout) or sees a
/// new connection (a reconnect, or a restarted process), and joins again when
/// the connection is back. Every fan-out goes to the members of the
/// moment, ready or not: one that is still connecting gets the message once it
/// is ready, or ends `peer unreachable`; one that dies ends `peer lost`.
///
/// Threads: every member is thread-safe. The cohort must be destroyed before
/// its node (declare it after the node).

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <asio/async_result.hpp>
#include <asio/use_awaitable.hpp>

#include "amsg/export.hpp"
#include "amsg/net/detail/completion.hpp"
#include "amsg/net/fanout.hpp"
#include "amsg/net/node.hpp"
#include "amsg/net/peer.hpp"
#include "amsg/payload.hpp"

namespace amsg::net {

/// One worker of a cohort, as the leader sees it now.
struct CohortMember {
  std::uint32_t rank = 0;                   ///< unique in the cohort
  std::string address;                      ///< where the leader dials it
  PeerId peer{};                            ///< the leader's connection to it
  PeerState state = PeerState::connecting;  ///< ready: it can be reached now
  std::string identity;                     ///< its node's identity (empty until the first hello)
  std::vector<std::string> handlers;        ///< the types it serves (as of its last hello)
};

/// A change of membership, as seen by Cohort::on_change() callbacks.
struct CohortEvent {
  /// What happened to the member.
  enum class Kind : std::uint8_t {
    joined,  ///< the member became ready (first, or again after it left)
    left,    ///< the member stopped being ready: lost, restarted, or shutting down
  };
  Kind kind = Kind::joined;  ///< joined or left
  std::uint32_t rank = 0;    ///< the member's rank
  std::string address;       ///< where the leader dials it
};

/// How a cohort watches its members.
struct CohortOptions {
  /// How often the members' connections are looked at (joins and leaves are
  /// seen within this, after the node itself noticed them).
  std::chrono::milliseconds watch_interval{50};
};

/// A leader's workers, by rank, and the operations that reach them all.
class AMSG_EXPORT Cohort {
 public:
  /// A cohort of `leader`'s peers; it starts watching at once (before or after leader.start()).
  explicit Cohort(Node& leader, CohortOptions options = {});
  /// Ends the cohort's use of its members' peers, as remove() does.
  ~Cohort();
  Cohort(const Cohort&) = delete;
  Cohort& operator=(const Cohort&) = delete;

  /// Adds the worker listening at `address` (Node::connect() dials it), with
  /// `rank`, or the lowest free rank; returns its rank. Adding an address again
  /// returns its rank. Throws std::invalid_argument when `rank` belongs to
  /// another address or the address is already there with another rank, and
  /// NetworkError for an address no link serves.
  std::uint32_t add(const std::string& address, std::optional<std::uint32_t> rank = std::nullopt);
  /// Removes the member of `rank` (a ready member's leave is reported to
  /// on_change()); false if there is none. The cohort's use of its peer ends
  /// (Node::disconnect()): the connection closes, once the calls already sent
  /// on it have ended, unless the node uses it otherwise too.
  bool remove(std::uint32_t rank);
  /// Serves announcements (message type `amsg.cohort.join`) on the leader's manager:
  /// a worker that calls join() is add()ed, and the call's answer is its rank.
  void accept_joins();

  /// The members now, in rank order.
  [[nodiscard]] std::vector<CohortMember> members() const;
  /// How many members are ready now.
  [[nodiscard]] std::size_t ready_count() const;
  /// The leader's connection to the member of `rank`; nullopt if there is none.
  [[nodiscard]] std::optional<PeerId> peer(std::uint32_t rank) const;
  /// Waits until at least `count` members are ready (and their joins were
  /// reported to on_change()); false if `timeout` passes first. Blocks: not
  /// from the node's own pool.
  bool wait_ready(std::size_t count, std::chrono::milliseconds timeout);
  /// Calls `callback` on each join and leave (from the node's executor; keep it
  /// short, and do not destroy the cohort from it). None runs once ~Cohort() returned.
  void on_change(std::function<void(const CohortEvent&)> callback);

  /// One message to every member. Completion signature: void(FanoutResult), with
  /// one outcome per member in rank order (the responses of all: a gather).
  /// Throws std::invalid_argument, before anything is sent, for a type or id
  /// over the wire's limits, or a quorum larger than the cohort.
  template <typename CompletionToken = const asio::use_awaitable_t<>&>
  auto broadcast(std::string type, Payload payload, FanoutOptions options = {},
                 CompletionToken&& token = asio::use_awaitable) {
    check(type, options, nullptr);  // throws here, never inside the initiation (a coroutine's would terminate)
    return asio::async_initiate<CompletionToken, void(FanoutResult)>(
        // NOLINTNEXTLINE(performance-unnecessary-value-param): moved on; Asio passes them as rvalues
        [this](auto handler, std::string t, Payload p, FanoutOptions o) {
          start_broadcast(t, std::move(p), o, completion(std::move(handler)));
        },
        token, std::move(type), std::move(payload), std::move(options));
  }
  /// A different payload per rank (a par_map): each rank in `payloads` gets
  /// its own. Completion signature: void(FanoutResult), in rank order. Throws
  /// std::invalid_argument, before anything is sent, for a rank that is not a
  /// member (and as broadcast()). A member removed between that check and the
  /// sending ends `bad_address` (not run).
  template <typename CompletionToken = const asio::use_awaitable_t<>&>
  auto scatter(std::string type, std::map<std::uint32_t, Payload> payloads, FanoutOptions options = {},
               CompletionToken&& token = asio::use_awaitable) {
    check(type, options, &payloads);
    return asio::async_initiate<CompletionToken, void(FanoutResult)>(
        // NOLINTNEXTLINE(performance-unnecessary-value-param): moved on; Asio passes them as rvalues
        [this](auto handler, std::string t, std::map<std::uint32_t, Payload> p, FanoutOptions o) {
          start_scatter(t, std::move(p), o, completion(std::move(handler)));
        },
        token, std::move(type), std::move(payloads), std::move(options));
  }
  /// The notified form: one message to every member, each asking for an outcome
  /// on the leader's notification channel (manager().receive() & co) with the id
  /// "{id}#{rank}". Blocks while a peer's queue is full (as Node::send()).
  /// Returns the ranks sent to.
  std::vector<std::uint32_t> broadcast_notified(const std::string& type, const Payload& payload, const std::string& id,
                                                std::chrono::milliseconds timeout = std::chrono::milliseconds{0});

  /// A worker's announcement: `worker` dials the leader at `leader_address`
  /// and asks to be added as the member at `own_address` (an address the leader
  /// can dial, on which `worker` listens) with `rank` (or any free rank).
  /// Returns the rank; throws NetworkError when the leader refused or did not
  /// answer within `timeout` (which must be positive), std::invalid_argument for
  /// a timeout that is not. Blocks: not from the node's own pool. It joins once;
  /// CohortMembership joins again whenever the leader restarts.
  static std::uint32_t join(Node& worker, const std::string& leader_address, const std::string& own_address,
                            std::optional<std::uint32_t> rank = std::nullopt,
                            std::chrono::milliseconds timeout = std::chrono::seconds{10});

 private:
  struct State;
  template <typename Handler>
  std::unique_ptr<detail::Completion<FanoutResult>> completion(Handler&& handler) {
    return std::make_unique<detail::HandlerCompletion<FanoutResult, std::decay_t<Handler>>>(
        std::forward<Handler>(handler), node_.executor(), &Cohort::never_inline, nullptr);
  }
  static bool never_inline(const void* /*unused*/) { return false; }
  void check(const std::string& type, const FanoutOptions& options,
             const std::map<std::uint32_t, Payload>* payloads) const;
  void start_broadcast(const std::string& type, Payload payload, const FanoutOptions& options,
                       std::unique_ptr<detail::Completion<FanoutResult>> done);
  void start_scatter(const std::string& type, std::map<std::uint32_t, Payload>&& payloads, const FanoutOptions& options,
                     std::unique_ptr<detail::Completion<FanoutResult>> done);

  Node& node_;
  std::shared_ptr<State> state_;
};

}  // namespace amsg::net

#pragma once
/// @file
/// amsg::net::Node: a Manager on the network. Active messages between processes
/// and hosts, with each notification routed back to the sender. Addresses pick
/// the link: tcp:// and ipc:// (ZeroMQ); others through NodeOptions::links.
///
/// @code
///   Node a{{.listen = {"ipc:///tmp/a.ipc"}}};        Node b{};
///   a.manager().register_handler("echo", ...);       auto peer = b.connect("ipc:///tmp/a.ipc");
///   a.start();                                        b.start();
///                                                     auto reply = co_await b.call(peer, "echo", bytes);
/// @endcode
///
/// Three ways to send, all on the seed's notification model:
///  - fire-and-forget:  send(peer, type, payload)
///  - notified:         send(peer, type, payload, {id}): the outcome
///                      "{id}:ok" / "{id}:err(...)" arrives on manager()'s notification
///                      channel (receive() & co);
///  - call:             co_await call(peer, type, payload) (or call(..., asio::use_future),
///                      or a callback): the outcome, with the bytes the remote handler put
///                      in Message::response, comes back to the caller (request/response).
/// Each notified send or call ends in exactly one outcome (Notification::code tells
/// which, as an amsg::errc): ok, the remote's error,
/// "cancelled", "timeout" (its deadline passed; a later answer is discarded and
/// counted), "peer lost" (the peer went silent for heartbeat_timeout), "peer
/// unreachable" (no answer to a connection attempt within heartbeat_timeout),
/// "remote shutting down", "node shutting down" (this node's shutdown), or
/// "incompatible protocol version ...".
///
/// Threads: the node's links and tables live on the manager's pool (its
/// executor itself with one thread, the default; a strand of it with more),
/// beside the handlers; no thread of its own. Every member is thread-safe.
/// Coroutines running on executor() call without any thread hop; code on the pool
/// must not use the blocking send(). Do not call shutdown() from the pool itself.

#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/use_awaitable.hpp>

#include "amsg/export.hpp"
#include "amsg/manager.hpp"
#include "amsg/net/detail/completion.hpp"
#include "amsg/net/node_options.hpp"
#include "amsg/net/node_stats.hpp"
#include "amsg/net/peer.hpp"
#include "amsg/net/send_options.hpp"
#include "amsg/notification.hpp"
#include "amsg/payload.hpp"
#include "amsg/send_status.hpp"
#include "amsg/stats.hpp"

namespace amsg::net {

class Session;

/// A node between processes and hosts: a manager running handlers for remote senders, and the calls this node makes to
/// its peers.
class AMSG_EXPORT Node {
 public:
  /// A node that is not started yet; throws InvalidOptionsError for bad options.
  explicit Node(NodeOptions options = {});
  ~Node();  ///< shutdown(0) when still running
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  /// Register handlers here (before or after start()).
  Manager& manager() noexcept;

  /// Binds the listen addresses (throws NetworkError naming the address), starts
  /// the manager and the node's I/O. Throws LifecycleError when called twice.
  void start();
  /// Stops taking messages (senders get closed, remote senders err(remote shutting
  /// down)), waits up to `drain` for this node's own calls and the manager's
  /// running handlers, ends what remains ("node shutting down" / cancelled), sends
  /// the last replies and closes the sockets. Idempotent.
  ShutdownReport shutdown(std::chrono::milliseconds drain = std::chrono::seconds{5});

  /// The node's unique name (NodeOptions::identity, or generated).
  [[nodiscard]] const std::string& identity() const noexcept;
  /// The bound addresses, with tcp ports resolved (valid after start()).
  [[nodiscard]] std::vector<std::string> endpoints() const;

  /// A connection to `address`; returns at once (the hello exchange runs in the
  /// background; messages sent meanwhile wait in the peer's queue and the link).
  /// The same address gives the same PeerId (while its slot is its own: see
  /// disconnect()). A peer whose identity turns out to
  /// be this node's becomes local. Throws NetworkError naming a malformed address
  /// or one no link serves, or when 4,095 peers are connected already (a
  /// disconnected peer's slot is reused once its calls have ended: see PeerId).
  PeerId connect(const std::string& address);
  /// Ends one use of `peer`: each connect() is one use, and when the last one
  /// ends the peer is disconnected (returns at once; the rest runs on the
  /// node's executor): messages still queued for it, and what is sent to it
  /// from then on, end err(disconnected), never sent, never run; calls already
  /// sent keep the connection and its heartbeats until each has ended as it
  /// would have (its REPLY, timeout, peer lost...), and then it closes.
  /// connect() with its address reopens it under the same PeerId (while it
  /// still drains, as it was), unless its slot went to another address
  /// meanwhile: then the old PeerId names no peer and connect() gives a new one.
  /// No effect on self(), on an unknown PeerId, or on a peer with no use left.
  void disconnect(PeerId peer);
  /// This node itself: messages skip the socket.
  [[nodiscard]] PeerId self() const noexcept;
  /// Waits until the hello exchange with `peer` has completed (or it is local).
  bool wait_ready(PeerId peer, std::chrono::milliseconds timeout);
  /// What is known of `peer` now; nullopt for an unknown PeerId.
  [[nodiscard]] std::optional<PeerInfo> peer_info(PeerId peer) const;
  /// Asks the peer for its current handler list (a fresh hello exchange).
  std::future<std::vector<std::string>> query_handlers(PeerId peer);

  // --- sending: one function per operation; the asynchronous ones take an Asio
  // completion token that picks the form (asio::use_awaitable, the default;
  // asio::use_future; a callback; asio::experimental::deferred...). Their
  // handlers run on their associated executor, or else on executor(); a
  // coroutine on executor() is resumed without a hand-off. ---

  /// Queues a message for `peer`: fire-and-forget, or notified when
  /// options.notify_id is set (its one outcome then arrives on manager()'s
  /// notification channel). Blocks while the peer's queue or the outstanding-call
  /// limit is full; ok, or closed once shutdown has begun. Throws
  /// std::invalid_argument for a type or id over the wire's limits, or an unknown peer.
  SendStatus send(PeerId peer, std::string type, Payload payload, SendOptions options = {});
  /// As send(), but never waits: full instead.
  SendStatus try_send(PeerId peer, std::string type, Payload payload, SendOptions options = {});
  /// As send(), asynchronously. Completion signature: void(SendStatus): ok once
  /// queued, closed once shutdown has begun.
  template <typename CompletionToken = const asio::use_awaitable_t<>&>
  auto async_send(PeerId peer, std::string type, Payload payload, SendOptions options = {},
                  CompletionToken&& token = asio::use_awaitable) {
    check(peer, type, options.notify_id ? std::string_view{*options.notify_id} : std::string_view{},
          options.idempotent);
    if constexpr (std::is_same_v<std::decay_t<CompletionToken>, asio::use_awaitable_t<>>) {
      // Queued at once in the common case: no suspension, no hand-off.
      return async_send_awaitable(peer, std::move(type), std::move(payload), std::move(options));
    } else {
      return asio::async_initiate<CompletionToken, void(SendStatus)>(
          // NOLINTNEXTLINE(performance-unnecessary-value-param): moved on; Asio passes them as rvalues
          [this](auto handler, PeerId to, std::string t, Payload p, SendOptions o) {
            start_send(to, std::move(t), std::move(p), std::move(o), completion<SendStatus>(std::move(handler)));
          },
          token, peer, std::move(type), std::move(payload), std::move(options));
    }
  }

  /// Request/response: sends and completes with the outcome, carrying the bytes
  /// the remote handler put in Message::response (Notification::payload).
  /// Completion signature: void(Notification). Waits (without blocking a
  /// thread) while the peer's queue or the outstanding-call limit is full. Every
  /// call ends in exactly one outcome; remote failures are outcomes, not
  /// exceptions (test Notification::code). Throws std::invalid_argument as send().
  ///
  /// Cancellation, the Asio way: a handler with a cancellation slot (a
  /// coroutine's own, or asio::bind_cancellation_slot) may cancel the call. A
  /// call not yet sent ends cancelled (errc::cancelled, "{id}:err(cancelled)")
  /// and is never sent: at once while the peer is connecting, else when the
  /// node would have sent it (behind backpressure, or once the peer's queue has
  /// room). terminal or partial
  /// cancellation also ends a call already sent, at once, and a CANCEL goes to
  /// the peer, which does not run the message if it has not started it and
  /// cancels its handler if it has (docs/wire-protocol.md, "CANCEL"); its REPLY
  /// is then late, and the call may have run, as one that ended `peer lost`.
  /// (An idempotent call's CANCEL is ignored: the peer runs it to the end and
  /// remembers that outcome for retries.)
  /// total cancellation (no side effects) leaves a call already sent alone. A
  /// message handler's coroutine has a slot: its deadline, a CANCEL for it or
  /// shutdown cancels the calls it awaits.
  template <typename CompletionToken = const asio::use_awaitable_t<>&>
  auto call(PeerId peer, std::string type, Payload payload, CallOptions options = {},
            CompletionToken&& token = asio::use_awaitable) {
    check(peer, type, options.notify_id, options.idempotent);
    return asio::async_initiate<CompletionToken, void(Notification)>(
        // NOLINTNEXTLINE(performance-unnecessary-value-param): moved on; Asio passes them as rvalues
        [this](auto handler, PeerId to, std::string t, Payload p, CallOptions o) {
          std::shared_ptr<detail::CallCancellation> cancellation;
          if (auto slot = asio::get_associated_cancellation_slot(handler); slot.is_connected()) {
            // Assigned before the call starts: it may end (and its handler run) at once on another thread.
            cancellation = make_cancellation();
            slot.assign([c = cancellation](asio::cancellation_type type) {
              // total promises no side effects: only a call not yet sent may go.
              const auto any_effect = asio::cancellation_type::terminal | asio::cancellation_type::partial;
              if ((type & any_effect) != asio::cancellation_type::none) {
                c->request(false);
              } else if ((type & asio::cancellation_type::total) != asio::cancellation_type::none) {
                c->request(true);
              }
            });
          }
          start_call(to, std::move(t), std::move(p), std::move(o), completion<Notification>(std::move(handler)),
                     std::move(cancellation));
        },
        token, peer, std::move(type), std::move(payload), std::move(options));
  }

  /// The node's counters and its manager's, now.
  [[nodiscard]] NodeStats stats() const;
  /// One entry per peer this node connected to (not the ones that connected to it).
  [[nodiscard]] std::vector<PeerStats> peer_stats() const;
  /// The node's strand (on the manager's pool; with one pool thread, the pool's executor).
  [[nodiscard]] asio::any_io_executor executor() const;

 private:
  template <typename Result, typename Handler>
  std::unique_ptr<detail::Completion<Result>> completion(Handler&& handler) {
    return std::make_unique<detail::HandlerCompletion<Result, std::decay_t<Handler>>>(
        std::forward<Handler>(handler), executor(), &Node::on_node_thread, impl_.get());
  }
  static bool on_node_thread(const void* session);
  /// Throws std::invalid_argument for an unknown peer, a type or id over the wire's limits, or an
  /// idempotent message without an id.
  void check(PeerId peer, std::string_view type, std::string_view notify_id, bool idempotent = false) const;
  void start_send(PeerId peer, std::string type, Payload payload, SendOptions options,
                  std::unique_ptr<detail::Completion<SendStatus>> done);
  asio::awaitable<SendStatus> async_send_awaitable(PeerId peer, std::string type, Payload payload, SendOptions options);
  void start_call(PeerId peer, std::string type, Payload payload, CallOptions options,
                  std::unique_ptr<detail::Completion<Notification>> done,
                  std::shared_ptr<detail::CallCancellation> cancellation = nullptr);
  [[nodiscard]] std::shared_ptr<detail::CallCancellation> make_cancellation() const;

  std::shared_ptr<Session> impl_;
};

}  // namespace amsg::net

#pragma once
// Listener: the listening half of a session (Seastar RPC's `server` and its
// connections).
//
// Frames from connecting peers ("clients") arrive through every link the node
// listens on. Each MSG takes an inflight slot (the client's key, call id and
// bytes) until it has ended: its REPLY has left, or the manager released it
// (fire-and-forget). Workers deliver both into a bounded queue; one flush per
// burst handles them, one frame per client per burst.
//
// Budgets (listener_admission.cpp): a client may have max_inflight_per_client
// messages (and bytes) here; past that it is refused err(overloaded) while
// others are connected, or slowed (reading pauses) when alone. Messages go into
// the manager in turns: while two or more clients have work, each has at most
// fair_share messages in the manager and the rest wait in the client's own
// queue, so no client's messages queue behind another's flood.
//
// A REPLY the link cannot take yet waits in a per-client backlog and frees its
// slot there, so a client that stops reading holds no slot, only its own
// backlog, bounded in bytes: past the bound the client is cut off (its backlog
// dropped, its frames ignored until it says HELLO again). Reading pauses while
// slots or bytes run short, the inbox is full or a lone client is over budget.

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <spdlog/logger.h>
#include <asio/awaitable.hpp>

#include "amsg/communication_layer.hpp"
#include "concurrency/bounded_queue.hpp"
#include "link/link.hpp"
#include "session/call.hpp"
#include "session/call_index.hpp"
#include "session/counters.hpp"
#include "session/idempotency.hpp"
#include "session/links.hpp"
#include "session/rate_limited_log.hpp"
#include "wire/codec.hpp"

namespace amsg::net {

struct ListenerOptions {
  std::size_t max_inflight = 0;
  std::size_t max_payload = 0;
  std::chrono::milliseconds heartbeat_timeout{};
  std::size_t max_backlog_bytes_per_client = 0;
  std::size_t max_inflight_per_client = 0;
  std::size_t max_inflight_bytes_per_client = 0;
  std::size_t max_inflight_bytes = 0;
  std::size_t fair_share = 0;
  IdempotencyCache::Limits idempotency{};
};

class Listener {
 public:
  Listener(const SessionExecutor& executor, ListenerOptions options, const Links& links, SessionCounters& counters,
           std::shared_ptr<spdlog::logger> log, const std::atomic<Lifecycle>& state);
  ~Listener();

  [[nodiscard]] std::shared_ptr<CommunicationLayer> layer();
  // The events the link at `index` (in Links::all()) reports to.
  ListenerEvents& events_for(std::size_t index);
  std::function<Payload()> make_hello_ack;  // the current HELLO_ACK frame: set by the session
  std::function<void()> on_drained;         // the manager drained (CommunicationLayer::on_drained)

  // --- on the executor ---
  void tick(Clock::time_point now);  // heartbeat: PING clients, forget long-gone ones
  void say_bye();                    // shutdown begins: BYE to every client that said HELLO
  void stop();                       // the manager drained: send the last replies, stop reading
  // After the executor stopped: the last replies, waiting up to `linger` for room.
  void final_flush(std::chrono::milliseconds linger);

 private:
  class Layer;
  struct Port;
  struct Waiting {
    Message message;
    std::uint32_t slot = 0;
  };
  struct Client {
    Clock::time_point last_rx{};
    bool hello = false;
    std::uint32_t max_payload = 0;   // announced in its HELLO; 0: not known
    std::size_t backlog_bytes = 0;   // frames waiting in backlog_ for it
    bool cut_off = false;            // frames ignored until its next HELLO (see cut_off())
    std::size_t inflight = 0;        // messages read and not ended (waiting or in the manager)
    std::size_t inflight_bytes = 0;  // their payload bytes
    std::size_t running = 0;         // of those, in the manager
    std::deque<Waiting> waiting;     // read, waiting for their turn
    CallIndex calls;                 // its calls here (slots) by call id, for CANCEL
    bool in_turns = false;           // in turns_
    bool over_budget = false;        // alone and over its budget: reading pauses
    // Its refusals (overloaded), in episodes: refusals less than a heartbeat
    // timeout apart, while it stays over 3/4 of its budget. The first
    // heartbeat timeout of an episode is not counted; after it, refusals are
    // counted per heartbeat timeout (see admit()).
    Clock::time_point first_refusal{};
    Clock::time_point last_refusal{};
    Clock::time_point window_start{};
    std::size_t late_refusals = 0;
  };
  struct Inflight {
    std::string client;              // link index byte + the link's client name
    std::uint64_t call_id = 0;       // 0: fire-and-forget
    std::uint32_t max_response = 0;  // the client's announced limit (0: not known)
    std::size_t bytes = 0;
    bool running = false;    // in the manager
    bool cancelled = false;  // its client sent CANCEL while it was in the manager (Ingress::cancel)
    std::string idem_key;    // the first message with this idempotency key (empty: not idempotent)
  };
  struct ReplyItem {
    std::uint64_t slot = 0;
    Notification notification;
    bool reply = true;  // false: a fire-and-forget message ended (nothing to send)
  };
  struct Backlogged {
    Frame frame;
    std::size_t replies = 0;  // REPLYs in it (counted as dropped if it never leaves)
  };

  bool accepting() const noexcept;
  // `body`: the frame came in two parts, `frame` then `body` (a MSG's
  // payload, taken without a copy when `frame` is its whole header).
  void on_frame(std::string_view key, std::span<const std::byte> frame, std::size_t parts, Payload* body = nullptr);
  void on_batch(std::string_view key, std::span<const std::byte> frame, std::uint32_t max_response);
  void on_msg(std::string_view key, std::span<const std::byte> frame, std::uint32_t max_response,
              Payload* body = nullptr);
  void on_hello(std::string_view key, std::span<const std::byte> frame);
  void on_cancel(std::string_view key, std::uint64_t call_id);
  void refuse(std::string_view key, std::span<const std::byte> frame, wire::ErrorCode code, std::string_view text);
  void reply_error(std::string_view key, std::uint64_t call_id, wire::ErrorCode code, std::string_view text);
  void send_error(std::string_view key, wire::ErrorCode code, std::string_view text);
  void malformed(std::string_view why);
  // `must`: REPLY, HELLO_ACK and BYE wait in the client's backlog when the link
  // says again; PING and ERROR frames are dropped instead.
  void send(std::string_view key, Frame&& frame, bool must, std::size_t replies = 0);
  void cut_off(const std::string& key, Client& client, std::string_view why);
  [[nodiscard]] bool is_cut_off(std::string_view key) const;
  LinkSend try_send(std::string_view key, Frame& frame);
  bool drain_backlog();  // true when a frame left
  void forget(const std::string& key);
  void deliver(std::uint64_t slot, Notification&& n);
  void flush_replies();
  void send_replies(std::size_t first, std::size_t last);
  void resume_reading();
  void queue_item(ReplyItem&& item);
  // listener_admission.cpp
  void admit(std::string_view key, Message&& m, std::uint64_t call_id, std::uint32_t max_response,
             std::string&& idem_key);
  [[nodiscard]] bool over_budget(const Client& c, std::size_t bytes) const noexcept;
  [[nodiscard]] bool alone(std::string_view key) const;
  void refuse_overloaded(std::string_view key, std::uint64_t call_id, const Client& c);
  [[nodiscard]] bool may_run(const Client& c) const noexcept;
  bool submitted(Client& c, std::uint32_t slot, SendStatus s);
  bool take_turns();
  asio::awaitable<void> pump();
  void feed();
  void end(std::uint32_t slot);
  void release(std::uint64_t slot);
  [[nodiscard]] bool erasable(const std::string& key) const;
  // listener_idempotency.cpp
  bool first_of_key(std::string_view key, const wire::MsgHeader& h, std::uint32_t max_response, std::string& idem_key);
  void end_of_key(const std::string& idem_key, wire::Status status, wire::ErrorCode code, std::string_view error,
                  std::span<const std::byte> body, bool keep);
  void send_outcome(std::string_view key, std::uint64_t call_id, std::uint32_t max_response, wire::Status status,
                    wire::ErrorCode code, std::string_view error, std::span<const std::byte> body);

  const SessionExecutor& executor_;
  const ListenerOptions options_;
  const Links& links_;
  SessionCounters& counters_;
  std::shared_ptr<spdlog::logger> log_;
  const std::atomic<Lifecycle>& state_;
  Ingress ingress_;
  std::shared_ptr<Layer> layer_;
  std::vector<std::unique_ptr<Port>> ports_;

  // Cross-thread: outcomes from workers.
  amsg::detail::BoundedQueue<ReplyItem> replies_;
  std::atomic<bool> replies_posted_{false};

  // On the executor.
  bool stopped_ = false;
  std::unordered_map<std::string, Client> clients_;
  std::unordered_map<std::string, std::deque<Backlogged>> backlog_;
  std::vector<Inflight> slab_;
  std::vector<std::uint32_t> free_slots_;
  std::deque<std::string> turns_;  // clients with messages waiting, in turn order
  std::size_t busy_clients_ = 0;   // clients with messages here
  Clock::time_point contended_until_{};
  Clock::time_point now_{};         // of the frame being read
  std::size_t inflight_bytes_ = 0;  // every client's
  std::size_t over_budget_ = 0;     // lone clients over their budget
  bool pump_running_ = false;       // the inbox is full: the pump waits for room
  std::vector<std::span<const std::byte>> batch_entries_;
  std::vector<ReplyItem> reply_batch_;
  std::string key_;  // on_frame()'s scratch
  RateLimitedLog malformed_log_;
  RateLimitedLog drop_log_;
  RateLimitedLog cut_off_log_;
  RateLimitedLog overload_log_;
  IdempotencyCache idempotency_;
  std::uint64_t cut_offs_ = 0;  // clients cut off so far: on_batch() checks its client only when it changes
};

}  // namespace amsg::net

#pragma once
// What the session keeps for one outgoing message: the queued item (OutItem),
// the waiting call (Pending), where its outcome goes (Completion), and the
// executor everything runs on (SessionExecutor).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <typeinfo>

#include <asio/any_io_executor.hpp>
#include <asio/io_context.hpp>
#include <asio/strand.hpp>

#include "amsg/errc.hpp"
#include "amsg/net/detail/completion.hpp"
#include "amsg/notification.hpp"
#include "amsg/payload.hpp"
#include "concurrency/busy_loop.hpp"

namespace amsg::net {

using Clock = std::chrono::steady_clock;

// Where the session's links, timers and tables live: a strand of the manager's
// pool, or, when the pool has one thread, the pool itself, which is serial
// already (no strand queue and hand-off around every completion).
class SessionExecutor {
 public:
  SessionExecutor(const asio::any_io_executor& pool, bool one_thread) {
    // (Asio 1.22's target<T>() does not check the type: it casts.)
    if (one_thread && pool.target_type() == typeid(asio::io_context::executor_type)) {
      io_.emplace(*pool.target<asio::io_context::executor_type>());
      executor_ = *io_;
    } else if (one_thread && pool.target_type() == typeid(amsg::detail::BusyLoop::BasicExecutor)) {
      busy_.emplace(*pool.target<amsg::detail::BusyLoop::BasicExecutor>());
      executor_ = *busy_;
    } else {
      strand_.emplace(asio::make_strand(pool));
      executor_ = *strand_;
    }
  }
  [[nodiscard]] const asio::any_io_executor& get() const noexcept { return executor_; }
  [[nodiscard]] bool running_in_this_thread() const noexcept {
    if (strand_) return strand_->running_in_this_thread();
    return io_ ? io_->running_in_this_thread() : busy_->running_in_this_thread();
  }

 private:
  asio::any_io_executor executor_;
  std::optional<asio::strand<asio::any_io_executor>> strand_;
  std::optional<asio::io_context::executor_type> io_;
  std::optional<amsg::detail::BusyLoop::BasicExecutor> busy_;  // the pool is a busy loop (ManagerOptions::busy_poll)
};

// Where a call's outcome goes when it does not go to the notification channel.
using Completion = detail::Completion<Notification>;

class Session;

// A call its caller may cancel (Node::call with a connected cancellation slot),
// shared by the slot's handler and the session. The fields are the session's,
// on its executor.
struct CallCancel final : detail::CallCancellation, std::enable_shared_from_this<CallCancel> {
  explicit CallCancel(std::weak_ptr<Session> s) : session{std::move(s)} {}
  void request(bool unsent_only) noexcept override;  // posts Session::cancel_call
  std::weak_ptr<Session> session;
  std::uint64_t call_id = 0;  // once sent (0: still queued)
  std::uint32_t peer = 0;     // the slot of the peer it goes to (set when the call starts)
  bool requested = false;
};

// A message waiting in a peer's queue.
struct OutItem {
  std::string type;
  Payload payload;
  std::string notify_id;
  bool notified = false;
  bool idempotent = false;  // MSG flag 0x02: notify_id is an idempotency key
  Clock::time_point deadline = Clock::time_point::max();
  std::unique_ptr<Completion> completion;  // null: the notification channel
  std::shared_ptr<CallCancel> cancel;      // null: not cancellable
  std::uint32_t peer = 0;                  // the PeerId value it was sent to (its slot may change hands)
};

// A call sent (or handed to this node's own manager) and waiting for its outcome.
struct Pending {
  std::uint64_t seq = 0;  // orders calls by when they were sent
  std::uint32_t peer = 0;
  std::string notify_id;
  std::string type;
  Clock::time_point deadline = Clock::time_point::max();
  Clock::time_point sent_at;
  std::unique_ptr<Completion> completion;
};

// The session's lifecycle. Intake (new sends, new remote messages) is open
// only while running.
enum class Lifecycle : std::uint8_t { created, running, closing, stopped };

[[nodiscard]] inline bool intake_closed(const std::atomic<Lifecycle>& state) noexcept {
  return state.load(std::memory_order_acquire) >= Lifecycle::closing;
}

// An error outcome.
inline Notification failure(errc code, std::string text) {
  Notification n;
  n.outcome = code == errc::cancelled ? Outcome::cancelled : Outcome::error;
  n.error = std::move(text);
  n.code = code;
  return n;
}

// The texts of the session's own outcomes (docs/wire-protocol.md, "Outcomes").
inline constexpr const char* kPeerLost = "peer lost";
inline constexpr const char* kPeerUnreachable = "peer unreachable";
inline constexpr const char* kRemoteShuttingDown = "remote shutting down";
inline constexpr const char* kNodeShuttingDown = "node shutting down";
inline constexpr const char* kDisconnected = "disconnected";
inline constexpr const char* kTimeout = "timeout";
inline constexpr const char* kCancelled = "cancelled";

}  // namespace amsg::net

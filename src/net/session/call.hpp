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

#include <asio/any_io_executor.hpp>
#include <asio/associated_executor.hpp>
#include <asio/dispatch.hpp>
#include <asio/io_context.hpp>
#include <asio/strand.hpp>

#include "amsg/errc.hpp"
#include "amsg/notification.hpp"
#include "amsg/payload.hpp"

namespace amsg::net {

using Clock = std::chrono::steady_clock;

// Where the session's links, timers and tables live: a strand of the manager's
// pool, or, when the pool has one thread, the pool itself, which is serial
// already (no strand queue and hand-off around every completion).
class SessionExecutor {
 public:
  SessionExecutor(const asio::any_io_executor& pool, bool one_thread) {
    const auto* io = pool.target<asio::io_context::executor_type>();
    if (one_thread && io != nullptr) {
      io_.emplace(*io);
      executor_ = *io;
    } else {
      strand_.emplace(asio::make_strand(pool));
      executor_ = *strand_;
    }
  }
  [[nodiscard]] const asio::any_io_executor& get() const noexcept { return executor_; }
  [[nodiscard]] bool running_in_this_thread() const noexcept {
    return strand_ ? strand_->running_in_this_thread() : io_->running_in_this_thread();
  }

 private:
  asio::any_io_executor executor_;
  std::optional<asio::strand<asio::any_io_executor>> strand_;
  std::optional<asio::io_context::executor_type> io_;
};

// Where a call's outcome goes when it does not go to the notification channel.
struct Completion {
  virtual ~Completion() = default;
  virtual void complete(Notification&& n) = 0;
};

// A completion handler (a coroutine's, a callback): resumed at once when it
// belongs on the session's executor and we are on it, else dispatched to its
// executor. The first case is what asio::dispatch does too, without wrapping
// the call in a type-erased function object first.
template <typename Handler>
struct HandlerCompletion final : Completion {
  HandlerCompletion(Handler&& h, const SessionExecutor& session) : handler{std::move(h)}, executor{session} {}
  void complete(Notification&& n) override {
    auto ex = asio::get_associated_executor(handler, executor.get());
    if (ex == executor.get() && executor.running_in_this_thread()) {
      std::move(handler)(std::move(n));
      return;
    }
    asio::dispatch(ex, [h = std::move(handler), n = std::move(n)]() mutable { std::move(h)(std::move(n)); });
  }
  Handler handler;
  const SessionExecutor& executor;
};

// A message waiting in a peer's queue.
struct OutItem {
  std::string type;
  Payload payload;
  std::string notify_id;
  bool notified = false;
  Clock::time_point deadline = Clock::time_point::max();
  std::unique_ptr<Completion> completion;  // null: the notification channel
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
inline constexpr const char* kTimeout = "timeout";

}  // namespace amsg::net

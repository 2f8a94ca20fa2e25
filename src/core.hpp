#pragma once
// detail::Core: the shared state behind a Manager (and the Ingress handles that
// transports hold). Private to the library.
//
// Threads and ownership:
//  - `threads` pool threads run io_context::run(). On them run `concurrency` lanes:
//    coroutines, each on its own strand, that pop a message, run its handler to
//    completion (inline when it never suspends) and publish its notification.
//    N lanes is the concurrency limit: it cannot be exceeded by construction.
//  - Senders push into the bounded inbox from any thread. A parked lane is woken
//    only when one is parked and no other wake-up is already on its way, so a
//    burst costs one wake-up, not one per message.
//  - Every counter has a single writer (its lane); stats() sums them.

#include <array>
#include <asio/any_io_executor.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/defer.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>
#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "amsg/communication_layer.hpp"
#include "amsg/handler_registry.hpp"
#include "amsg/manager.hpp"
#include "amsg/manager_options.hpp"
#include "amsg/message.hpp"
#include "amsg/notification.hpp"
#include "amsg/send_status.hpp"
#include "amsg/stats.hpp"
#include "concurrency/async_wait_list.hpp"
#include "concurrency/bounded_queue.hpp"
#include "concurrency/busy_loop.hpp"
#include "concurrency/event_count.hpp"
#include "concurrency/signal.hpp"
#include "detail/handler_type_stats.hpp"
#include "detail/histogram.hpp"
#include "detail/pool.hpp"

namespace spdlog {
class logger;
}

namespace amsg::detail {

// Sets deliver_may_defer() for the deliver() calls in its scope.
class DeliverScope {
 public:
  explicit DeliverScope(bool may_defer) noexcept;
  ~DeliverScope();
  DeliverScope(const DeliverScope&) = delete;
  DeliverScope& operator=(const DeliverScope&) = delete;

 private:
  bool previous_;
};

struct MessageAccess {
  static ReplyRoute& route(Message& m) noexcept { return m.route_; }
  static std::int64_t& enqueued_ticks(Message& m) noexcept { return m.enqueued_ticks_; }
};

// A message on its way through the runtime, and later its notification, in one
// pooled block. Both rings carry pointers to envelopes, so a message's strings
// move once in (from the sender's Message), once into the notification and once
// out to the reader, and a ring slot is 16 bytes instead of three cache lines.
struct Envelope {
  explicit Envelope(Message&& m) noexcept : message{std::move(m)} {}
  Message message;
  Notification notification;
};

struct EnvelopeDeleter {
  void operator()(Envelope* e) const noexcept {
    e->~Envelope();
    pool_deallocate(e, sizeof(Envelope));
  }
};
using EnvelopePtr = std::unique_ptr<Envelope, EnvelopeDeleter>;

inline EnvelopePtr make_envelope(Message&& m) {
  return EnvelopePtr{::new (pool_allocate(sizeof(Envelope))) Envelope{std::move(m)}};
}

struct alignas(kCacheLine) LaneStats {
  SingleWriterCounter dispatched, ok, failed, unknown_type, timed_out, rejected, cancelled, notifications;
  LatencyHistogram latency;
};

struct Lane {
  // On an io_context pool, a lane runs on a strand of it. On a busy loop of one
  // thread, on the loop itself (serial already: no strand queue around every
  // step); of more threads, on a strand of the loop.
  Lane(std::size_t i, asio::io_context& io, std::optional<asio::any_io_executor> busy_executor)
      : index{i}, strand{asio::make_strand(io)}, busy_loop{std::move(busy_executor)} {}
  // Calls f with where the lane runs: the strand (its concrete type, no type
  // erasure on the default path) or the busy loop's executor.
  template <class F>
  decltype(auto) with_executor(F&& f) {
    return busy_loop ? std::forward<F>(f)(*busy_loop) : std::forward<F>(f)(strand);
  }
  template <class F>
  void post(F&& f) {
    with_executor([&](const auto& ex) { asio::post(ex, std::forward<F>(f)); });
  }
  template <class F>
  void defer(F&& f) {
    with_executor([&](const auto& ex) { asio::defer(ex, std::forward<F>(f)); });
  }
  // Lets other work on the lane's thread run (from the lane's coroutine).
  asio::awaitable<void> yield() {
    if (busy_loop) {
      co_await asio::post(*busy_loop, asio::use_awaitable);
    } else {
      co_await asio::post(strand, asio::use_awaitable);
    }
  }
  [[nodiscard]] asio::any_io_executor executor() const {
    return busy_loop ? *busy_loop : asio::any_io_executor{strand};
  }
  std::size_t index;
  asio::strand<asio::io_context::executor_type> strand;  // where the lane runs, unless `busy_loop`
  std::optional<asio::any_io_executor> busy_loop;        // ManagerOptions::busy_poll: where it runs then
  asio::cancellation_signal cancel;
  // Cancels a running handler when its message's deadline passes. Made on first
  // use: a timer brings the io_context's reactor to life, and a one-thread pool
  // with a reactor polls it (a system call) between handlers.
  std::optional<asio::steady_timer> deadline_timer;
  std::uint64_t runs = 0;     // handlers started: tells a stale deadline wake-up from a live one
  bool deadline_hit = false;  // the running handler was cancelled by its deadline
  bool cancel_hit = false;    // ... or by its sender (Core::cancel)
  // The routed message the lane took last (its layer and token; null: not
  // routed), for Core::cancel's check on the lane's strand.
  const void* current_layer = nullptr;
  std::uint64_t current_token = 0;
  std::shared_ptr<const HandlerRegistry::Snapshot> handlers;
  // The last lookup, valid while `handlers` is unchanged: streams of one type skip the hash.
  std::string last_type;
  Handler* last_handler = nullptr;
  LaneStats stats;
  LaneTypeStats type_stats;
  bool busy = false;
  bool just_woke = false;      // resumed from parking, has not taken a message yet
  bool in_handler = false;     // between starting a handler and its end
  bool probe_pending = false;  // a suspension probe is queued on the strand
};

class Core : public std::enable_shared_from_this<Core> {
 public:
  explicit Core(ManagerOptions opts);
  ~Core();
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;

  void start();
  ShutdownReport shutdown(std::chrono::milliseconds drain_deadline);
  [[nodiscard]] bool running() const noexcept { return state_.load(std::memory_order_acquire) == kRunning; }

  // `how`: how a parked worker is woken (AsyncWaitList::Resume). Callers that
  // return to the pool at once (transports' I/O loops, coroutines) defer.
  SendStatus try_send(Message&& message, AsyncWaitList::Resume how = AsyncWaitList::Resume::post);
  SendStatus send(Message&& message);
  asio::awaitable<SendStatus> async_send(Message message, AsyncWaitList::Resume how = AsyncWaitList::Resume::defer);

  std::optional<Notification> try_receive();
  std::optional<Notification> receive_until(std::chrono::steady_clock::time_point deadline);
  asio::awaitable<std::optional<Notification>> async_receive();
  std::size_t try_receive_batch(std::vector<Notification>& out, std::size_t max);
  std::size_t receive_batch_until(std::vector<Notification>& out, std::size_t max,
                                  std::chrono::steady_clock::time_point deadline);
  asio::awaitable<std::size_t> async_receive_batch(std::vector<Notification>& out, std::size_t max);

  void attach(const std::shared_ptr<CommunicationLayer>& layer);
  // A transport's own notification onto the channel (see Ingress::try_publish).
  SendStatus publish(Notification& notification, bool may_overflow,
                     AsyncWaitList::Resume how = AsyncWaitList::Resume::post);
  asio::awaitable<SendStatus> async_publish(Notification notification);
  [[nodiscard]] Stats stats() const;
  [[nodiscard]] std::vector<HandlerTypeStats> handler_stats(double ns_per_tick) const;
  // Ingress::cancel and forget_cancel: the message `layer` fed in as `token`.
  void cancel(const void* layer, std::uint64_t token);
  void forget_cancel(const void* layer, std::uint64_t token);
  [[nodiscard]] asio::any_io_executor executor() {
    return busy_ ? asio::any_io_executor{busy_->executor()} : asio::any_io_executor{io_.get_executor()};
  }

  const ManagerOptions options;
  HandlerRegistry registry;

 private:
  enum State : int { kCreated, kRunning, kStopping, kStopped };

  asio::awaitable<void> run_lane(Lane& lane);
  asio::awaitable<void> spin_for_work(Lane& lane);
  void wake_a_lane(AsyncWaitList::Resume how);
  [[nodiscard]] bool inbox_has_room() const noexcept;
  [[nodiscard]] bool notifications_have_room() const noexcept;
  void on_popped(Lane& lane);
  void arm_suspension_probe(Lane& lane);
  void set_idle(Lane& lane);
  // Counts and logs a finished message and, when it asked for one, fills in the
  // envelope's notification (returns false when it asked for none).
  bool finish(LaneStats& stats, Envelope& env, Outcome outcome, std::string&& error, std::error_code code);
  void record_type(TypeCounters& counters, Outcome outcome, std::error_code code, std::uint64_t started) const noexcept;
  void arm_deadline(Lane& lane, std::chrono::steady_clock::time_point deadline);
  [[nodiscard]] bool cancelled(const void* layer, std::uint64_t token);
  // Routes the envelope's notification; false when the channel is full (the caller
  // waits for room). On true the envelope has been consumed or handed on.
  // `how`: how a reader waiting for the notification is woken.
  bool try_deliver(EnvelopePtr& env, const ReplyRoute& route, bool may_overflow, AsyncWaitList::Resume how);
  void push_overflow(Notification&& n);
  [[nodiscard]] bool notification_waiting() const noexcept;
  [[nodiscard]] bool channel_unused() const noexcept;
  void after_notifications_popped();
  void run_io_thread();

  std::shared_ptr<spdlog::logger> log_;
  std::atomic<int> state_{kCreated};

  BoundedQueue<EnvelopePtr> inbox_;
  Signal inbox_space_;        // senders waiting for room
  AsyncWaitList lanes_idle_;  // parked lanes
  std::atomic<bool> wake_pending_{false};
  // The last wake-up was a continuation of its waker (defer): the woken lane
  // keeps its waker's thread and does not pull in another one at once.
  std::atomic<bool> wake_deferred_{false};

  BoundedQueue<EnvelopePtr> notifications_;
  Signal notifications_ready_;        // receivers
  AsyncWaitList notification_space_;  // lanes waiting for room
  std::atomic<bool> notifications_closed_{false};
  std::atomic<bool> cancelling_{false};
  std::atomic<bool> overflow_allowed_{false};
  std::mutex overflow_mutex_;
  std::deque<Notification> overflow_;
  std::atomic<std::size_t> overflow_size_{0};

  // ManagerOptions::busy_poll: the pool's threads run this instead of io_.run().
  // Declared before io_ so that it outlives io_'s shutdown, which may still post
  // to it (~Core closes it first).
  std::unique_ptr<BusyLoop> busy_;
  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::vector<std::thread> threads_;
  std::atomic<std::size_t> pool_threads_running_{0};
  EventCount pool_threads_done_;
  std::vector<std::unique_ptr<Lane>> lanes_;
  std::atomic<std::size_t> lanes_running_{0};
  EventCount lanes_done_;
  std::atomic<std::uint64_t> busy_lanes_{0};
  std::atomic<std::uint64_t> max_busy_lanes_{0};
  LaneStats shutdown_stats_;  // messages ended by shutdown() itself (never taken by a lane)
  TypeTable types_;           // message types' indexes into the lanes' TypeCounters
  std::array<std::uint64_t, kDurationBounds.size()> duration_bound_ticks_{};

  // Messages their senders cancelled (Ingress::cancel), until the layer forgets
  // them; lanes look here only while there are any.
  std::mutex cancels_mutex_;
  std::vector<std::pair<const void*, std::uint64_t>> cancels_;
  std::atomic<std::size_t> cancels_pending_{0};

  std::mutex layers_mutex_;
  std::vector<std::shared_ptr<CommunicationLayer>> layers_;

  std::mutex lifecycle_mutex_;
  std::optional<ShutdownReport> report_;
};

}  // namespace amsg::detail

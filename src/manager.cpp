#include "amsg/manager.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/co_spawn.hpp>
#include <asio/defer.hpp>
#include <asio/post.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <exception>

#include "amsg/errc.hpp"
#include "amsg/errors.hpp"
#include "amsg/log.hpp"
#include "core.hpp"
#include "detail/ticks.hpp"

namespace amsg {
namespace detail {
namespace {

using Clock = std::chrono::steady_clock;

ManagerOptions validated(ManagerOptions o) {
  if (o.concurrency == 0) throw InvalidOptionsError("amsg: concurrency must be at least 1");
  if (o.inbox_capacity == 0) throw InvalidOptionsError("amsg: inbox_capacity must be at least 1");
  if (o.notification_capacity == 0) throw InvalidOptionsError("amsg: notification_capacity must be at least 1");
  if (o.inbox_capacity > (std::size_t{1} << 30) || o.notification_capacity > (std::size_t{1} << 30)) {
    throw InvalidOptionsError("amsg: capacities are limited to 2^30 entries");
  }
  if (o.idle_spin.count() < 0) throw InvalidOptionsError("amsg: idle_spin must not be negative");
  if (o.threads == 0) o.threads = std::max(1u, std::thread::hardware_concurrency());
  return o;
}

// After the channel closes at shutdown, how long the pool may keep running work
// queued on it (readers finishing) before it is stopped.
constexpr auto kPoolGrace = std::chrono::milliseconds{200};

}  // namespace

Core::Core(ManagerOptions opts)
    : options{validated(std::move(opts))},
      log_{logger(options.logger_name)},
      inbox_{options.inbox_capacity},
      notifications_{options.notification_capacity},
      io_{static_cast<int>(options.threads)} {
  if (options.busy_poll) busy_ = std::make_unique<BusyLoop>(io_, options.threads);
  lanes_.reserve(options.concurrency);
  for (std::size_t i = 0; i < options.concurrency; ++i) {
    std::optional<asio::any_io_executor> busy;
    if (busy_) busy = options.threads == 1 ? executor() : asio::any_io_executor{asio::make_strand(executor())};
    lanes_.push_back(std::make_unique<Lane>(i, io_, std::move(busy)));
  }
  const double ns_per = ns_per_tick();
  for (std::size_t i = 0; i < kDurationBounds.size(); ++i) {
    duration_bound_ticks_[i] = static_cast<std::uint64_t>(kDurationBounds[i] * 1e9 / ns_per);
  }
}

Core::~Core() {
  // Manager::~Manager shut us down; this only covers a core that never ran.
  if (!threads_.empty()) {
    io_.stop();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  if (busy_) busy_->close();  // before io_ goes: what it still holds lets go of io_'s work
}

void Core::start() {
  std::lock_guard lock{lifecycle_mutex_};
  int expected = kCreated;
  if (!state_.compare_exchange_strong(expected, kRunning)) {
    throw LifecycleError("amsg: start() on a manager that was already started or shut down");
  }
  work_.emplace(io_.get_executor());
  lanes_running_.store(lanes_.size(), std::memory_order_release);
  for (auto& lane_ptr : lanes_) {
    Lane& lane = *lane_ptr;
    auto done = asio::bind_cancellation_slot(lane.cancel.slot(), [this](const std::exception_ptr& e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        log_->critical("worker lane ended by an exception: {}", ex.what());
      }
    });
    lane.with_executor([&](const auto& ex) { asio::co_spawn(ex, run_lane(lane), std::move(done)); });
  }
  pool_threads_running_.store(options.threads, std::memory_order_release);
  threads_.reserve(options.threads);
  for (std::size_t i = 0; i < options.threads; ++i) threads_.emplace_back([this] { run_io_thread(); });
  log_->debug("manager started: concurrency={} threads={} inbox={} notifications={}", options.concurrency,
              options.threads, inbox_.capacity(), notifications_.capacity());
}

void Core::run_io_thread() {
  for (;;) {
    try {
      if (busy_) {
        busy_->run();
      } else {
        io_.run();
      }
      pool_threads_running_.fetch_sub(1, std::memory_order_acq_rel);
      pool_threads_done_.notify_all();
      return;
    } catch (const std::exception& e) {
      // Work that handlers started on our executor (not the handlers themselves,
      // whose exceptions become notifications) threw: log and keep serving.
      log_->error("exception escaped a task on the manager's pool: {}", e.what());
    } catch (...) {
      log_->error("unknown exception escaped a task on the manager's pool");
    }
  }
}

// ---------------------------------------------------------------- sending

SendStatus Core::try_send(Message&& message, AsyncWaitList::Resume how) {
  MessageAccess::enqueued_ticks(message) = static_cast<std::int64_t>(ticks());
  EnvelopePtr env = make_envelope(std::move(message));
  const PushResult result = inbox_.try_push(env);
  if (result == PushResult::ok) {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (lanes_idle_.waiting() != 0) wake_a_lane(how);
    return SendStatus::ok;
  }
  message = std::move(env->message);  // refused: the message is still the caller's
  return result == PushResult::full ? SendStatus::full : SendStatus::closed;
}

SendStatus Core::send(Message&& message) {
  for (;;) {
    // try_send moves from `message` only when it returns ok.
    const SendStatus s = try_send(std::move(message));  // NOLINT(bugprone-use-after-move)
    if (s != SendStatus::full) return s;
    inbox_space_.threads.wait([this] { return inbox_has_room(); }, options.idle_spin);
  }
}

asio::awaitable<SendStatus> Core::async_send(Message message, AsyncWaitList::Resume how) {
  if (const SendStatus s = try_send(std::move(message), how); s != SendStatus::full) co_return s;
  auto self = shared_from_this();  // we may suspend: keep the core alive
  for (;;) {
    const SendStatus s = try_send(std::move(message), how);  // NOLINT(bugprone-use-after-move): see send()
    if (s != SendStatus::full) co_return s;
    co_await inbox_space_.coroutines.async_wait([this] { return inbox_has_room(); });
  }
}

// Wakes one parked lane unless a wake-up (or a spinning lane) is already on its
// way. More lanes follow from that one: it wakes another if work remains after its
// first message (on_popped), and its suspension probe wakes another whenever one
// of its handlers suspends.
void Core::wake_a_lane(AsyncWaitList::Resume how) {
  if (wake_pending_.load(std::memory_order_relaxed) || wake_pending_.exchange(true, std::memory_order_acq_rel)) return;
  wake_deferred_.store(how == AsyncWaitList::Resume::defer, std::memory_order_relaxed);
  if (!lanes_idle_.notify_one(how)) wake_pending_.store(false, std::memory_order_seq_cst);
}

// ---------------------------------------------------------------- receiving

std::optional<Notification> Core::try_receive() {
  EnvelopePtr env;
  if (notifications_.try_pop(env)) {
    after_notifications_popped();
    return std::optional<Notification>{std::move(env->notification)};
  }
  std::optional<Notification> n;
  if (overflow_size_.load(std::memory_order_acquire) != 0) {
    std::lock_guard lock{overflow_mutex_};
    if (!overflow_.empty()) {
      n = std::move(overflow_.front());
      overflow_.pop_front();
      overflow_size_.fetch_sub(1, std::memory_order_relaxed);
      return n;
    }
  }
  return std::nullopt;
}

bool Core::notification_waiting() const noexcept {
  return !notifications_.empty() || overflow_size_.load(std::memory_order_relaxed) != 0 ||
         notifications_closed_.load(std::memory_order_relaxed);
}

// With an on_notification callback nothing ever enters the channel: waiting
// readers would wait forever, so they return at once instead.
bool Core::channel_unused() const noexcept { return static_cast<bool>(options.on_notification); }

void Core::after_notifications_popped() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (notification_space_.waiting() != 0 && notifications_have_room()) notification_space_.notify_all();
}

std::optional<Notification> Core::receive_until(Clock::time_point deadline) {
  if (channel_unused()) return std::nullopt;
  for (;;) {
    if (auto n = try_receive()) return n;
    if (notifications_closed_.load(std::memory_order_acquire)) return try_receive();
    const bool ready =
        notifications_ready_.threads.wait_until([this] { return notification_waiting(); }, deadline, options.idle_spin);
    if (!ready) return try_receive();
  }
}

asio::awaitable<std::optional<Notification>> Core::async_receive() {
  if (auto n = try_receive()) co_return n;
  if (channel_unused()) co_return std::nullopt;
  auto self = shared_from_this();  // we may suspend: keep the core alive
  for (;;) {
    if (auto n = try_receive()) co_return n;
    if (notifications_closed_.load(std::memory_order_acquire)) co_return try_receive();
    co_await notifications_ready_.coroutines.async_wait([this] { return notification_waiting(); });
  }
}

std::size_t Core::try_receive_batch(std::vector<Notification>& out, std::size_t max) {
  std::size_t count = 0;
  EnvelopePtr env;
  while (count < max && notifications_.try_pop(env)) {
    out.push_back(std::move(env->notification));
    env.reset();
    ++count;
  }
  if (count > 0) after_notifications_popped();
  while (count < max && overflow_size_.load(std::memory_order_acquire) != 0) {
    std::lock_guard lock{overflow_mutex_};
    if (overflow_.empty()) break;
    out.push_back(std::move(overflow_.front()));
    overflow_.pop_front();
    overflow_size_.fetch_sub(1, std::memory_order_relaxed);
    ++count;
  }
  return count;
}

std::size_t Core::receive_batch_until(std::vector<Notification>& out, std::size_t max, Clock::time_point deadline) {
  if (max == 0 || channel_unused()) return 0;
  for (;;) {
    if (const std::size_t n = try_receive_batch(out, max); n > 0) return n;
    if (notifications_closed_.load(std::memory_order_acquire)) return try_receive_batch(out, max);
    const bool ready =
        notifications_ready_.threads.wait_until([this] { return notification_waiting(); }, deadline, options.idle_spin);
    if (!ready) return try_receive_batch(out, max);
  }
}

asio::awaitable<std::size_t> Core::async_receive_batch(std::vector<Notification>& out, std::size_t max) {
  if (max == 0 || channel_unused()) co_return 0;
  if (const std::size_t n = try_receive_batch(out, max); n > 0) co_return n;
  auto self = shared_from_this();  // we may suspend: keep the core alive
  for (;;) {
    if (const std::size_t n = try_receive_batch(out, max); n > 0) co_return n;
    if (notifications_closed_.load(std::memory_order_acquire)) co_return try_receive_batch(out, max);
    co_await notifications_ready_.coroutines.async_wait([this] { return notification_waiting(); });
  }
}

// ---------------------------------------------------------------- lifecycle

ShutdownReport Core::shutdown(std::chrono::milliseconds drain_deadline) {
  std::lock_guard lock{lifecycle_mutex_};
  if (report_) return *report_;
  const auto t0 = Clock::now();
  const bool was_running = state_.exchange(kStopping) == kRunning;
  ShutdownReport report;

  // Phase 1: stop intake. From here every send returns closed.
  inbox_.close();
  inbox_space_.notify_all();
  lanes_idle_.notify_all();
  log_->debug("shutdown: intake closed, {} queued", inbox_.size());

  // Phase 2: drain queued and running messages until the deadline.
  report.drained = true;
  if (was_running) {
    auto lanes_finished = [this] { return lanes_running_.load(std::memory_order_acquire) == 0; };
    report.drained = lanes_done_.wait_until(lanes_finished, t0 + drain_deadline);
    if (!report.drained) {
      // Phase 3: cancel what remains. Queued messages end without running; running
      // handlers get asio cancellation at their pending (or next) co_await.
      const auto running = busy_lanes_.load();
      const auto queued = inbox_.size();
      log_->log(running + queued > 0 ? spdlog::level::warn : spdlog::level::debug,
                "shutdown: drain deadline passed with {} running and {} queued; cancelling", running, queued);
      overflow_allowed_.store(true, std::memory_order_seq_cst);
      cancelling_.store(true, std::memory_order_seq_cst);
      notification_space_.notify_all();
      lanes_idle_.notify_all();
      for (auto& lane : lanes_) {
        lane->post([l = lane.get()] { l->cancel.emit(asio::cancellation_type::terminal); });
      }
      while (!lanes_done_.wait_until(lanes_finished, Clock::now() + std::chrono::seconds{5})) {
        log_->warn("shutdown: still waiting for {} handler(s) that ignore cancellation", busy_lanes_.load());
      }
    }
  }
  // Messages no lane took (the manager never started): they end here, cancelled.
  overflow_allowed_.store(true, std::memory_order_seq_cst);
  cancelling_.store(true, std::memory_order_seq_cst);
  while (!inbox_.empty()) {
    EnvelopePtr env;
    if (!inbox_.try_pop(env)) {
      std::this_thread::yield();  // a sender reserved a slot and is still writing it
      continue;
    }
    shutdown_stats_.cancelled.add();
    const ReplyRoute route = std::move(MessageAccess::route(env->message));
    if (finish(shutdown_stats_, *env, Outcome::cancelled, {}, errc::cancelled)) {
      try_deliver(env, route, true, AsyncWaitList::Resume::post);
    } else if (route.layer) {
      route.layer->released(route.peer);
    }
  }

  // The channel ends: readers get what is left, then nullopt. Readers running on
  // this pool get to see that before it stops (a grace period bounds work that
  // never ends, such as a loop a handler spawned on the pool itself).
  notifications_closed_.store(true, std::memory_order_seq_cst);
  notifications_ready_.notify_all();
  notification_space_.notify_all();  // transports waiting in async_publish see closed
  inbox_space_.notify_all();
  if (was_running) {
    std::vector<std::shared_ptr<CommunicationLayer>> layers;
    {
      std::lock_guard layers_lock{layers_mutex_};
      layers = layers_;
    }
    for (auto& layer : layers) {
      try {
        layer->on_drained();
      } catch (const std::exception& e) {
        log_->error("communication layer on_drained threw: {}", e.what());
      }
    }
    work_.reset();
    const bool idle = pool_threads_done_.wait_until(
        [this] { return pool_threads_running_.load(std::memory_order_acquire) == 0; }, Clock::now() + kPoolGrace);
    if (!idle) log_->debug("shutdown: stopping the pool with work still queued on it");
    io_.stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }
  std::vector<std::shared_ptr<CommunicationLayer>> layers;
  {
    std::lock_guard layers_lock{layers_mutex_};
    layers.swap(layers_);
  }
  for (auto& layer : layers) {
    try {
      layer->on_detach();
    } catch (const std::exception& e) {
      log_->error("communication layer on_detach threw: {}", e.what());
    }
  }
  const Stats s = stats();
  report.cancelled = s.cancelled;
  report.took = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0);
  state_.store(kStopped, std::memory_order_release);
  log_->debug("shutdown complete in {} us: {}", report.took.count() / 1000, s.to_string());
  report_ = report;
  return report;
}

SendStatus Core::publish(Notification& notification, bool may_overflow, AsyncWaitList::Resume how) {
  if (notifications_closed_.load(std::memory_order_acquire)) return SendStatus::closed;
  EnvelopePtr env = make_envelope(Message{});
  env->notification = std::move(notification);
  if (try_deliver(env, ReplyRoute{}, may_overflow, how)) return SendStatus::ok;
  notification = std::move(env->notification);
  return SendStatus::full;
}

asio::awaitable<SendStatus> Core::async_publish(Notification notification) {
  auto self = shared_from_this();  // we may suspend: keep the core alive
  for (;;) {
    const SendStatus s = publish(notification, false, AsyncWaitList::Resume::defer);
    if (s != SendStatus::full) co_return s;
    co_await notification_space_.async_wait(
        [this] { return notifications_have_room() || notifications_closed_.load(std::memory_order_acquire); });
  }
}

void Core::attach(const std::shared_ptr<CommunicationLayer>& layer) {
  if (!layer) throw std::invalid_argument("amsg: attach(nullptr)");
  {
    std::lock_guard lock{layers_mutex_};
    if (state_.load() >= kStopping) throw LifecycleError("amsg: attach() on a manager that is shut down");
    layers_.push_back(layer);
  }
  layer->on_attach(Ingress{shared_from_this(), layer});
}

Stats Core::stats() const {
  Stats s;
  std::array<std::uint64_t, LatencyHistogram::kBuckets> buckets{};
  std::uint64_t sum = 0;
  std::uint64_t max = 0;
  auto add = [&](const LaneStats& l) {
    s.dispatched += l.dispatched.get();
    s.ok += l.ok.get();
    s.failed += l.failed.get();
    s.unknown_type += l.unknown_type.get();
    s.timed_out += l.timed_out.get();
    s.rejected += l.rejected.get();
    s.cancelled += l.cancelled.get();
    s.notifications += l.notifications.get();
    l.latency.merge_into(buckets, sum, max);
  };
  for (const auto& lane : lanes_) add(lane->stats);
  add(shutdown_stats_);
  s.received = inbox_.pushed();
  s.queue_depth = inbox_.size();
  s.notifications_queued = notifications_.size();
  s.in_flight = busy_lanes_.load(std::memory_order_relaxed);
  s.max_in_flight = max_busy_lanes_.load(std::memory_order_relaxed);
  const double ns_per = ns_per_tick();
  s.latency = LatencyHistogram::summarize(buckets, sum, max, ns_per);
  // The fine histogram, folded onto the coarse bounds by each bucket's midpoint.
  DurationHistogram& h = s.latency_histogram;
  h.upper_bounds_s.assign(kDurationBounds.begin(), kDurationBounds.end());
  h.counts.assign(kDurationBounds.size() + 1, 0);
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    if (buckets[i] == 0) continue;
    const double secs = LatencyHistogram::value_of(static_cast<int>(i)) * ns_per / 1e9;
    std::size_t b = 0;
    while (b < kDurationBounds.size() && secs > kDurationBounds[b]) ++b;
    h.counts[b] += buckets[i];
    h.count += buckets[i];
  }
  for (std::size_t b = 1; b < h.counts.size(); ++b) h.counts[b] += h.counts[b - 1];
  h.sum_s = static_cast<double>(sum) * ns_per / 1e9;
  s.handlers = handler_stats(ns_per);
  return s;
}

std::vector<HandlerTypeStats> Core::handler_stats(double ns_per) const {
  const std::vector<std::string> names = types_.names();  // the named ones, then "(other)"
  std::vector<HandlerTypeStats> out(kTrackedTypes);
  std::vector<std::uint64_t> sum_ticks(kTrackedTypes, 0);
  for (const auto& lane : lanes_) {
    const TypeCounterArray* counters = lane->type_stats.counters();
    if (counters == nullptr) continue;
    for (std::size_t t = 0; t < kTrackedTypes; ++t) {
      const TypeCounters& c = (*counters)[t];
      HandlerTypeStats& o = out[t];
      o.started += c.started.get();
      o.ok += c.ok.get();
      o.failed += c.failed.get();
      o.timed_out += c.timed_out.get();
      o.cancelled += c.cancelled.get();
      sum_ticks[t] += c.sum_ticks.get();
      o.duration.counts.resize(c.buckets.size(), 0);
      for (std::size_t b = 0; b < c.buckets.size(); ++b) o.duration.counts[b] += c.buckets[b].get();
    }
  }
  std::vector<HandlerTypeStats> result;
  for (std::size_t t = 0; t < kTrackedTypes; ++t) {
    const bool named = t + 1 < names.size();
    const bool other = t == kTrackedTypes - 1;
    if (!named && !(other && out[t].started != 0)) continue;
    HandlerTypeStats& o = out[t];
    o.type = named ? names[t] : names.back();
    // Read after `started`, so a handler that began and ended in between can make it larger: clamped.
    const std::uint64_t ended = o.ok + o.failed + o.cancelled;
    o.running = o.started > ended ? o.started - ended : 0;
    DurationHistogram& d = o.duration;
    d.upper_bounds_s.assign(kDurationBounds.begin(), kDurationBounds.end());
    d.counts.resize(kDurationBounds.size() + 1, 0);
    for (std::size_t b = 1; b < d.counts.size(); ++b) d.counts[b] += d.counts[b - 1];
    d.count = d.counts.back();
    d.sum_s = static_cast<double>(sum_ticks[t]) * ns_per / 1e9;
    result.push_back(std::move(o));
  }
  return result;
}

}  // namespace detail

// ---------------------------------------------------------------- Manager

Manager::Manager(ManagerOptions options) : core_{std::make_shared<detail::Core>(std::move(options))} {}

Manager::~Manager() {
  try {
    core_->shutdown(std::chrono::milliseconds{0});
  } catch (const std::exception& e) {
    logger(core_->options.logger_name)->error("shutdown in ~Manager failed: {}", e.what());
  }
}

HandlerRegistry& Manager::handlers() noexcept { return core_->registry; }
void Manager::register_handler(std::string type, std::shared_ptr<Handler> handler) {
  core_->registry.add(std::move(type), std::move(handler));
}
void Manager::register_handlers(HandlerMap handlers) { core_->registry.add_all(std::move(handlers)); }
bool Manager::replace_handler(std::string type, std::shared_ptr<Handler> handler) {
  return core_->registry.replace(std::move(type), std::move(handler));
}
bool Manager::remove_handler(std::string_view type) { return core_->registry.remove(type); }

void Manager::start() { core_->start(); }
ShutdownReport Manager::shutdown(std::chrono::milliseconds drain_deadline) { return core_->shutdown(drain_deadline); }
bool Manager::running() const noexcept { return core_->running(); }

SendStatus Manager::send(Message&& message) { return core_->send(std::move(message)); }
SendStatus Manager::try_send(Message&& message) { return core_->try_send(std::move(message)); }
asio::awaitable<SendStatus> Manager::async_send(Message message) { return core_->async_send(std::move(message)); }

std::optional<Notification> Manager::try_receive() { return core_->try_receive(); }
std::optional<Notification> Manager::receive() {
  return core_->receive_until(std::chrono::steady_clock::time_point::max());
}
std::optional<Notification> Manager::receive_for(std::chrono::nanoseconds timeout) {
  return core_->receive_until(std::chrono::steady_clock::now() + timeout);
}
asio::awaitable<std::optional<Notification>> Manager::async_receive() { return core_->async_receive(); }
std::size_t Manager::try_receive_batch(std::vector<Notification>& out, std::size_t max) {
  return core_->try_receive_batch(out, max);
}
std::size_t Manager::receive_batch(std::vector<Notification>& out, std::size_t max) {
  return core_->receive_batch_until(out, max, std::chrono::steady_clock::time_point::max());
}
asio::awaitable<std::size_t> Manager::async_receive_batch(std::vector<Notification>& out, std::size_t max) {
  return core_->async_receive_batch(out, max);
}

void Manager::attach(const std::shared_ptr<CommunicationLayer>& layer) { core_->attach(layer); }
Stats Manager::stats() const { return core_->stats(); }
const ManagerOptions& Manager::options() const noexcept { return core_->options; }
asio::any_io_executor Manager::executor() const { return core_->executor(); }

}  // namespace amsg

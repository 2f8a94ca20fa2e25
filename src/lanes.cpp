// detail::Core's worker lanes: each pops a message, runs its handler under the
// concurrency limit, and routes its notification. See core.hpp and docs/design.md.

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <algorithm>
#include <asio/defer.hpp>
#include <asio/post.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <exception>

#include "amsg/errc.hpp"
#include "core.hpp"
#include "detail/ticks.hpp"

namespace amsg::detail {
namespace {

using Clock = std::chrono::steady_clock;

// How many messages a lane runs back to back before it lets other work on its
// thread run (a lane whose handlers never suspend would otherwise hold the thread).
constexpr unsigned kYieldEvery = 256;

}  // namespace

// ---------------------------------------------------------------- lanes

// Waiting senders are woken once the inbox has drained to half, not on every pop:
// a full inbox then costs one wake-up per capacity/2 messages instead of one each.
bool Core::inbox_has_room() const noexcept { return inbox_.size() <= inbox_.capacity() / 2 || inbox_.closed(); }

bool Core::notifications_have_room() const noexcept {
  return notifications_.size() <= notifications_.capacity() / 2 || overflow_allowed_.load(std::memory_order_relaxed);
}

void Core::on_popped(Lane& lane) {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if ((inbox_space_.threads.has_waiters() || inbox_space_.coroutines.waiting() != 0) && inbox_has_room()) {
    inbox_space_.notify_all();
  }
  // Senders do not wake a second lane while one is on its way, so a burst that
  // arrived meanwhile gets one here: once per wake-up, not per message. (Handlers
  // that block their thread never let the suspension probe run.)
  if (lane.just_woke) {
    lane.just_woke = false;
    // (Not when the waker handed us its own thread: then work stays on it unless
    // a handler suspends, see arm_suspension_probe.)
    if (lanes_idle_.waiting() != 0 && !inbox_.empty() && !wake_deferred_.load(std::memory_order_relaxed)) {
      wake_a_lane(AsyncWaitList::Resume::post);  // on another thread
    }
  }
  if (!lane.busy) {
    lane.busy = true;
    const auto busy = busy_lanes_.fetch_add(1, std::memory_order_relaxed) + 1;
    auto max = max_busy_lanes_.load(std::memory_order_relaxed);
    while (busy > max && !max_busy_lanes_.compare_exchange_weak(max, busy, std::memory_order_relaxed)) {
    }
  }
}

// More lanes are needed only when a handler suspends (a handler that finishes
// inline frees its lane at once). A probe queued on the lane's strand runs only
// when the lane gives up its thread; if the lane is then inside a handler, that
// handler suspended, and queued work gets another lane. One probe at a time, so
// a lane running inline handlers pays one defer per yield, not per message.
void Core::arm_suspension_probe(Lane& lane) {
  if (lane.probe_pending) return;
  lane.probe_pending = true;
  lane.defer([this, &lane] {
    lane.probe_pending = false;
    if (lane.in_handler && lanes_idle_.waiting() != 0 && !inbox_.empty()) wake_a_lane(AsyncWaitList::Resume::post);
  });
}

void Core::set_idle(Lane& lane) {
  if (lane.busy) {
    lane.busy = false;
    busy_lanes_.fetch_sub(1, std::memory_order_relaxed);
  }
}

asio::awaitable<void> Core::spin_for_work(Lane& lane) {
  // One lane at a time spins, holding the wake-up token so senders do not wake others.
  if (wake_pending_.load(std::memory_order_relaxed) || wake_pending_.exchange(true, std::memory_order_acq_rel)) {
    co_return;
  }
  struct ReleaseToken {  // also when a yield below throws (shutdown's cancellation)
    std::atomic<bool>& token;
    ~ReleaseToken() { token.store(false, std::memory_order_seq_cst); }
  } release{wake_pending_};
  const auto end = Clock::now() + options.idle_spin;
  for (;;) {
    for (int i = 0; i < 32; ++i) {
      if (!inbox_.empty() || inbox_.closed() || cancelling_.load(std::memory_order_relaxed)) co_return;
      cpu_relax();
    }
    if (Clock::now() >= end) co_return;
    co_await lane.yield();  // let other work on this thread run
  }
}

asio::awaitable<void> Core::run_lane(Lane& lane) {
  auto self = shared_from_this();
  lane.handlers = registry.snapshot();
  unsigned since_yield = 0;
  for (;;) {
    EnvelopePtr env;
    if (!inbox_.try_pop(env)) {
      set_idle(lane);
      if (inbox_.closed() && inbox_.empty()) break;
      bool aborted = false;
      try {
        if (options.idle_spin.count() > 0 && !inbox_.closed()) {
          co_await spin_for_work(lane);
        }
        if (inbox_.empty()) {
          co_await lanes_idle_.async_wait(
              [this] { return !inbox_.empty() || inbox_.closed() || cancelling_.load(std::memory_order_relaxed); });
          wake_pending_.store(false, std::memory_order_seq_cst);
          lane.just_woke = true;
        }
      } catch (const std::exception&) {
        aborted = true;  // shutdown's cancellation reached the lane itself
      }
      if (aborted) {
        co_await asio::this_coro::reset_cancellation_state();
      }
      continue;
    }
    on_popped(lane);
    Message& msg = env->message;
    // A cancel this check misses (it comes as the lane takes the message)
    // reaches the handler through the lane's strand (Core::cancel).
    bool cancelled_by_sender = false;
    if (const ReplyRoute& from = MessageAccess::route(msg); from.layer) {
      lane.current_layer = from.layer.get();
      lane.current_token = from.peer;
      cancelled_by_sender =
          cancels_pending_.load(std::memory_order_acquire) != 0 && cancelled(from.layer.get(), from.peer);
    } else {
      lane.current_layer = nullptr;  // no cancel may find this one
    }

    Outcome outcome = Outcome::ok;
    std::string error;
    std::error_code code;
    TypeCounters* type_counters = nullptr;  // set when a handler runs
    std::uint64_t started_ticks = 0;
    if (cancelling_.load(std::memory_order_acquire) || cancelled_by_sender) {
      outcome = Outcome::cancelled;  // never runs
      code = errc::cancelled;
    } else if (msg.deadline != Clock::time_point::max() && msg.deadline <= Clock::now()) {
      outcome = Outcome::error;  // expired while queued: never runs
      error = "timeout";
      code = errc::timeout;
      lane.stats.timed_out.add();
      lane.stats.failed.add();
    } else if (msg.payload.size() > options.max_payload_bytes) {
      outcome = Outcome::error;
      error = fmt::format("payload of {} bytes exceeds the limit of {} bytes", msg.payload.size(),
                          options.max_payload_bytes);
      code = errc::payload_too_large;
      lane.stats.rejected.add();
    } else {
      if (lane.handlers->version != registry.version()) {
        lane.handlers = registry.snapshot();
        lane.last_handler = nullptr;
        lane.type_stats.forget_handlers();
      }
      Handler* handler = nullptr;
      if (lane.last_handler != nullptr && msg.type == lane.last_type) {
        handler = lane.last_handler;
      } else {
        handler = lane.handlers->find(msg.type);
        if (handler != nullptr) {
          lane.last_type = msg.type;
          lane.last_handler = handler;
        }
      }
      if (handler == nullptr) {
        outcome = Outcome::error;
        error = fmt::format("unknown message type '{}'", msg.type);
        code = errc::unknown_type;
        lane.stats.unknown_type.add();
        lane.stats.failed.add();
      } else {
        lane.stats.dispatched.add();
        type_counters = &lane.type_stats.for_handler(handler, msg.type, types_);
        type_counters->started.add();
        started_ticks = ticks();
        lane.in_handler = true;
        ++lane.runs;
        lane.deadline_hit = false;
        lane.cancel_hit = false;
        if (msg.deadline != Clock::time_point::max()) arm_deadline(lane, msg.deadline);
        arm_suspension_probe(lane);
        bool aborted = false;
        try {
          co_await handler->handle(msg);
        } catch (const std::exception& e) {
          error = e.what();
          outcome = Outcome::error;
          aborted = true;
        } catch (...) {
          error = "unknown exception";
          outcome = Outcome::error;
          aborted = true;
        }
        lane.in_handler = false;
        if (msg.deadline != Clock::time_point::max()) lane.deadline_timer->cancel();
        if (aborted) {
          if (cancelling_.load(std::memory_order_acquire) || lane.cancel_hit) {
            outcome = Outcome::cancelled;
            error.clear();
            code = errc::cancelled;
            co_await asio::this_coro::reset_cancellation_state();
          } else if (lane.deadline_hit) {
            error = "timeout";
            code = errc::timeout;
            lane.stats.timed_out.add();
            lane.stats.failed.add();
            co_await asio::this_coro::reset_cancellation_state();
          } else {
            code = errc::handler_error;
            lane.stats.failed.add();
          }
        } else if (lane.deadline_hit || lane.cancel_hit) {
          // The cancellation reached a handler that finished anyway
          // (it caught operation_aborted): clear it, or the lane's next handler
          // would start cancelled.
          co_await asio::this_coro::reset_cancellation_state();
        }
      }
    }
    if (outcome == Outcome::ok) lane.stats.ok.add();
    if (outcome == Outcome::cancelled) lane.stats.cancelled.add();
    if (type_counters != nullptr) record_type(*type_counters, outcome, code, started_ticks);

    const ReplyRoute route = std::move(MessageAccess::route(msg));
    if (finish(lane.stats, *env, outcome, std::move(error), code)) {
      // A lane with nothing queued parks next and gives its thread back to the
      // pool: whoever waits for this notification runs right there. With more
      // queued, the next handler may hold the thread (compute, block), so the
      // waiter is posted for any idle thread instead. (With one pool thread both
      // are the same.)
      const auto how = inbox_.empty() ? AsyncWaitList::Resume::defer : AsyncWaitList::Resume::post;
      while (!try_deliver(env, route, false, how)) {
        bool aborted = false;
        try {
          co_await notification_space_.async_wait([this] { return notifications_have_room(); });
        } catch (const std::exception&) {
          aborted = true;
        }
        if (aborted) {
          co_await asio::this_coro::reset_cancellation_state();
        }
        if (overflow_allowed_.load(std::memory_order_acquire) && try_deliver(env, route, true, how)) break;
      }
    } else if (route.layer) {
      route.layer->released(route.peer);
    }
    if (++since_yield == kYieldEvery) {
      since_yield = 0;
      bool aborted = false;
      try {
        co_await lane.yield();
      } catch (const std::exception&) {
        aborted = true;
      }
      if (aborted) {
        co_await asio::this_coro::reset_cancellation_state();
      }
    }
  }
  lane.handlers.reset();
  lanes_running_.fetch_sub(1, std::memory_order_acq_rel);
  lanes_done_.notify_all();
}

// The handler's deadline passed while it runs: cancel it through the lane's
// cancellation slot (its pending or next co_await throws operation_aborted).
void Core::arm_deadline(Lane& lane, Clock::time_point deadline) {
  if (!lane.deadline_timer) lane.deadline_timer.emplace(lane.executor());
  lane.deadline_timer->expires_at(deadline);
  lane.deadline_timer->async_wait([&lane, run = lane.runs](const asio::error_code& ec) {
    if (ec || lane.runs != run || !lane.in_handler) return;
    lane.deadline_hit = true;
    lane.cancel.emit(asio::cancellation_type::terminal);
  });
}

// Whether the sender cancelled this message (the caller saw cancels_pending_ != 0).
bool Core::cancelled(const void* layer, std::uint64_t token) {
  std::lock_guard lock{cancels_mutex_};
  return std::find(cancels_.begin(), cancels_.end(), std::pair{layer, token}) != cancels_.end();
}

// A message still queued never runs (the lane that takes it finds it here); a
// running handler is cancelled like one whose deadline passed: every lane is
// asked, on its strand (so the lanes' per-message path takes no fence), whether
// it runs that message; one that took it as the cancel came finds it listed
// by then. Cancels are rare: one post per lane each.
void Core::cancel(const void* layer, std::uint64_t token) {
  {
    std::lock_guard lock{cancels_mutex_};
    if (std::find(cancels_.begin(), cancels_.end(), std::pair{layer, token}) != cancels_.end()) return;
    cancels_.emplace_back(layer, token);
    cancels_pending_.fetch_add(1, std::memory_order_release);
  }
  for (const auto& lane : lanes_) {
    lane->post([this, &l = *lane, layer, token] {
      // In that message's handler, and the cancel not yet forgotten (then its
      // token may name another message by now)?
      if (!l.in_handler || l.current_token != token || l.current_layer != layer || !cancelled(layer, token)) {
        return;
      }
      l.cancel_hit = true;
      l.cancel.emit(asio::cancellation_type::terminal);
    });
  }
}

void Core::forget_cancel(const void* layer, std::uint64_t token) {
  std::lock_guard lock{cancels_mutex_};
  auto it = std::find(cancels_.begin(), cancels_.end(), std::pair{layer, token});
  if (it == cancels_.end()) return;
  cancels_.erase(it);
  cancels_pending_.fetch_sub(1, std::memory_order_release);
}

void Core::record_type(TypeCounters& c, Outcome outcome, std::error_code code, std::uint64_t started) const noexcept {
  if (outcome == Outcome::ok) {
    c.ok.add();
  } else if (outcome == Outcome::cancelled) {
    c.cancelled.add();
  } else {
    c.failed.add();
    if (code == errc::timeout) c.timed_out.add();
  }
  const std::uint64_t now = ticks();
  const std::uint64_t took = now > started ? now - started : 0;
  c.sum_ticks.add(took);
  std::size_t b = 0;
  while (b < duration_bound_ticks_.size() && took > duration_bound_ticks_[b]) ++b;
  c.buckets[b].add();
}

bool Core::finish(LaneStats& stats, Envelope& env, Outcome outcome, std::string&& error, std::error_code code) {
  Message& msg = env.message;
  const auto enqueued = static_cast<std::uint64_t>(MessageAccess::enqueued_ticks(msg));
  if (enqueued != 0) {
    const std::uint64_t now = ticks();
    stats.latency.record(now > enqueued ? now - enqueued : 0);
  }
  if (outcome == Outcome::error) {
    log_->warn("message type='{}' id='{}' failed: {}", msg.type, msg.notify_id.value_or(""), error);
  } else if (outcome == Outcome::cancelled) {
    log_->info("message type='{}' id='{}' cancelled by {}", msg.type, msg.notify_id.value_or(""),
               cancelling_.load(std::memory_order_relaxed) ? "shutdown" : "its sender");
    error = "cancelled";
  }
  msg.payload = Payload{};  // free it here, on the thread that ran the handler
  if (!msg.notify_id) {
    msg.response = Payload{};
    return false;
  }
  stats.notifications.add();
  Notification& n = env.notification;
  n.id = std::move(*msg.notify_id);
  n.outcome = outcome;
  n.error = std::move(error);
  n.code = code;
  n.message_type = std::move(msg.type);
  if (outcome == Outcome::ok) {
    n.payload = std::move(msg.response);
  } else {
    msg.response = Payload{};
  }
  return true;
}

bool Core::try_deliver(EnvelopePtr& env, const ReplyRoute& route, bool may_overflow, AsyncWaitList::Resume how) {
  Notification& n = env->notification;
  if (route.layer) {
    const DeliverScope scope{how == AsyncWaitList::Resume::defer};
    try {
      route.layer->deliver(route.peer, std::move(n));
    } catch (const std::exception& e) {
      log_->error("communication layer failed to deliver a notification: {}", e.what());
    }
    return true;
  }
  if (options.on_notification) {
    try {
      options.on_notification(std::move(n));
    } catch (const std::exception& e) {
      log_->error("on_notification callback threw: {}", e.what());
    } catch (...) {
      log_->error("on_notification callback threw an unknown exception");
    }
    return true;
  }
  if (notifications_.try_push(env) == PushResult::ok) {
    notifications_ready_.notify_one(how);
    return true;
  }
  if (!may_overflow) return false;
  push_overflow(std::move(n));
  return true;
}

void Core::push_overflow(Notification&& n) {
  {
    std::lock_guard lock{overflow_mutex_};
    overflow_.push_back(std::move(n));
    overflow_size_.fetch_add(1, std::memory_order_release);
  }
  notifications_ready_.notify_one();
}

}  // namespace amsg::detail

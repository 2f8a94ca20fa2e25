#include "session/local_path.hpp"

#include <algorithm>

#include <asio/co_spawn.hpp>
#include <asio/defer.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>

namespace amsg::net {

class LocalPath::Layer final : public CommunicationLayer {
 public:
  explicit Layer(LocalPath* path) : path_{path} {}
  void on_attach(Ingress ingress) override { path_->ingress_ = std::move(ingress); }
  void deliver(std::uint64_t call_id, Notification&& n) override { path_->deliver(call_id, std::move(n)); }

 private:
  LocalPath* path_;  // the session outlives its manager's shutdown, after which nothing calls in
};

LocalPath::LocalPath(const SessionExecutor& executor, Calls& calls, SessionCounters& counters)
    : executor_{executor}, calls_{calls}, counters_{counters} {}

std::shared_ptr<CommunicationLayer> LocalPath::layer() {
  if (!layer_) layer_ = std::make_shared<Layer>(this);
  return layer_;
}

void LocalPath::flush(Connector::Peer& p) {
  OutItem item;
  std::size_t n = 0;
  while (p.local_backlog.size() < p.queue.capacity() && p.take(item)) {
    ++n;
    std::uint64_t call_id = 0;
    const auto now = Clock::now();
    if (item.cancel && item.cancel->requested) {
      calls_.end_unsent(item, failure(errc::cancelled, kCancelled));
      continue;
    }
    if (p.stale(item)) {
      p.connector.end_disconnected(item);
      continue;
    }
    if (item.notified && item.deadline <= now) {
      counters_.timeouts.add();
      calls_.end_unsent(item, failure(errc::timeout, kTimeout));
      continue;
    }
    Message m{std::move(item.type), std::move(item.payload)};
    m.deadline = item.deadline;
    if (item.notified) {
      auto [id, pd] = calls_.add(p.index, now, item.deadline);
      call_id = id;
      if (item.cancel) {
        item.cancel->call_id = id;
        item.cancel->peer = p.index;
      }
      m.notify_id = item.notify_id;
      pd.notify_id = std::move(item.notify_id);
      pd.type = m.type;
      pd.completion = std::move(item.completion);
    }
    submit(p, std::move(m), call_id);
  }
  if (!p.local_backlog.empty() && !p.local_pump_running) {
    p.local_pump_running = true;
    asio::co_spawn(executor_.get(), pump(p), asio::detached);
  }
  if (n != 0) calls_.space().notify_waiting();
}

void LocalPath::submit(Connector::Peer& p, Message&& m, std::uint64_t call_id) {
  if (!p.local_backlog.empty()) {
    p.local_backlog.emplace_back(std::move(m), call_id);
    return;
  }
  const SendStatus s = ingress_.try_submit(std::move(m), call_id);
  if (s == SendStatus::full) {
    p.local_backlog.emplace_back(std::move(m), call_id);  // NOLINT(bugprone-use-after-move): refused, still ours
  } else if (s == SendStatus::closed && call_id != 0) {
    calls_.complete(call_id, failure(errc::node_shutting_down, kNodeShuttingDown));
  }
}

// The inbox was full: feeds the backlog in as room appears.
asio::awaitable<void> LocalPath::pump(Connector::Peer& p) {
  while (!p.local_backlog.empty()) {
    auto [m, call_id] = std::move(p.local_backlog.front());
    p.local_backlog.pop_front();
    const SendStatus s = co_await ingress_.async_submit(std::move(m), call_id);
    if (s != SendStatus::ok && call_id != 0) {
      calls_.complete(call_id, failure(errc::node_shutting_down, kNodeShuttingDown));
    }
  }
  p.local_pump_running = false;
  if (p.queued() != 0 && connector_ != nullptr) connector_->schedule_flush(p);
}

// On a worker: queue the outcome and post one drain per burst.
void LocalPath::deliver(std::uint64_t call_id, Notification&& n) {
  bool first = false;
  {
    std::lock_guard lock{outcomes_mutex_};
    first = outcomes_.empty();
    outcomes_.push_back(Outcome{call_id, std::move(n)});
  }
  if (!first) return;
  if (deliver_may_defer()) {
    asio::defer(executor_.get(), [this] { drain_outcomes(); });  // the worker's thread is ours next
  } else {
    asio::post(executor_.get(), [this] { drain_outcomes(); });
  }
}

void LocalPath::drain_outcomes() {
  {
    std::lock_guard lock{outcomes_mutex_};
    draining_.swap(outcomes_);
  }
  for (auto& item : draining_) {
    if (auto c = std::find(cancelled_.begin(), cancelled_.end(), item.call_id); c != cancelled_.end()) {
      ingress_.forget_cancel(item.call_id);  // it has ended: before its id could be used again
      cancelled_.erase(c);
    }
    if (calls_.find(item.call_id) == nullptr) {
      counters_.late_replies.add();
      continue;
    }
    calls_.complete(item.call_id, std::move(item.notification), /*replied=*/true);
  }
  draining_.clear();
}

// On the executor: the caller cancelled a call it made to this node.
void LocalPath::cancel(std::uint64_t call_id) {
  cancelled_.push_back(call_id);
  ingress_.cancel(call_id);
}

}  // namespace amsg::net

#include "session/calls.hpp"

#include <algorithm>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

namespace amsg::net {

Calls::Calls(const SessionExecutor& executor, SessionCounters& counters, std::size_t max_outstanding)
    : executor_{executor}, counters_{counters}, max_outstanding_{max_outstanding}, deadline_timer_{executor.get()} {}

void Calls::release() noexcept {
  outstanding_.fetch_sub(1, std::memory_order_acq_rel);
  space_.notify_waiting();
  if (shutting_down_.load(std::memory_order_relaxed)) all_ended_.notify_all();
}

bool Calls::wait_all_ended(Clock::time_point until) {
  shutting_down_.store(true, std::memory_order_seq_cst);
  return all_ended_.wait_until([this] { return outstanding_.load(std::memory_order_acquire) == 0; }, until);
}

void Calls::start() { asio::co_spawn(executor_.get(), deadline_loop(), asio::detached); }

void Calls::stop() {
  stopped_ = true;
  deadline_timer_.cancel();
}

std::pair<std::uint64_t, Pending&> Calls::add(std::uint32_t peer, Clock::time_point now, Clock::time_point deadline) {
  auto [call_id, pd] = table_.add();
  pd.seq = ++next_seq_;
  pd.peer = peer;
  pd.deadline = deadline;
  pd.sent_at = now;
  if (PeerCallCounters* c = peer_counters_ ? peer_counters_(peer) : nullptr) c->sent.add();
  if (deadline != Clock::time_point::max()) {
    deadlines_.emplace(deadline, call_id);
    if (deadline < deadline_armed_) deadline_timer_.cancel();  // the loop re-arms earlier
  }
  return {call_id, pd};
}

void Calls::complete(std::uint64_t call_id, Notification&& n, bool replied) {
  if (!table_.contains(call_id)) return;
  Pending pd = table_.take(call_id);
  count(pd, n, replied);
  route(std::move(pd), std::move(n));
}

void Calls::count(const Pending& pd, const Notification& n, bool replied) {
  PeerCallCounters* c = peer_counters_ ? peer_counters_(pd.peer) : nullptr;
  if (c == nullptr) return;
  if (n.is_success()) {
    c->ok.add();
  } else {
    c->failed.add();
    if (n.code == errc::timeout) c->timeouts.add();
  }
  // A round trip is an outcome the peer sent, not one this node decided; a
  // timeout is left out either way (its time is the deadline's, not the peer's,
  // and whether the peer's answer or this node's timer comes first is a race).
  if (replied && n.code != errc::timeout) c->record_round_trip(Clock::now() - pd.sent_at);
}

void Calls::end_unsent(OutItem& item, Notification&& n) {
  if (!item.notified) return;
  Pending pd;
  pd.notify_id = std::move(item.notify_id);
  pd.type = std::move(item.type);
  pd.completion = std::move(item.completion);
  route(std::move(pd), std::move(n));
}

void Calls::route(Pending&& pd, Notification&& n) {
  n.id = std::move(pd.notify_id);
  n.message_type = std::move(pd.type);
  if (pd.completion) {
    release();  // first, so a caller that sees its outcome also sees the count drop
    pd.completion->complete(std::move(n));
    return;
  }
  publish(std::move(n));
}

void Calls::fail_peer(std::uint32_t peer, errc code, const std::string& text, Clock::time_point sent_before) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> calls;  // (seq, id)
  for (const auto id : table_.ids()) {
    const Pending& pd = *table_.find(id);
    if (pd.peer == peer && pd.sent_at < sent_before) calls.emplace_back(pd.seq, id);
  }
  std::sort(calls.begin(), calls.end());
  for (const auto& [seq, id] : calls) {
    counters_.calls_failed_peer.add();
    complete(id, failure(code, text));
  }
}

void Calls::fail_all() {
  for (const auto call_id : table_.ids()) {
    if (!table_.contains(call_id)) continue;
    Pending pd = table_.take(call_id);
    Notification n = failure(errc::node_shutting_down, kNodeShuttingDown);
    count(pd, n, false);
    n.id = std::move(pd.notify_id);
    n.message_type = std::move(pd.type);
    if (pd.completion) {
      pd.completion->complete(std::move(n));
    } else {
      (void)ingress_.force_publish(std::move(n));
    }
    release();
  }
  while (!publish_backlog_.empty()) {
    (void)ingress_.force_publish(std::move(publish_backlog_.front()));
    publish_backlog_.pop_front();
    release();
  }
}

// Onto the notification channel, in order; waits (off the executor's critical
// path) while the channel is full. The call stays outstanding until it is
// there, which bounds what can pile up here.
void Calls::publish(Notification&& n) {
  if (publish_backlog_.empty()) {
    if (ingress_.try_publish(std::move(n)) != SendStatus::full) {
      release();
      return;
    }
  }
  publish_backlog_.push_back(std::move(n));  // NOLINT(bugprone-use-after-move): refused, still ours
  if (!publisher_running_) {
    publisher_running_ = true;
    asio::co_spawn(executor_.get(), publisher(), asio::detached);
  }
}

asio::awaitable<void> Calls::publisher() {
  while (!publish_backlog_.empty()) {
    Notification n = std::move(publish_backlog_.front());
    publish_backlog_.pop_front();
    (void)co_await ingress_.async_publish(std::move(n));
    release();
  }
  publisher_running_ = false;
}

asio::awaitable<void> Calls::deadline_loop() {
  for (;;) {
    if (stopped_) co_return;
    const auto now = Clock::now();
    while (!deadlines_.empty() && deadlines_.top().first <= now) {
      const auto [deadline, call_id] = deadlines_.top();
      deadlines_.pop();
      if (const Pending* pd = table_.find(call_id); pd != nullptr && pd->deadline == deadline) {
        counters_.timeouts.add();
        complete(call_id, failure(errc::timeout, kTimeout));
      }
    }
    deadline_armed_ = deadlines_.empty() ? Clock::time_point::max() : deadlines_.top().first;
    deadline_timer_.expires_at(deadline_armed_);
    asio::error_code ec;
    co_await deadline_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

}  // namespace amsg::net

#include "session/idempotency.hpp"

namespace amsg::net {

IdempotencyCache::Seen IdempotencyCache::arrive(std::string_view key, Clock::time_point now, IdempotentWaiter&& waiter,
                                                const StoredOutcome*& outcome) {
  trim(now);
  auto [it, inserted] = entries_.try_emplace(std::string{key});
  if (inserted) return Seen::first;
  Entry& e = it->second;
  if (e.done) {
    outcome = &e.outcome;
    return Seen::done;
  }
  if (e.waiters.size() >= kMaxWaiters) return Seen::too_many;
  e.waiters.push_back(std::move(waiter));
  return Seen::waiting;
}

std::vector<IdempotentWaiter> IdempotencyCache::finish(const std::string& key, wire::Status status,
                                                       wire::ErrorCode code, std::string_view error,
                                                       std::span<const std::byte> body, bool keep,
                                                       Clock::time_point now) {
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.done) return {};
  std::vector<IdempotentWaiter> waiters = std::move(it->second.waiters);
  const std::size_t c = cost(key.size(), error.size(), body.size());
  if (!keep || c > limits_.max_bytes || limits_.max_entries == 0) {
    entries_.erase(it);
    return waiters;
  }
  Entry& e = it->second;
  e.waiters = {};
  e.done = true;
  e.outcome.status = status;
  e.outcome.code = code;
  e.outcome.error = std::string{error};
  e.outcome.body = Payload::copy_of(body);
  bytes_ += c;
  ended_.emplace_back(now, key);
  trim(now);
  return waiters;
}

void IdempotencyCache::trim(Clock::time_point now) {
  while (!ended_.empty() && (now - ended_.front().first > limits_.window || bytes_ > limits_.max_bytes ||
                             ended_.size() > limits_.max_entries)) {
    auto it = entries_.find(ended_.front().second);
    if (it != entries_.end()) {
      bytes_ -= cost(it->first.size(), it->second.outcome.error.size(), it->second.outcome.body.size());
      entries_.erase(it);
    }
    ended_.pop_front();
  }
}

}  // namespace amsg::net

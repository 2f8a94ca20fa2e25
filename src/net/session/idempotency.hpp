#pragma once
// What a listening node remembers of idempotent calls (MSG flag 0x02, the id as
// the key): while the first one with a key runs, retries wait for its outcome;
// once it has ended, retries get that outcome at once, for a bounded window.
// Bounded in entries and bytes; the oldest ended entries go first. On the
// listener's executor only.

#include <chrono>
#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "amsg/payload.hpp"
#include "wire/codec.hpp"

namespace amsg::net {

struct StoredOutcome {
  wire::Status status = wire::Status::ok;
  wire::ErrorCode code = wire::ErrorCode::none;
  std::string error;
  Payload body;
};

// A retry that arrived while the first call with its key was running.
struct IdempotentWaiter {
  std::string client;
  std::uint64_t call_id = 0;
  std::uint32_t max_response = 0;
};

class IdempotencyCache {
 public:
  using Clock = std::chrono::steady_clock;
  struct Limits {
    std::chrono::milliseconds window{};
    std::size_t max_entries = 0;
    std::size_t max_bytes = 0;
  };
  // Retries that may wait for one running key; more are refused (overloaded).
  static constexpr std::size_t kMaxWaiters = 64;

  explicit IdempotencyCache(Limits limits) : limits_{limits} {}

  enum class Seen : std::uint8_t { first, waiting, done, too_many };
  // first: now recorded as running (the caller runs the message); waiting: the
  // waiter was added; done: `outcome` is set; too_many: refuse the retry.
  Seen arrive(std::string_view key, Clock::time_point now, IdempotentWaiter&& waiter, const StoredOutcome*& outcome);
  // The first call with `key` ended with `outcome`: a copy is kept when `keep`
  // (the message ran, or may have) and it fits, else the key is forgotten.
  // Returns the waiters, for the caller to answer with the same outcome.
  std::vector<IdempotentWaiter> finish(const std::string& key, wire::Status status, wire::ErrorCode code,
                                       std::string_view error, std::span<const std::byte> body, bool keep,
                                       Clock::time_point now);

  [[nodiscard]] std::size_t entries() const noexcept { return entries_.size(); }
  [[nodiscard]] std::size_t bytes() const noexcept { return bytes_; }

 private:
  struct Entry {
    bool done = false;
    StoredOutcome outcome;
    std::vector<IdempotentWaiter> waiters;
  };
  static std::size_t cost(std::size_t key, std::size_t error, std::size_t body) noexcept {
    return key + error + body + sizeof(Entry);
  }
  void trim(Clock::time_point now);

  Limits limits_;
  std::unordered_map<std::string, Entry> entries_;
  std::deque<std::pair<Clock::time_point, std::string>> ended_;  // ended entries, oldest first
  std::size_t bytes_ = 0;                                        // of the ended entries
};

}  // namespace amsg::net

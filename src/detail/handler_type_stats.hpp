#pragma once
// Per message type counters: what each type's handlers did, for Stats::handlers.
//
// Each lane owns one array of counters, indexed by a dense type index that the
// TypeTable hands out (the first time any lane runs a type). The lane is their
// only writer, so recording is plain loads and stores, no locked instruction;
// readers sum the lanes. The array is made on the lane's first handler and
// published once, so lanes that never run cost nothing.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "amsg/stats.hpp"
#include "concurrency/single_writer_counter.hpp"

namespace amsg::detail {

inline constexpr std::size_t kTrackedTypes = 32;  // the last slot sums the types that did not fit
inline constexpr const auto& kDurationBounds = kDurationBucketsSeconds;

struct TypeCounters {
  SingleWriterCounter started, ok, failed, timed_out, cancelled, sum_ticks;
  std::array<SingleWriterCounter, kDurationBounds.size() + 1> buckets;  // not cumulative; last: above every bound
};
using TypeCounterArray = std::array<TypeCounters, kTrackedTypes>;

// Type names <-> dense indexes, shared by the lanes of one Core.
class TypeTable {
 public:
  // The index of `type`, added when new; the overflow slot when the table is full.
  std::size_t index_of(std::string_view type) {
    std::lock_guard lock{mutex_};
    const std::size_t n = count_.load(std::memory_order_relaxed);
    for (std::size_t i = 0; i < n; ++i) {
      if (names_[i] == type) return i;
    }
    if (n == kTrackedTypes - 1) return kTrackedTypes - 1;
    names_[n] = std::string{type};
    count_.store(n + 1, std::memory_order_release);
    return n;
  }
  [[nodiscard]] std::vector<std::string> names() const {
    std::lock_guard lock{mutex_};
    std::vector<std::string> out(names_.begin(),
                                 names_.begin() + static_cast<std::ptrdiff_t>(count_.load(std::memory_order_relaxed)));
    out.emplace_back("(other)");
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::array<std::string, kTrackedTypes - 1> names_;
  std::atomic<std::size_t> count_{0};
};

// One lane's counters, and its cache of which handler has which index.
class LaneTypeStats {
 public:
  // The counters for a run of `handler` (of `type`); called by the lane only.
  TypeCounters& for_handler(const void* handler, std::string_view type, TypeTable& table) {
    for (const auto& entry : cache_) {
      if (entry.handler == handler && entry.type == type) return (*owned_)[entry.index];
    }
    if (!owned_) {
      owned_ = std::make_unique<TypeCounterArray>();
      published_.store(owned_.get(), std::memory_order_release);
    }
    const std::size_t index = table.index_of(type);
    cache_.push_back({handler, std::string{type}, index});
    return (*owned_)[index];
  }
  // Handlers were added, replaced or removed: a handler's address may now be another's.
  void forget_handlers() noexcept { cache_.clear(); }
  // For readers on any thread: null until the lane ran its first handler.
  [[nodiscard]] const TypeCounterArray* counters() const noexcept { return published_.load(std::memory_order_acquire); }

 private:
  std::unique_ptr<TypeCounterArray> owned_;
  std::atomic<const TypeCounterArray*> published_{nullptr};
  struct Entry {
    const void* handler;
    std::string type;  // one handler object may serve several types
    std::size_t index;
  };
  std::vector<Entry> cache_;
};

}  // namespace amsg::detail

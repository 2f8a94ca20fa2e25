#pragma once
// A log-linear latency histogram (16 sub-buckets per power of two: ~6 % error),
// written by one thread at a time and readable by any thread at any time.
// Values are recorded in ticks (see ticks.hpp) and converted when summarised.

#include <array>
#include <atomic>
#include <bit>
#include <cstdint>

#include "amsg/stats.hpp"
#include "concurrency/single_writer_counter.hpp"

namespace amsg::detail {

class LatencyHistogram {
 public:
  static constexpr int kSubBits = 4;
  static constexpr int kSub = 1 << kSubBits;
  static constexpr int kBuckets = 64 * kSub;

  static constexpr int index_of(std::uint64_t ns) noexcept {
    if (ns < kSub) return static_cast<int>(ns);
    const int exp = 63 - std::countl_zero(ns);  // >= kSubBits
    const auto sub = static_cast<int>((ns >> (exp - kSubBits)) & (kSub - 1));
    return (exp - kSubBits + 1) * kSub + sub;
  }
  // Midpoint of the bucket's value range.
  static constexpr double value_of(int index) noexcept {
    if (index < kSub) return index;
    const int exp = index / kSub + kSubBits - 1;
    const int sub = index % kSub;
    const auto low =
        static_cast<double>((std::uint64_t{1} << exp) + (static_cast<std::uint64_t>(sub) << (exp - kSubBits)));
    const auto width = static_cast<double>(std::uint64_t{1} << (exp - kSubBits));
    return low + width / 2;
  }

  void record(std::uint64_t ns) noexcept {
    buckets_[static_cast<std::size_t>(index_of(ns))].add();
    sum_ns_.add(ns);
    if (ns > max_ns_.load(std::memory_order_relaxed)) max_ns_.store(ns, std::memory_order_relaxed);
  }

  // Adds this histogram into plain arrays (for merging several).
  void merge_into(std::array<std::uint64_t, kBuckets>& into, std::uint64_t& sum, std::uint64_t& max) const noexcept {
    for (std::size_t i = 0; i < into.size(); ++i) into[i] += buckets_[i].get();
    sum += sum_ns_.get();
    const auto m = max_ns_.load(std::memory_order_relaxed);
    if (m > max) max = m;
  }

  static LatencySummary summarize(const std::array<std::uint64_t, kBuckets>& buckets, std::uint64_t sum,
                                  std::uint64_t max, double ns_per_tick) noexcept {
    const double us_per_tick = ns_per_tick / 1000.0;
    LatencySummary s;
    for (auto c : buckets) s.count += c;
    if (s.count == 0) return s;
    s.mean_us = static_cast<double>(sum) / static_cast<double>(s.count) * us_per_tick;
    s.max_us = static_cast<double>(max) * us_per_tick;
    const double qs[] = {0.50, 0.90, 0.99, 0.999};
    double* outs[] = {&s.p50_us, &s.p90_us, &s.p99_us, &s.p999_us};
    std::uint64_t seen = 0;
    std::size_t q = 0;
    for (int i = 0; i < kBuckets && q < 4; ++i) {
      seen += buckets[static_cast<std::size_t>(i)];
      while (q < 4 && static_cast<double>(seen) >= qs[q] * static_cast<double>(s.count)) {
        *outs[q] = value_of(i) * us_per_tick;
        ++q;
      }
    }
    return s;
  }

 private:
  std::array<SingleWriterCounter, kBuckets> buckets_{};
  SingleWriterCounter sum_ns_;
  std::atomic<std::uint64_t> max_ns_{0};
};

}  // namespace amsg::detail

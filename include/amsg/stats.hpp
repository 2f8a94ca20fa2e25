#pragma once
/// @file
/// amsg::Stats: a manager's counters, readable at any time without stopping it.
///
/// Accounting: once every received message has ended (after shutdown, or whenever
/// in_flight and queue_depth are both 0),
///   received == ok + failed + cancelled + rejected
/// and each message with a notify_id produced exactly one notification.

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "amsg/export.hpp"

namespace amsg {

/// Percentiles of a latency distribution, in microseconds (within ~6 %).
struct AMSG_EXPORT LatencySummary {
  std::uint64_t count = 0;  ///< samples
  double mean_us = 0;       ///< mean
  double p50_us = 0;        ///< median
  double p90_us = 0;        ///< 90th percentile
  double p99_us = 0;        ///< 99th percentile
  double p999_us = 0;       ///< 99.9th percentile
  double max_us = 0;        ///< largest
};

/// The upper bounds (seconds) of every DurationHistogram amsg fills.
inline constexpr std::array<double, 12> kDurationBucketsSeconds{1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3,
                                                                1e-2, 5e-2, 0.1,  0.5,  1.0,  5.0};

/// A histogram of durations in seconds, in the shape Prometheus exposes:
/// counts[i] is the number of samples <= upper_bounds_s[i] (cumulative); the
/// last count (one more than the bounds) is every sample (+Inf).
struct AMSG_EXPORT DurationHistogram {
  std::vector<double> upper_bounds_s;  ///< the buckets' upper bounds, ascending
  std::vector<std::uint64_t> counts;   ///< cumulative counts per bound, then the total (+Inf)
  double sum_s = 0;                    ///< the sum of all samples
  std::uint64_t count = 0;             ///< the number of samples
};

/// What the handlers of one message type did (only messages whose handler ran).
/// At most 31 types are tracked by name; later ones are summed under "(other)".
struct AMSG_EXPORT HandlerTypeStats {
  std::string type;             ///< the message type ("(other)": the types beyond the 31 tracked)
  std::uint64_t started = 0;    ///< handler started
  std::uint64_t ok = 0;         ///< finished normally
  std::uint64_t failed = 0;     ///< threw, or was cancelled by its deadline
  std::uint64_t timed_out = 0;  ///< of `failed`: cancelled by its deadline
  std::uint64_t cancelled = 0;  ///< cancelled by shutdown or by its sender (Ingress::cancel)
  std::uint64_t running = 0;    ///< started and not ended, now
  DurationHistogram duration;   ///< handler start -> end
};

/// A manager's counters.
struct AMSG_EXPORT Stats {
  std::uint64_t received = 0;       ///< accepted into the inbox
  std::uint64_t dispatched = 0;     ///< handler started
  std::uint64_t ok = 0;             ///< handler finished normally
  std::uint64_t failed = 0;         ///< handler threw, the type was unknown, or the deadline passed
  std::uint64_t unknown_type = 0;   ///< of `failed`: no handler for the type
  std::uint64_t timed_out = 0;      ///< of `failed`: the message's deadline passed (queued, or cancelled running)
  std::uint64_t rejected = 0;       ///< refused before lookup: payload over the limit
  std::uint64_t cancelled = 0;      ///< ended by shutdown or by its sender (a CANCEL), queued or running
  std::uint64_t notifications = 0;  ///< notifications produced (one per notify_id)
  std::uint64_t in_flight = 0;      ///< workers busy with a message right now
  std::uint64_t max_in_flight = 0;  ///< highest in_flight seen; never above the concurrency limit
  std::uint64_t queue_depth = 0;    ///< messages waiting in the inbox
  std::uint64_t notifications_queued = 0;  ///< notifications waiting in the channel for a reader
  LatencySummary latency;                  ///< inbox accepted -> notification produced (or message ended)
  DurationHistogram latency_histogram;     ///< the same, as a histogram (bucket edges within ~6 %)
  std::vector<HandlerTypeStats> handlers;  ///< per message type, in the order types were first run

  /// The counters on one line (for logs).
  [[nodiscard]] std::string to_string() const;
};

}  // namespace amsg

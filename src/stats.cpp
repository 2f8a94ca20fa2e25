#include "amsg/stats.hpp"

#include <fmt/format.h>

namespace amsg {

std::string Stats::to_string() const {
  return fmt::format(
      "received={} dispatched={} ok={} failed={} unknown_type={} timed_out={} rejected={} cancelled={} "
      "notifications={} "
      "in_flight={} max_in_flight={} queue_depth={} latency_us(p50={:.2f} p99={:.2f} p999={:.2f} max={:.2f} n={})",
      received, dispatched, ok, failed, unknown_type, timed_out, rejected, cancelled, notifications, in_flight,
      max_in_flight, queue_depth, latency.p50_us, latency.p99_us, latency.p999_us, latency.max_us, latency.count);
}

}  // namespace amsg

#pragma once
// What `amsg bench` reports, in-process or across processes: one Result per
// measurement, printed as a line or as one JSON object.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace amsg::tool {

struct Result {
  std::string scenario;
  std::string transport = "inproc";
  std::string consumer;
  std::size_t messages = 0;
  std::size_t concurrency = 0;
  std::size_t threads = 0;
  long spin_us = 0;
  std::optional<double> msgs_per_s;
  std::optional<double> cpu_us_per_msg;
  std::optional<double> offered_rate;
  std::optional<double> p50_us, p99_us, p999_us, mean_us;
  // isolation: the flooding client's outcomes per second beside the measured one
  // (failed: any other outcome, such as peer lost after being cut off)
  std::optional<double> flood_ok_per_s, flood_refused_per_s, flood_failed_per_s;
  // fanout: the number of workers, and worker-messages per second with 16 broadcasts in flight
  std::size_t workers = 0;
  std::optional<double> worker_msgs_per_s;
  // The latency distribution: (fraction of samples, microseconds) at fixed
  // quantiles from 0.001 to 0.9999 (in the JSON as "cdf", for bench/plot.py).
  std::vector<std::pair<double, double>> cdf;
  long peak_rss_kb = 0;
  bool all_notified = false;
};

void print(const Result& r, bool json);
// Exact percentiles of `ns` (nanoseconds; sorted in place) into r, in microseconds.
void percentiles(std::vector<std::int64_t>& ns, Result& r);
double cpu_seconds();
long peak_rss_kb();

}  // namespace amsg::tool

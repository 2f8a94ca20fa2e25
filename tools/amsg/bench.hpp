#pragma once
// `amsg bench`: the in-process benchmark of the core runtime.

#include <cstddef>
#include <string>
#include <vector>

#include <amsg/manager_options.hpp>

namespace amsg::tool {

struct BenchOptions {
  std::vector<std::string> scenarios{"thr", "rate", "pingpong"};
  std::vector<std::size_t> concurrency{4, 64};  // thr runs once per value
  std::size_t messages = 1'000'000;             // thr
  std::size_t pingpong_messages = 220'000;      // the first 10 % are warm-up
  long gap_us = 0;                              // across processes: pause before each pingpong call
  double rate = 50'000;                         // rate: offered messages/s
  double rate_secs = 4;
  std::size_t payload = 64;
  long handler_ms = 0;                             // isolation: 0 = echo, else the handler sleeps this long
  std::size_t isolation_calls = 5'000;             // isolation: round trips measured alone, then beside the flood
  std::size_t threads = ManagerOptions{}.threads;  // the library default; 0 = hardware threads
  long spin_us = 0;                                // ManagerOptions::idle_spin
  bool busy_poll = false;                          // UcxOptions::busy_poll, both sides (--transport ucx)
  // Who reads notifications: a coroutine on the pool or a plain thread, one at a time
  // or in batches ("-batch"); in pingpong, who sends and waits (batching has no effect).
  std::vector<std::size_t> workers{1, 2, 4, 8, 16, 32};  // fanout: one run per value
  std::size_t broadcasts = 2'000;                        // fanout: broadcasts timed one at a time, then pipelined
  std::string consumer = "coroutine-batch";
  bool json = false;
  bool progress = true;  // only drawn when stderr is a terminal
};

int run_bench(const BenchOptions& options);
// The same scenarios across processes (transport "ipc" or "tcp"), plus "reqresp".
int run_net_bench(const BenchOptions& options, const std::string& transport);
struct Result;
// fanout: a leader and W `amsg serve` workers through a Cohort, one result per W.
std::vector<Result> run_fanout(const BenchOptions& options, const std::string& transport);

}  // namespace amsg::tool

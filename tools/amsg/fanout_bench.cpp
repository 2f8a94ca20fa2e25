// `amsg bench --transport ipc|tcp --scenario fanout --workers 1,2,4,...`: one
// leader (this process) and W `amsg serve` workers, as ../shared/anchors/fanout-raw
// measures raw ZeroMQ:
//  - broadcast latency: one 64-byte echo to every worker through a Cohort, until
//    the last outcome is back, one broadcast at a time (p50, p99);
//  - pipelined rate: 16 broadcasts in flight, worker-messages per second
//    (W x broadcasts per second).

#include <fmt/format.h>
#include <amsg/net/cohort.hpp>
#include <amsg/net/node.hpp>
#include <asio/co_spawn.hpp>
#include <asio/use_future.hpp>
#include <chrono>
#include <memory>
#include <vector>

#include "bench.hpp"
#include "bench_report.hpp"
#include "serve_child.hpp"

namespace amsg::tool {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kInFlight = 16;  // broadcasts in flight in the pipelined rate, as fanout-raw

std::string worker_address(const std::string& transport, std::size_t i) {
  if (transport == "tcp") return "tcp://127.0.0.1:0";
  if (transport == "ucx") return "ucx://127.0.0.1:0";
  return fmt::format("ipc:///tmp/amsg-bench-fanout-{}-{}.ipc", ::getpid(), i);
}

Result run_one(const BenchOptions& o, const std::string& transport, std::size_t workers) {
  std::vector<std::unique_ptr<ServeChild>> children;
  for (std::size_t i = 0; i < workers; ++i) {
    children.push_back(
        std::make_unique<ServeChild>(worker_address(transport, i), 4, o.threads, o.spin_us, o.busy_poll));
  }
  net::NodeOptions opts;
  opts.manager.threads = o.threads;  // the library's default unless --threads says otherwise
  opts.manager.logger_name = "amsg.bench";
  opts.manager.idle_spin = std::chrono::microseconds{o.spin_us};
  opts.ucx.busy_poll = o.busy_poll;
  net::Node leader{opts};
  net::Cohort cohort{leader};
  for (const auto& c : children) cohort.add(c->address());
  leader.start();
  if (!cohort.wait_ready(workers, std::chrono::seconds{30})) throw std::runtime_error("the workers did not connect");
  const std::string body(o.payload, 'x');
  const std::size_t n = o.broadcasts;

  // Latency: one broadcast at a time.
  std::vector<std::int64_t> ns;
  ns.reserve(n);
  auto latency = asio::co_spawn(
      leader.executor(),
      [&]() -> asio::awaitable<bool> {
        bool all = true;
        for (std::size_t i = 0; i < n; ++i) {
          const auto t0 = Clock::now();
          const net::FanoutResult r = co_await cohort.broadcast("echo", Payload::copy_of(body), {"b"});
          ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
          all = all && r.succeeded && r.outcomes.size() == workers;
        }
        co_return all;
      },
      asio::use_future);
  bool all = latency.get();

  // Rate: kInFlight coroutines, each broadcasting in turn.
  const std::size_t per_caller = std::max<std::size_t>(n / kInFlight, 1);
  std::vector<std::future<bool>> callers;
  const auto t0 = Clock::now();
  for (std::size_t c = 0; c < kInFlight; ++c) {
    callers.push_back(asio::co_spawn(
        leader.executor(),
        [&]() -> asio::awaitable<bool> {
          bool ok = true;
          for (std::size_t i = 0; i < per_caller; ++i) {
            const net::FanoutResult r = co_await cohort.broadcast("echo", Payload::copy_of(body), {"p"});
            ok = ok && r.succeeded && r.outcomes.size() == workers;
          }
          co_return ok;
        },
        asio::use_future));
  }
  for (auto& f : callers) all = f.get() && all;
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();

  Result r;
  r.scenario = "fanout";
  r.transport = transport;
  r.consumer = "coroutine";
  r.messages = n;
  r.concurrency = kInFlight;
  r.threads = o.threads;
  r.spin_us = o.spin_us;
  r.workers = workers;
  r.worker_msgs_per_s = static_cast<double>(per_caller * kInFlight * workers) / secs;
  ns.erase(ns.begin(), ns.begin() + static_cast<std::ptrdiff_t>(n / 10));  // warm-up
  percentiles(ns, r);
  r.all_notified = all;
  r.peak_rss_kb = peak_rss_kb();
  leader.shutdown(std::chrono::seconds{1});
  return r;
}

}  // namespace

std::vector<Result> run_fanout(const BenchOptions& o, const std::string& transport) {
  std::vector<Result> results;
  results.reserve(o.workers.size());
  for (const std::size_t w : o.workers) results.push_back(run_one(o, transport, w));
  return results;
}

}  // namespace amsg::tool

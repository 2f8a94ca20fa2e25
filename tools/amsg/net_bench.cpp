// `amsg bench --transport ipc|tcp`: the benchmark across processes. An
// `amsg serve` child (this executable) runs the handlers; this process sends.
//  - pingpong: notified round trips one at a time (send -> remote handler -> notification
//    back), from a coroutine on the node's strand; latency percentiles.
//  - thr: notified one-way throughput: every message asks for a notification, the
//    outcome comes back on the notification channel; N = the server's concurrency.
//  - reqresp: request/response with 64 calls outstanding (64 coroutines calling echo).
//  - isolation: one client's round trips alone, then beside a flooding client
//    (4096 calls outstanding, far over its budget at the server).

#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <amsg/amsg.hpp>
#include <amsg/net/node.hpp>
#include <asio/co_spawn.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_future.hpp>
#include <chrono>
#include <csignal>
#include <optional>

#include "bench.hpp"
#include "bench_report.hpp"
#include "child_process.hpp"
#include "cli_support.hpp"
#include "serve_child.hpp"

namespace amsg::tool {
namespace {

using Clock = std::chrono::steady_clock;

std::string listen_address(const std::string& transport) {
  if (transport == "tcp") return "tcp://127.0.0.1:0";
  if (transport == "ucx") return "ucx://127.0.0.1:0";
  return fmt::format("ipc:///tmp/amsg-bench-{}.ipc", ::getpid());
}

net::NodeOptions client_options(const BenchOptions& o) {
  net::NodeOptions opts;
  opts.manager.threads = o.threads;  // the library's default unless --threads says otherwise
  opts.manager.logger_name = "amsg.bench";
  opts.manager.idle_spin = std::chrono::microseconds{o.spin_us};
  opts.ucx.busy_poll = o.busy_poll;
  return opts;
}

Result base_result(std::string scenario, const std::string& transport, const BenchOptions& o, std::size_t n,
                   std::size_t concurrency) {
  Result r;
  r.scenario = std::move(scenario);
  r.transport = transport;
  r.consumer = "coroutine";
  r.messages = n;
  r.concurrency = concurrency;
  r.threads = o.threads;
  r.spin_us = o.spin_us;
  return r;
}

Result run_pingpong(const BenchOptions& o, const std::string& transport) {
  ServeChild server{listen_address(transport), 4, o.threads, o.spin_us, o.busy_poll};
  net::Node client{client_options(o)};
  client.start();
  const net::PeerId peer = client.connect(server.address());
  client.wait_ready(peer, std::chrono::seconds{10});
  const std::size_t n = o.pingpong_messages;
  std::vector<std::int64_t> ns;
  ns.reserve(n);
  std::string id = "rt";
  const std::string body(o.payload, 'x');
  auto done = asio::co_spawn(
      client.executor(),
      [&]() -> asio::awaitable<bool> {
        bool all = true;
        asio::steady_timer gap{co_await asio::this_coro::executor};
        for (std::size_t i = 0; i < n; ++i) {
          if (o.gap_us > 0) {  // sparse traffic: each call finds both sides asleep
            gap.expires_after(std::chrono::microseconds{o.gap_us});
            co_await gap.async_wait(asio::use_awaitable);
          }
          const auto t0 = Clock::now();
          Notification note = co_await client.call(peer, "sink", Payload::copy_of(body), {id});
          ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
          all = all && note.is_success();
        }
        co_return all;
      },
      asio::use_future);
  const bool all = done.get();
  Result r = base_result("pingpong", transport, o, n, 4);
  ns.erase(ns.begin(), ns.begin() + static_cast<std::ptrdiff_t>(n / 10));  // warm-up
  percentiles(ns, r);
  r.all_notified = all;
  r.peak_rss_kb = peak_rss_kb();
  return r;
}

Result run_thr(const BenchOptions& o, const std::string& transport, std::size_t concurrency) {
  ServeChild server{listen_address(transport), concurrency, o.threads, o.spin_us, o.busy_poll};
  net::Node client{client_options(o)};
  client.start();
  const net::PeerId peer = client.connect(server.address());
  client.wait_ready(peer, std::chrono::seconds{10});
  const std::size_t n = o.messages;
  const std::string body(o.payload, 'x');
  const std::string id = "t";
  std::size_t ok = 0;
  std::size_t got = 0;
  const double cpu0 = cpu_seconds();
  const auto t0 = Clock::now();
  // Sender and reader are coroutines on the node's strand: no thread of their own.
  auto reader = asio::co_spawn(
      client.executor(),
      [&]() -> asio::awaitable<void> {
        std::vector<Notification> batch;
        while (got < n) {
          batch.clear();
          const std::size_t k = co_await client.manager().async_receive_batch(batch, 256);
          if (k == 0) break;
          got += k;
          for (const auto& note : batch) ok += note.is_success() ? 1 : 0;
        }
      },
      asio::use_future);
  auto sender = asio::co_spawn(
      client.executor(),
      [&]() -> asio::awaitable<void> {
        for (std::size_t i = 0; i < n; ++i) {
          if (co_await client.async_send(peer, "sink", Payload::copy_of(body), {id}) != SendStatus::ok) break;
        }
      },
      asio::use_future);
  sender.get();
  reader.get();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  Result r = base_result("thr", transport, o, n, concurrency);
  r.consumer = "coroutine-batch";
  r.msgs_per_s = static_cast<double>(got) / secs;
  r.cpu_us_per_msg = (cpu_seconds() - cpu0) * 1e6 / static_cast<double>(n);
  r.all_notified = ok == n;
  r.peak_rss_kb = peak_rss_kb();
  return r;
}

Result run_reqresp(const BenchOptions& o, const std::string& transport) {
  constexpr std::size_t kOutstanding = 64;
  ServeChild server{listen_address(transport), kOutstanding, o.threads, o.spin_us, o.busy_poll};
  net::Node client{client_options(o)};
  client.start();
  const net::PeerId peer = client.connect(server.address());
  client.wait_ready(peer, std::chrono::seconds{10});
  const std::size_t per = std::max<std::size_t>(1, o.messages / kOutstanding);
  const std::string body(o.payload, 'x');
  std::atomic<std::size_t> ok{0};
  const double cpu0 = cpu_seconds();
  const auto t0 = Clock::now();
  std::vector<std::future<void>> workers;
  for (std::size_t w = 0; w < kOutstanding; ++w) {
    workers.push_back(asio::co_spawn(
        client.executor(),
        [&]() -> asio::awaitable<void> {
          const std::string id = "q";
          for (std::size_t i = 0; i < per; ++i) {
            Notification note = co_await client.call(peer, "echo", Payload::copy_of(body), {id});
            if (note.is_success() && note.payload.size() == body.size()) ok.fetch_add(1, std::memory_order_relaxed);
          }
        },
        asio::use_future));
  }
  for (auto& f : workers) f.get();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  const std::size_t n = per * kOutstanding;
  Result r = base_result("reqresp", transport, o, n, kOutstanding);
  r.msgs_per_s = static_cast<double>(n) / secs;
  r.cpu_us_per_msg = (cpu_seconds() - cpu0) * 1e6 / static_cast<double>(n);
  r.all_notified = ok.load() == n;
  r.peak_rss_kb = peak_rss_kb();
  return r;
}

// One client's round trips one at a time: alone, then beside a flooding client
// (another node of this process), twice: a flood that keeps its budget's worth
// of calls outstanding (the most a node lets one client have), then one that
// keeps four times that and answers every refusal with another call.
std::vector<Result> run_isolation(const BenchOptions& o, const std::string& transport) {
  ServeChild server{listen_address(transport), 4, o.threads, o.spin_us, o.busy_poll};
  const std::string type = o.handler_ms > 0 ? "sleep" : "echo";
  const std::string body = o.handler_ms > 0 ? std::to_string(o.handler_ms) : std::string(o.payload, 'x');
  net::Node normal{client_options(o)};
  normal.start();
  const net::PeerId peer = normal.connect(server.address());
  normal.wait_ready(peer, std::chrono::seconds{10});
  const std::size_t n = o.isolation_calls;
  auto measure = [&](const char* name) {
    std::vector<std::int64_t> ns;
    ns.reserve(n);
    auto done = asio::co_spawn(
        normal.executor(),
        [&]() -> asio::awaitable<bool> {
          bool all = true;
          for (std::size_t i = 0; i < n + n / 10; ++i) {  // the first tenth: warm-up
            const auto t0 = Clock::now();
            Notification note = co_await normal.call(peer, type, Payload::copy_of(body), {"n"});
            if (i >= n / 10) {
              ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
            }
            all = all && note.is_success();
          }
          co_return all;
        },
        asio::use_future);
    Result r = base_result(name, transport, o, n, 4);
    r.consumer = type;
    r.all_notified = done.get();
    percentiles(ns, r);
    r.peak_rss_kb = peak_rss_kb();
    return r;
  };
  auto beside_flood = [&](const char* name, std::size_t outstanding) {
    net::Node flood{client_options(o)};
    flood.start();
    const net::PeerId flood_peer = flood.connect(server.address());
    flood.wait_ready(flood_peer, std::chrono::seconds{10});
    std::atomic<bool> stop{false};
    std::atomic<std::size_t> ok{0};
    std::atomic<std::size_t> refused{0};
    std::atomic<std::size_t> failed{0};
    std::vector<std::future<void>> flooders;
    for (std::size_t i = 0; i < outstanding; ++i) {
      flooders.push_back(asio::co_spawn(
          flood.executor(),
          [&]() -> asio::awaitable<void> {
            while (!stop.load(std::memory_order_relaxed)) {
              Notification note = co_await flood.call(flood_peer, type, Payload::copy_of(body), {"f"});
              auto& counter = note.is_success() ? ok : note.code == errc::overloaded ? refused : failed;
              counter.fetch_add(1, std::memory_order_relaxed);
            }
          },
          asio::use_future));
    }
    const auto t0 = Clock::now();
    Result r = measure(name);
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    r.flood_ok_per_s = static_cast<double>(ok.load()) / secs;
    r.flood_refused_per_s = static_cast<double>(refused.load()) / secs;
    r.flood_failed_per_s = static_cast<double>(failed.load()) / secs;
    stop = true;
    for (auto& f : flooders) f.get();
    return r;
  };
  const std::size_t budget = net::NodeOptions{}.max_inflight_per_client;
  std::vector<Result> results;
  results.push_back(measure("isolation-alone"));
  results.push_back(beside_flood("isolation-beside-flood", budget));
  results.push_back(beside_flood("isolation-beside-abuser", 4 * budget));
  return results;
}

}  // namespace

int run_net_bench(const BenchOptions& o, const std::string& transport) {
  auto log = spdlog::get("amsg.bench");
  if (!log) {
    log = std::make_shared<spdlog::logger>("amsg.bench");
    spdlog::register_logger(log);
  }
  log->set_level(log_level_or(spdlog::level::err));
  ::signal(SIGPIPE, SIG_IGN);
  bool all_ok = true;
  try {
    for (const auto& scenario : o.scenarios) {
      std::vector<Result> results;
      if (scenario == "pingpong") results.push_back(run_pingpong(o, transport));
      if (scenario == "thr") {
        for (auto n : o.concurrency) results.push_back(run_thr(o, transport, n));
      }
      if (scenario == "reqresp") results.push_back(run_reqresp(o, transport));
      if (scenario == "isolation") results = run_isolation(o, transport);
      if (scenario == "fanout") results = run_fanout(o, transport);
      for (const auto& r : results) {
        all_ok = all_ok && r.all_notified;
        print(r, o.json);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "amsg bench: %s\n", e.what());
    return kExitFailure;
  }
  return all_ok ? kExitOk : kExitFailure;
}

}  // namespace amsg::tool

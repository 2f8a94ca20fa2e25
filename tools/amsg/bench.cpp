#include "bench.hpp"
#include "bench_report.hpp"
#include "cli_support.hpp"
#include "progress.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>
#include <algorithm>
#include <amsg/amsg.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <future>
#include <optional>
#include <thread>
#include <vector>

namespace amsg::tool {
namespace {

using Clock = std::chrono::steady_clock;

// The fields every scenario reports. `completed` messages in `secs` seconds of
// wall time and `cpu_secs` of process CPU; `all_notified`: each got its notification.
Result make_result(std::string scenario, const BenchOptions& o, const Manager& m, std::size_t messages,
                   std::size_t completed, double secs, double cpu_secs, bool all_notified) {
  Result r;
  r.scenario = std::move(scenario);
  r.consumer = o.consumer;
  r.messages = messages;
  r.concurrency = m.options().concurrency;
  r.threads = m.options().threads;
  r.spin_us = o.spin_us;
  r.msgs_per_s = static_cast<double>(completed) / secs;
  r.cpu_us_per_msg = cpu_secs * 1e6 / static_cast<double>(messages);
  r.all_notified = all_notified;
  return r;
}

// Latency percentiles over the samples after the first 10 % (warm-up).
void warm_percentiles(const std::vector<std::int64_t>& samples, Result& r);

}  // namespace

long peak_rss_kb() {
  std::ifstream status{"/proc/self/status"};
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return 0;
}

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto secs = [](timeval tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6; };
  return secs(ru.ru_utime) + secs(ru.ru_stime);
}

// Exact percentiles from all samples (nanoseconds in, microseconds out).
void percentiles(std::vector<std::int64_t>& ns, Result& r) {
  if (ns.empty()) return;
  std::sort(ns.begin(), ns.end());
  auto at = [&](double q) {
    const auto i = static_cast<std::size_t>(
        std::min<double>(static_cast<double>(ns.size() - 1), q * static_cast<double>(ns.size())));
    return static_cast<double>(ns[i]) / 1000.0;
  };
  r.p50_us = at(0.50);
  r.p99_us = at(0.99);
  r.p999_us = at(0.999);
  r.cdf.clear();
  for (const double q : {0.001, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999,
                         0.9995, 0.9999}) {
    r.cdf.emplace_back(q, at(q));
  }
  double sum = 0;
  for (auto v : ns) sum += static_cast<double>(v);
  r.mean_us = sum / static_cast<double>(ns.size()) / 1000.0;
}

namespace {

void warm_percentiles(const std::vector<std::int64_t>& samples, Result& r) {
  std::vector<std::int64_t> kept(samples.begin() + static_cast<std::ptrdiff_t>(samples.size() / 10), samples.end());
  percentiles(kept, r);
}

// Reads `n` notifications, calling on_note for each: from a plain thread with
// blocking receive(), or from a coroutine on the manager's own executor; one at a
// time, or in batches of up to kBatch ("-batch" modes).
template <typename OnNote>
class Consumer {
 public:
  static constexpr std::size_t kBatch = 256;

  Consumer(Manager& m, const std::string& mode, std::size_t n, OnNote on_note)
      : m_{m}, n_{n}, on_note_{on_note}, batch_{mode.ends_with("-batch")} {
    if (mode.starts_with("coroutine")) {
      asio::co_spawn(m.executor(), run_coroutine(), asio::detached);
    } else {
      thread_ = std::thread{[this] { run_thread(); }};
    }
  }
  void wait() {
    done_.get_future().wait();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run_thread() {
    std::vector<Notification> notes;
    notes.reserve(kBatch);
    for (std::size_t i = 0; i < n_;) {
      if (batch_) {
        notes.clear();
        if (m_.receive_batch(notes, std::min(kBatch, n_ - i)) == 0) break;
        for (auto& note : notes) on_note_(i++, note);
      } else {
        auto note = m_.receive();
        if (!note) break;
        on_note_(i++, *note);
      }
    }
    done_.set_value();
  }
  asio::awaitable<void> run_coroutine() {
    std::vector<Notification> notes;
    notes.reserve(kBatch);
    for (std::size_t i = 0; i < n_;) {
      if (batch_) {
        notes.clear();
        if (co_await m_.async_receive_batch(notes, std::min(kBatch, n_ - i)) == 0) break;
        for (auto& note : notes) on_note_(i++, note);
      } else {
        auto note = co_await m_.async_receive();
        if (!note) break;
        on_note_(i++, *note);
      }
    }
    done_.set_value();
  }
  Manager& m_;
  std::size_t n_;
  OnNote on_note_;
  bool batch_;
  std::promise<void> done_;
  std::thread thread_;
};

ManagerOptions manager_options(const BenchOptions& o, std::size_t concurrency) {
  ManagerOptions m;
  m.concurrency = concurrency;
  m.threads = o.threads;
  m.idle_spin = std::chrono::microseconds{o.spin_us};
  m.logger_name = "amsg.bench";
  return m;
}

void register_noop(Manager& m) {
  m.register_handler("noop", make_handler([](Message&) -> asio::awaitable<void> { co_return; }));
}

Payload make_payload(std::size_t size) {
  Payload p{size};
  if (size > 0) std::memset(p.data(), 0x5a, size);
  return p;
}

std::string id_of(std::size_t i) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, i);
  return std::string{buf, end};
}

std::size_t index_of(const std::string& id) {
  std::size_t i = 0;
  std::from_chars(id.data(), id.data() + id.size(), i);
  return i;
}

// Throughput: a producer thread sends as fast as the inbox takes messages, a
// consumer thread reads every notification; from the first send to the last read.
Result run_thr(const BenchOptions& o, std::size_t concurrency) {
  Manager m{manager_options(o, concurrency)};
  register_noop(m);
  m.start();
  const std::size_t n = o.messages;
  Progress progress{o.progress, fmt::format("thr N={}", concurrency), n};
  std::size_t ok = 0;
  const double cpu0 = cpu_seconds();
  const auto t0 = Clock::now();
  Consumer consumer{m, o.consumer, n, [&](std::size_t i, const Notification& note) {
                      ok += note.is_success() ? 1 : 0;
                      if ((i & 0x3fff) == 0) progress.count.store(i, std::memory_order_relaxed);
                    }};
  for (std::size_t i = 0; i < n; ++i) m.send(Message{"noop", make_payload(o.payload), id_of(i)});
  consumer.wait();
  const auto t1 = Clock::now();
  const double cpu1 = cpu_seconds();
  m.shutdown();
  Result r = make_result("thr", o, m, n, n, std::chrono::duration<double>(t1 - t0).count(), cpu1 - cpu0, ok == n);
  r.peak_rss_kb = peak_rss_kb();
  return r;
}

// Latency at a fixed offered rate: an open-loop producer stamps each message just
// before send(); latency is stamp -> the consumer reads its notification.
Result run_rate(const BenchOptions& o) {
  const std::size_t concurrency = 64;
  Manager m{manager_options(o, concurrency)};
  register_noop(m);
  m.start();
  const auto n = static_cast<std::size_t>(o.rate * o.rate_secs);
  std::vector<std::int64_t> sent_ns(n, 0);
  std::vector<std::int64_t> latency_ns(n, 0);
  Progress progress{o.progress, "rate", n};
  std::size_t received = 0;
  Consumer consumer{m, o.consumer, n, [&](std::size_t i, const Notification& note) {
                      const auto now = Clock::now().time_since_epoch().count();
                      const std::size_t idx = index_of(note.id);
                      latency_ns[idx] = now - sent_ns[idx];
                      ++received;
                      if ((i & 0x3ff) == 0) progress.count.store(i, std::memory_order_relaxed);
                    }};
  prctl(PR_SET_TIMERSLACK, 1UL);
  const double cpu0 = cpu_seconds();
  const auto start = Clock::now();
  const double interval_ns = 1e9 / o.rate;
  for (std::size_t i = 0; i < n; ++i) {
    const auto due = start + std::chrono::nanoseconds{static_cast<std::int64_t>(interval_ns * static_cast<double>(i))};
    if (Clock::now() < due) {
      const auto since_epoch = std::chrono::duration_cast<std::chrono::nanoseconds>(due.time_since_epoch()).count();
      timespec ts{static_cast<time_t>(since_epoch / 1'000'000'000), static_cast<long>(since_epoch % 1'000'000'000)};
      clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
    }
    Message msg{"noop", make_payload(o.payload), id_of(i)};
    sent_ns[i] = Clock::now().time_since_epoch().count();
    m.send(std::move(msg));
  }
  consumer.wait();
  const auto elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu1 = cpu_seconds();
  m.shutdown();
  Result r = make_result("rate", o, m, n, received, elapsed, cpu1 - cpu0, received == n);
  r.offered_rate = o.rate;
  warm_percentiles(latency_ns, r);
  r.peak_rss_kb = peak_rss_kb();
  return r;
}

// One message outstanding at a time: send, wait for its notification, repeat.
// From a plain thread (blocking send/receive) or from a coroutine on the pool.
Result run_pingpong(const BenchOptions& o) {
  const std::size_t concurrency = 64;
  Manager m{manager_options(o, concurrency)};
  register_noop(m);
  m.start();
  const std::size_t n = o.pingpong_messages;
  std::vector<std::int64_t> rtt(n, 0);
  Progress progress{o.progress, "pingpong", n};
  std::size_t ok = 0;
  const double cpu0 = cpu_seconds();
  const auto start = Clock::now();
  if (o.consumer.starts_with("coroutine")) {
    std::promise<void> done;
    asio::co_spawn(
        m.executor(),
        [&]() -> asio::awaitable<void> {
          for (std::size_t i = 0; i < n; ++i) {
            const auto t0 = Clock::now();
            co_await m.async_send(Message{"noop", make_payload(o.payload), id_of(i)});
            auto note = co_await m.async_receive();
            rtt[i] = (Clock::now() - t0).count();
            if (note && note->is_success()) ++ok;
            if ((i & 0x3fff) == 0) progress.count.store(i, std::memory_order_relaxed);
          }
          done.set_value();
        },
        asio::detached);
    done.get_future().wait();
  } else {
    for (std::size_t i = 0; i < n; ++i) {
      const auto t0 = Clock::now();
      m.send(Message{"noop", make_payload(o.payload), id_of(i)});
      auto note = m.receive();
      rtt[i] = (Clock::now() - t0).count();
      if (note && note->is_success()) ++ok;
      if ((i & 0x3fff) == 0) progress.count.store(i, std::memory_order_relaxed);
    }
  }
  const auto elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu1 = cpu_seconds();
  m.shutdown();
  Result r = make_result("pingpong", o, m, n, n, elapsed, cpu1 - cpu0, ok == n);
  warm_percentiles(rtt, r);
  r.peak_rss_kb = peak_rss_kb();
  return r;
}

}  // namespace

void print(const Result& r, bool json) {
  if (json) {
    std::string out = fmt::format(
        R"({{"scenario":"{}","transport":"{}","consumer":"{}","messages":{},"concurrency":{},"threads":{},"spin_us":{})",
        r.scenario, r.transport, r.consumer, r.messages, r.concurrency, r.threads, r.spin_us);
    auto add = [&](const char* key, const std::optional<double>& v) {
      if (v) out += fmt::format(R"(,"{}":{:.3f})", key, *v);
    };
    add("offered_rate", r.offered_rate);
    add("msgs_per_s", r.msgs_per_s);
    add("cpu_us_per_msg", r.cpu_us_per_msg);
    add("mean_us", r.mean_us);
    add("p50_us", r.p50_us);
    add("p99_us", r.p99_us);
    add("p999_us", r.p999_us);
    add("flood_ok_per_s", r.flood_ok_per_s);
    add("flood_refused_per_s", r.flood_refused_per_s);
    add("flood_failed_per_s", r.flood_failed_per_s);
    if (r.workers != 0) out += fmt::format(R"(,"workers":{})", r.workers);
    add("worker_msgs_per_s", r.worker_msgs_per_s);
    if (!r.cdf.empty()) {
      out += R"(,"cdf":[)";
      for (std::size_t i = 0; i < r.cdf.size(); ++i) {
        out += fmt::format("{}[{},{:.3f}]", i == 0 ? "" : ",", r.cdf[i].first, r.cdf[i].second);
      }
      out += "]";
    }
    out += fmt::format(R"(,"peak_rss_kb":{},"all_notified":{}}})", r.peak_rss_kb, r.all_notified ? "true" : "false");
    std::puts(out.c_str());
  } else {
    std::string line = fmt::format("{:<9} {} N={:<3} threads={} spin={}us consumer={} messages={}", r.scenario,
                                   r.transport, r.concurrency, r.threads, r.spin_us, r.consumer, r.messages);
    if (r.offered_rate) line += fmt::format(" offered={:.0f}/s", *r.offered_rate);
    if (r.msgs_per_s) line += fmt::format(" {:.3f} M msg/s", *r.msgs_per_s / 1e6);
    if (r.cpu_us_per_msg) line += fmt::format(" cpu={:.2f}us/msg", *r.cpu_us_per_msg);
    if (r.p50_us) line += fmt::format(" p50={:.2f}us p99={:.2f}us p999={:.2f}us", *r.p50_us, *r.p99_us, *r.p999_us);
    if (r.flood_ok_per_s) {
      line += fmt::format(" flood: {:.0f} ok/s, {:.0f} refused/s, {:.0f} failed/s", *r.flood_ok_per_s,
                          *r.flood_refused_per_s, *r.flood_failed_per_s);
    }
    if (r.workers != 0) {
      line += fmt::format(" workers={} {:.0f} worker-msg/s", r.workers, r.worker_msgs_per_s.value_or(0));
    }
    line += fmt::format(" peak_rss={:.1f}MB {}", static_cast<double>(r.peak_rss_kb) / 1024.0,
                        r.all_notified ? "all notified" : "NOT ALL NOTIFIED");
    std::puts(line.c_str());
  }
  std::fflush(stdout);
}

namespace {}  // namespace

int run_bench(const BenchOptions& o) {
  // Quiet unless something goes wrong.
  auto log = std::make_shared<spdlog::logger>("amsg.bench");
  log->set_level(log_level_or(spdlog::level::err));
  spdlog::register_logger(log);
  bool all_ok = true;
  for (const auto& scenario : o.scenarios) {
    if (scenario == "thr") {
      for (auto n : o.concurrency) {
        auto r = run_thr(o, n);
        all_ok = all_ok && r.all_notified;
        print(r, o.json);
      }
    } else if (scenario == "rate") {
      auto r = run_rate(o);
      all_ok = all_ok && r.all_notified;
      print(r, o.json);
    } else if (scenario == "pingpong") {
      auto r = run_pingpong(o);
      all_ok = all_ok && r.all_notified;
      print(r, o.json);
    }
  }
  return all_ok ? 0 : 1;
}

}  // namespace amsg::tool

// `amsg demo`: the project's main job. A leader process starts worker processes
// on loopback ipc and streams KV-cache commands at them: "offload" copies a range
// of blocks from the worker's device pool to its host pool, "onboard" copies
// them back. The worker handlers capture the two pools and copy real memory.
// Some commands name blocks outside the pool on purpose and fail. At the end the
// leader checks that every command got exactly one notification.

#include "demo.hpp"

#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <algorithm>
#include <amsg/amsg.hpp>
#include <amsg/net/cohort.hpp>
#include <amsg/net/node.hpp>
#include <amsg/net/typed.hpp>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "child_process.hpp"
#include "cli_support.hpp"
#include "progress.hpp"

namespace amsg::tool {
namespace {

using Clock = std::chrono::steady_clock;

// What the leader sends: a range of blocks.
struct BlockRange {
  std::uint32_t first = 0;
  std::uint32_t count = 0;
  MSGPACK_DEFINE(first, count)
};
// What a worker answers: the bytes it copied.
struct Copied {
  std::uint64_t bytes = 0;
  MSGPACK_DEFINE(bytes)
};

// A worker's memory: a "device" pool and a "host" pool of equal size. Copies of
// overlapping ranges may run at once (up to the concurrency limit), so each block
// stripe has a lock, taken in order.
class KvPools {
 public:
  KvPools(std::size_t blocks, std::size_t block_bytes)
      : blocks_{blocks}, block_bytes_{block_bytes}, device_(blocks * block_bytes), host_(blocks * block_bytes) {
    for (std::size_t i = 0; i < device_.size(); ++i) device_[i] = static_cast<std::byte>(i * 131 % 251);
  }
  Copied copy(BlockRange r, bool to_host) {
    if (r.count == 0 || r.first >= blocks_ || r.count > blocks_ - r.first) {
      throw std::out_of_range(fmt::format("block range [{}, {}) is outside the pool of {} blocks", r.first,
                                          std::uint64_t{r.first} + r.count, blocks_));
    }
    const std::size_t lo = r.first % kStripes;
    const std::size_t n = std::min<std::size_t>(r.count, kStripes);
    for (std::size_t i = 0; i < n; ++i) stripes_[(lo + i) % kStripes].lock();
    const std::size_t offset = std::size_t{r.first} * block_bytes_;
    const std::size_t bytes = std::size_t{r.count} * block_bytes_;
    if (to_host) {
      std::memcpy(host_.data() + offset, device_.data() + offset, bytes);
    } else {
      std::memcpy(device_.data() + offset, host_.data() + offset, bytes);
    }
    for (std::size_t i = n; i > 0; --i) stripes_[(lo + i - 1) % kStripes].unlock();
    return Copied{bytes};
  }

 private:
  static constexpr std::size_t kStripes = 64;
  std::size_t blocks_;
  std::size_t block_bytes_;
  std::vector<std::byte> device_;
  std::vector<std::byte> host_;
  std::array<std::mutex, kStripes> stripes_;
};

// A worker process: this executable again, as `amsg demo-worker`.
class Worker {
 public:
  Worker(std::string address, std::size_t blocks, std::size_t block_kib)
      : address_{std::move(address)},
        child_{this_executable({"demo-worker", "--listen", address_, "--blocks", std::to_string(blocks), "--block-kib",
                                std::to_string(block_kib)})} {}
  ~Worker() {
    if (address_.starts_with("ipc://")) ::unlink(address_.substr(6).c_str());
  }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  // Waits for the worker's "listening on ADDRESS" line; its address is then
  // the one it bound (a port chosen by the system for tcp:// or ucx:// ...:0).
  bool wait_listening(std::chrono::milliseconds timeout) {
    const auto line = child_.wait_for_line("listening on ", timeout);
    if (!line) return false;
    std::string bound = line->substr(line->find("listening on ") + 13);
    while (!bound.empty() && (bound.back() == '\n' || bound.back() == '\r')) bound.pop_back();
    if (!bound.empty()) address_ = std::move(bound);
    return true;
  }
  bool stop(std::chrono::milliseconds timeout) { return child_.stop(timeout); }
  [[nodiscard]] const std::string& address() const { return address_; }

 private:
  std::string address_;
  ChildProcess child_;
};

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const auto i = static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1));
  return sorted[i];
}

}  // namespace

int run_demo_worker(const std::string& listen, std::size_t blocks, std::size_t block_kib) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  default_log_level(spdlog::level::off);  // failures are on purpose; the leader reports them
  auto pools = std::make_shared<KvPools>(blocks, block_kib * 1024);
  net::NodeOptions opts;
  opts.listen = {listen};
  opts.manager.concurrency = 8;
  opts.manager.threads = 1;
  net::Node node{opts};
  node.manager().register_handler(
      "offload", net::make_typed_handler<BlockRange, Copied>(
                     [pools](BlockRange r) -> asio::awaitable<Copied> { co_return pools->copy(r, true); }));
  node.manager().register_handler(
      "onboard", net::make_typed_handler<BlockRange, Copied>(
                     [pools](BlockRange r) -> asio::awaitable<Copied> { co_return pools->copy(r, false); }));
  node.start();
  std::printf("listening on %s\n", node.endpoints().front().c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&signals, &sig);
  node.shutdown(std::chrono::seconds{5});
  return 0;
}

int run_demo(const DemoOptions& o) {
  default_log_level(spdlog::level::warn);
  const std::string base = fmt::format("/tmp/amsg-demo-{}", ::getpid());
  // With --json, stdout carries only the summary object.
  auto say = [&](auto&&... args) {
    if (!o.json) std::printf(args...);
  };
  say("amsg demo: a KV-cache leader and %zu worker processes on loopback %s\n", o.workers, o.transport.c_str());
  say("  each worker: device and host pools of %zu blocks x %zu KiB; commands offload/onboard block ranges\n", o.blocks,
      o.block_kib);
  std::vector<std::unique_ptr<Worker>> workers;
  for (std::size_t w = 0; w < o.workers; ++w) {
    const std::string address =
        o.transport == "ipc" ? fmt::format("ipc://{}-w{}.ipc", base, w) : fmt::format("{}://127.0.0.1:0", o.transport);
    workers.push_back(std::make_unique<Worker>(address, o.blocks, o.block_kib));
  }
  for (auto& w : workers) {
    if (!w->wait_listening(std::chrono::seconds{20})) {
      std::fprintf(stderr, "amsg demo: worker %s did not start\n", w->address().c_str());
      return kExitFailure;
    }
  }

  net::NodeOptions opts;
  opts.manager.threads = 1;
  net::Node leader{opts};
  leader.start();
  net::Cohort cohort{leader};
  for (auto& w : workers) cohort.add(w->address());  // ranks 0, 1, ... in order
  if (!cohort.wait_ready(workers.size(), std::chrono::seconds{10})) {
    std::fprintf(stderr, "amsg demo: only %zu of %zu workers answered the hello\n", cohort.ready_count(),
                 workers.size());
    return kExitFailure;
  }
  const std::size_t ranks = workers.size();
  say("  leader %s: a cohort of %zu workers; offloads are broadcasts, onboards scatters\n\n", leader.identity().c_str(),
      ranks);

  // Command i reaches every rank: outcome (i, rank) is slot i * ranks + rank.
  const std::size_t n = o.messages;
  std::vector<Clock::time_point> sent_at(n);
  std::vector<std::uint8_t> seen(n * ranks, 0);
  std::vector<std::uint32_t> pending(n, static_cast<std::uint32_t>(ranks));  // outcomes still to come per command
  std::vector<double> latency_us;
  latency_us.reserve(n * ranks);
  std::size_t ok = 0;
  std::size_t err = 0;
  std::size_t err_expected = 0;
  std::size_t unexpected = 0;
  std::size_t duplicates = 0;
  std::size_t arrived = 0;
  std::uint64_t bytes = 0;
  std::string sample_err;
  std::optional<Progress> progress{std::in_place, o.progress, "demo", n * ranks};
  // Commands in flight at once: the window, in worker messages.
  const std::size_t window = std::max<std::size_t>(1, o.window / ranks);
  std::size_t in_flight = 0;
  std::mutex mutex;  // the accounting: the reader thread and the scatters' completions
  std::condition_variable room;

  // One outcome of command i at `rank` (under the mutex).
  auto account = [&](std::size_t i, std::uint32_t rank, const Notification& note) {
    if (i >= n || rank >= ranks) {
      ++unexpected;
      return;
    }
    ++arrived;
    progress->count.store(arrived, std::memory_order_relaxed);
    if (seen[i * ranks + rank]++ != 0) {
      ++duplicates;
      return;
    }
    latency_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - sent_at[i]).count());
    const bool meant_to_fail = o.fail_every != 0 && i % o.fail_every == o.fail_every - 1;
    if (note.is_success()) {
      ++ok;
      if (meant_to_fail) ++unexpected;
    } else {
      ++err;
      ++(meant_to_fail ? err_expected : unexpected);
      if (sample_err.empty()) sample_err = note.text();
    }
    if (--pending[i] == 0) {
      --in_flight;
      room.notify_one();
    }
  };

  // The broadcasts' outcomes arrive on the leader's channel, in the seed's
  // format, with the ids "kv-{i}#{rank}".
  const std::size_t on_channel = (n + 1) / 2 * ranks;  // the even commands are broadcasts
  std::thread reader{[&] {
    for (std::size_t got = 0; got < on_channel; ++got) {
      auto note = leader.manager().receive_for(std::chrono::seconds{30});
      if (!note) break;
      std::size_t i = 0;
      std::uint32_t rank = 0;
      const std::string_view id = note->id;
      const auto hash = id.find('#');
      std::lock_guard lock{mutex};
      if (!id.starts_with("kv-") || hash == std::string_view::npos ||
          std::from_chars(id.data() + 3, id.data() + hash, i).ec != std::errc{} ||
          std::from_chars(id.data() + hash + 1, id.data() + id.size(), rank).ec != std::errc{}) {
        ++unexpected;
        continue;
      }
      account(i, rank, *note);
    }
  }};

  const auto t0 = Clock::now();
  std::size_t offloads = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const bool fail = o.fail_every != 0 && i % o.fail_every == o.fail_every - 1;
    const auto count = static_cast<std::uint32_t>(1 + i % 8);
    // Rank r's range: `first` shifted by 8 r blocks (a scatter gives each its own).
    auto range_of = [&](std::uint32_t rank) {
      BlockRange range{static_cast<std::uint32_t>((i * 8 + std::size_t{rank} * 8) % (o.blocks - 8)), count};
      if (fail) range.first = static_cast<std::uint32_t>(o.blocks + i % 7);  // outside the pool, on purpose
      return range;
    };
    if (!fail) bytes += std::uint64_t{count} * o.block_kib * 1024 * ranks;
    const bool offload = i % 2 == 0;
    offloads += offload ? 1 : 0;
    {
      std::unique_lock lock{mutex};
      room.wait(lock, [&] { return in_flight < window; });
      ++in_flight;
      sent_at[i] = Clock::now();
    }
    if (offload) {
      if (cohort.broadcast_notified("offload", net::encode(range_of(0)), fmt::format("kv-{}", i)).size() != ranks) {
        std::fprintf(stderr, "amsg demo: the leader refused a send\n");
        break;
      }
    } else {
      std::map<std::uint32_t, Payload> parts;
      for (std::uint32_t r = 0; r < ranks; ++r) parts.emplace(r, net::encode(range_of(r)));
      cohort.scatter("onboard", std::move(parts), {fmt::format("kv-{}", i)}, [&, i](net::FanoutResult result) {
        std::lock_guard lock{mutex};
        for (std::size_t k = 0; k < result.outcomes.size(); ++k) account(i, result.ranks[k], result.outcomes[k]);
      });
    }
  }
  reader.join();
  {
    std::unique_lock lock{mutex};  // the last scatters' completions
    room.wait_for(lock, std::chrono::seconds{30}, [&] { return in_flight == 0; });
  }
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  progress.reset();

  bool workers_ok = true;
  for (auto& w : workers) workers_ok = w->stop(std::chrono::seconds{10}) && workers_ok;
  leader.shutdown(std::chrono::seconds{1});

  std::lock_guard lock{mutex};  // the scatters' completions are all in (or never come: missing)
  std::sort(latency_us.begin(), latency_us.end());
  const std::size_t missing = static_cast<std::size_t>(std::count(seen.begin(), seen.end(), 0));
  const std::size_t planned_failures = o.fail_every == 0 ? 0 : n / o.fail_every * ranks;
  const std::size_t outcomes = n * ranks;
  const bool all_arrived =
      arrived == outcomes && missing == 0 && duplicates == 0 && unexpected == 0 && err_expected == planned_failures;
  const double p50 = percentile(latency_us, 0.50);
  const double p90 = percentile(latency_us, 0.90);
  const double p99 = percentile(latency_us, 0.99);
  const double max = latency_us.empty() ? 0.0 : latency_us.back();
  if (o.json) {
    std::printf(
        R"({"messages":%zu,"worker_messages":%zu,"workers":%zu,"ok":%zu,"err":%zu,"err_on_purpose":%zu,"msgs_per_s":%.1f,"gb_per_s":%.4f,)"
        R"("secs":%.3f,"p50_us":%.1f,"p90_us":%.1f,"p99_us":%.1f,"max_us":%.1f,"arrived":%zu,"missing":%zu,)"
        R"("duplicated":%zu,"unexpected":%zu,"exactly_once":%s,"workers_ok":%s})"
        "\n",
        n, outcomes, ranks, ok, err, err_expected, static_cast<double>(outcomes) / secs,
        static_cast<double>(bytes) / secs / 1e9, secs, p50, p90, p99, max, arrived, missing, duplicates, unexpected,
        all_arrived ? "true" : "false", workers_ok ? "true" : "false");
  } else {
    std::printf(
        "  commands sent      %zu (offload %zu as broadcasts, onboard %zu as scatters) to %zu workers: %zu "
        "worker messages\n",
        n, offloads, n - offloads, ranks, outcomes);
    std::printf("  outcomes           %zu ok, %zu err (%zu failed on purpose: block ranges outside the pool)\n", ok,
                err, err_expected);
    std::printf("  throughput         %.0f msg/s, %.2f GB/s of blocks copied, %.2f s in all\n",
                static_cast<double>(outcomes) / secs, static_cast<double>(bytes) / secs / 1e9, secs);
    std::printf("  latency (send to notification)  p50 %.0f us  p90 %.0f us  p99 %.0f us  max %.0f us\n", p50, p90, p99,
                max);
    if (!sample_err.empty()) std::printf("  an error, as sent  %s\n", sample_err.c_str());
    std::printf("  notifications      %zu of %zu arrived, %zu missing, %zu duplicated, %zu unexpected: %s\n", arrived,
                outcomes, missing, duplicates, unexpected,
                all_arrived ? "every notification arrived, exactly once" : "MISMATCH");
    std::printf("  workers            %s\n", workers_ok ? "drained and exited 0 on SIGTERM" : "did NOT exit cleanly");
  }
  return all_arrived && workers_ok ? kExitOk : kExitFailure;
}

}  // namespace amsg::tool

// A bounded chaos run across emulated hosts: while a client keeps 64 calls in
// flight to `amsg serve --journal` in another namespace, the server is killed
// and restarted at once, paused and resumed, its link cut and its packets
// dropped one way, at random (a seeded generator; AMSG_CHAOS_SEED repeats a
// run). It lasts AMSG_CHAOS_SECONDS (default 10). Afterwards: every call had
// exactly one outcome, every ok and nothing else beyond the "may have run"
// outcomes is in the journal of what ran, no message ran twice, no "not run"
// outcome (peer unreachable, remote shutting down, overloaded) ran, and the
// client's memory did not grow. Needs root, `ip` and `nft`.

#include <gtest/gtest.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "concurrency/sanitizers.hpp"
#include "netns_support.hpp"

namespace amsg::test {
namespace {

using netns::all_threads_stopped;

long env_or(const char* name, long fallback) {
  const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read before any thread starts
  return v != nullptr ? std::strtol(v, nullptr, 10) : fallback;
}

long rss_kb() {
  std::ifstream status{"/proc/self/status"};
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return 0;
}

// What the calls ended with, counted as they end (no per-call record, so that
// the accounting itself does not grow the client's memory).
struct Ledger {
  std::atomic<std::uint64_t> started{0}, ended{0}, ok{0}, lost{0}, timeout{0}, not_run{0}, other{0};
  std::mutex mutex;
  std::vector<std::uint64_t> not_run_ids;  // peer unreachable, remote shutting down, overloaded: few
  std::vector<std::string> other_texts;    // anything unexpected, for the failure message
};

TEST(Chaos, RandomKillsPausesRestartsAndCutsKeepTheAccountingExact) {
  netns::Hosts hosts;
  if (!hosts.ok()) GTEST_SKIP() << "needs root, ip and nft, and network namespaces (ip netns add failed)";
  const long seconds = env_or("AMSG_CHAOS_SECONDS", 10);
  const auto seed = static_cast<std::uint32_t>(env_or("AMSG_CHAOS_SEED", static_cast<long>(std::random_device{}())));
  RecordProperty("seed", static_cast<int>(seed));
  std::printf("chaos: %ld s, seed %u (AMSG_CHAOS_SEED repeats it)\n", seconds, seed);
  const std::string journal = "/tmp/amsg-chaos-" + std::to_string(::getpid()) + ".journal";
  ::unlink(journal.c_str());

  std::optional<netns::Server> server;
  server.emplace(hosts, std::vector<std::string>{"--journal", journal});
  netns::Client c{hosts, client_options("chaos")};
  ASSERT_TRUE(c.node().wait_ready(c.peer(), 20s));

  constexpr int kWorkers = 64;
  Ledger ledger;
  std::atomic<bool> stop{false};
  std::vector<std::future<void>> workers;
  // However the test ends, the workers stop before what they use goes away.
  struct StopWorkers {
    std::atomic<bool>& stop;
    std::vector<std::future<void>>& workers;
    ~StopWorkers() {
      stop = true;
      for (auto& w : workers) w.wait_for(60s);
    }
  } stop_workers{stop, workers};
  for (int w = 0; w < kWorkers; ++w) {
    workers.push_back(asio::co_spawn(
        c.node().executor(),
        [&]() -> asio::awaitable<void> {
          while (!stop.load(std::memory_order_relaxed)) {
            const std::uint64_t k = ledger.started.fetch_add(1);
            const Notification n =
                co_await c.node().call(c.peer(), "echo", bytes("x"), net::CallOptions{"c" + std::to_string(k), 2s});
            ledger.ended.fetch_add(1);
            if (n.is_success()) {
              ledger.ok.fetch_add(1);
            } else if (n.code == errc::peer_lost || n.code == errc::node_shutting_down) {
              ledger.lost.fetch_add(1);  // may have run
            } else if (n.code == errc::timeout) {
              ledger.timeout.fetch_add(1);  // may have run (sent) or not (expired before sending)
            } else if (n.code == errc::peer_unreachable || n.code == errc::remote_shutting_down ||
                       n.code == errc::overloaded) {
              ledger.not_run.fetch_add(1);
              const std::lock_guard lock{ledger.mutex};
              ledger.not_run_ids.push_back(k);
            } else {
              ledger.other.fetch_add(1);
              const std::lock_guard lock{ledger.mutex};
              if (ledger.other_texts.size() < 10) ledger.other_texts.push_back(n.text());
            }
          }
        },
        asio::use_future));
  }

  // The faults. Each one's duration is a sleep on purpose: it is how long the
  // fault lasts (the load goes on meanwhile), not a wait for an event.
  std::mt19937 random{seed};
  auto between = [&](int lo, int hi) {
    return std::chrono::milliseconds{std::uniform_int_distribution{lo, hi}(random)};
  };
  std::vector<long> rss;
  int faults[5] = {0, 0, 0, 0, 0};
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds{seconds};
  while (std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(between(300, 1200));  // calm: traffic flows
    rss.push_back(rss_kb());
    const int fault = std::uniform_int_distribution{0, 4}(random);
    ++faults[fault];
    static constexpr const char* kNames[] = {"kill+restart", "pause", "cut", "drop in", "drop out"};
    std::printf("chaos: %s\n", kNames[fault]);
    std::fflush(stdout);
    switch (fault) {
      case 0:  // SIGKILL, and a new server on the same address at once
        server->process().signal(SIGKILL);
        ASSERT_TRUE(server->process().wait_exit(10s));
        server.emplace(hosts, std::vector<std::string>{"--journal", journal});
        break;
      case 1:  // paused, then resumed
        server->process().signal(SIGSTOP);
        ASSERT_TRUE(eventually([&] { return all_threads_stopped(server->process().pid()); }));
        std::this_thread::sleep_for(between(200, 2000));
        server->process().signal(SIGCONT);
        break;
      case 2:  // the link cut both ways
        hosts.link(false);
        std::this_thread::sleep_for(between(200, 2000));
        hosts.link(true);
        break;
      default:  // packets dropped one way
        hosts.drop(fault == 3 ? "input" : "output");
        std::this_thread::sleep_for(between(200, 2000));
        hosts.heal();
        break;
    }
    if (!c.node().wait_ready(c.peer(), 30s)) {  // what the sockets say, for the failure below
      const std::string dump = "ip netns exec " + hosts.server() + " ss -tn; ip netns exec " + hosts.client() +
                               " ss -tn; ip netns exec " + hosts.server() + " nft list ruleset";
      // A diagnostic; nothing else runs it.
      (void)std::system(dump.c_str());  // NOLINT(concurrency-mt-unsafe,cert-env33-c)
      server->process().signal(SIGUSR1);
      std::printf("%s\n", server->process().wait_for_line("amsg serve: stats:", 10s).value_or("no stats").c_str());
    }
    ASSERT_TRUE(c.node().wait_ready(c.peer(), 0s))
        << "the client never got the server back: peer " << net::to_string(c.node().peer_info(c.peer())->state)
        << ", server ok so far " << server->handlers_ok() << ", sent " << c.node().stats().messages_sent;
  }
  stop = true;
  for (auto& w : workers) ASSERT_EQ(w.wait_for(60s), std::future_status::ready) << "a call never ended";
  server->process().signal(SIGTERM);
  ASSERT_TRUE(server->process().wait_exit(30s));

  // Exactly one outcome per call, all accounted for.
  const std::uint64_t started = ledger.started.load();
  EXPECT_EQ(ledger.ended.load(), started);
  EXPECT_EQ(ledger.ok + ledger.lost + ledger.timeout + ledger.not_run + ledger.other, started);
  EXPECT_EQ(ledger.other.load(), 0u) << (ledger.other_texts.empty() ? "" : ledger.other_texts.front());
  EXPECT_EQ(c.node().stats().outstanding_calls, 0u);
  EXPECT_GT(ledger.ok.load(), started / 2) << "the load hardly got through";

  // What ran: each message at most once, every ok among them, no "not run".
  std::vector<bool> ran(started, false);
  std::uint64_t lines = 0;
  std::uint64_t twice = 0;
  std::uint64_t foreign = 0;
  {
    std::ifstream in{journal};
    std::string line;
    while (std::getline(in, line)) {
      ++lines;
      const std::uint64_t k = line.size() > 1 && line[0] == 'c' ? std::stoull(line.substr(1)) : started;
      if (k >= started) {
        ++foreign;
        continue;
      }
      if (ran[k]) ++twice;
      ran[k] = true;
    }
  }
  ::unlink(journal.c_str());
  EXPECT_EQ(twice, 0u) << "a message ran twice";
  EXPECT_EQ(foreign, 0u) << "a line of the journal names no call";
  EXPECT_GE(lines, ledger.ok.load()) << "an ok call is missing from the journal";
  EXPECT_LE(lines, ledger.ok + ledger.lost + ledger.timeout) << "more ran than may have run";
  std::uint64_t not_run_but_ran = 0;
  for (const auto k : ledger.not_run_ids) not_run_but_ran += ran[k] ? 1 : 0;
  EXPECT_EQ(not_run_but_ran, 0u) << "a call that ended \"not run\" ran";

  // The client's memory: the last third of the run no higher than the first
  // third's peak plus a margin for the allocator. (Not under the sanitizers:
  // ASan's quarantine and TSan's shadow memory grow by design.)
  ASSERT_GE(rss.size(), 3u);
  const auto third = static_cast<std::ptrdiff_t>(rss.size() / 3);
  const long early = *std::max_element(rss.begin(), rss.begin() + third);
  const long late = *std::max_element(rss.end() - third, rss.end());
#if !AMSG_UNDER_ASAN && !AMSG_UNDER_TSAN
  EXPECT_LE(late, early + 32L * 1024) << "RSS grew from " << early << " kB to " << late << " kB";
#endif

  const double per_s = static_cast<double>(started) / static_cast<double>(seconds);
  std::printf(
      "chaos: %llu calls (%.0f/s): ok %llu, peer lost %llu, timeout %llu, not run %llu; journal %llu lines; faults: "
      "kill+restart %d, pause %d, cut %d, drop in %d, drop out %d; client RSS %ld -> %ld kB\n",
      static_cast<unsigned long long>(started), per_s, static_cast<unsigned long long>(ledger.ok.load()),
      static_cast<unsigned long long>(ledger.lost.load()), static_cast<unsigned long long>(ledger.timeout.load()),
      static_cast<unsigned long long>(ledger.not_run.load()), static_cast<unsigned long long>(lines), faults[0],
      faults[1], faults[2], faults[3], faults[4], early, late);
}

}  // namespace
}  // namespace amsg::test

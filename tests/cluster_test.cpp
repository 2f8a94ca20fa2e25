// A cluster on emulated hosts: network namespaces joined by a bridge, with
// private addresses that exist only inside them (10.232.0.0/24). etcd on one,
// the leader (a node of this process, made on a thread that entered the
// control namespace) on another, 8 `amsg serve --join etcd://...` workers on
// each of 4 more. A host's link is cut and healed, a worker is SIGKILLed and
// restarted, etcd is killed during traffic and restarted; the accounting is
// one outcome per worker per fan-out throughout. Needs root, `ip` and etcd;
// skipped with a message elsewhere.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <asio/use_future.hpp>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "amsg/errc.hpp"
#include "amsg/net/cohort.hpp"
#include "amsg/net/etcd_membership.hpp"
#include "amsg/net/node.hpp"
#include "etcd_support.hpp"
#include "netns_support.hpp"
#include "test_support.hpp"

namespace amsg::test {
namespace {

using net::Cohort;
using net::CohortEvent;
using net::EtcdDirectory;
using net::EtcdOptions;
using net::FanoutResult;
using net::Node;
using net::NodeOptions;
using netns::sh;

constexpr int kHosts = 4;
constexpr int kWorkersPerHost = 8;
constexpr int kWorkers = kHosts * kWorkersPerHost;
constexpr const char* kControlIp = "10.232.0.2";
constexpr const char* kEtcdIp = "10.232.0.3";

// The namespaces: a hub holding the bridge, the control host (the leader),
// etcd's host, and kHosts worker hosts, each joined to the bridge by a veth
// pair. Removed whatever happens.
class ClusterHosts {
 public:
  ClusterHosts() : tag_{std::to_string(::getpid())} {
    ok_ = ::geteuid() == 0 && sh("ip netns add " + hub()) && sh("ip -n " + hub() + " link add br0 type bridge") &&
          sh("ip -n " + hub() + " link set br0 up") && attach(control(), kControlIp, "k") &&
          attach(etcd_host(), kEtcdIp, "e");
    for (int h = 0; ok_ && h < kHosts; ++h) ok_ = attach(host(h), ip(h), std::to_string(h));
  }
  ~ClusterHosts() {
    for (int h = 0; h < kHosts; ++h) sh("ip netns del " + host(h));
    sh("ip netns del " + control());
    sh("ip netns del " + etcd_host());
    sh("ip netns del " + hub());  // the veth pairs go with their namespaces
  }
  ClusterHosts(const ClusterHosts&) = delete;
  ClusterHosts& operator=(const ClusterHosts&) = delete;

  [[nodiscard]] bool ok() const { return ok_; }
  [[nodiscard]] std::string hub() const { return "amsg-cl-" + tag_ + "-hub"; }
  [[nodiscard]] std::string control() const { return "amsg-cl-" + tag_ + "-k"; }
  [[nodiscard]] std::string etcd_host() const { return "amsg-cl-" + tag_ + "-e"; }
  [[nodiscard]] std::string host(int h) const { return "amsg-cl-" + tag_ + "-h" + std::to_string(h); }
  static std::string ip(int h) { return "10.232.0." + std::to_string(10 + h); }
  // The host's link to the bridge, down or up (both directions at once).
  void link(int h, bool up) {
    ASSERT_TRUE(sh("ip -n " + hub() + " link set " + port(std::to_string(h)) + (up ? " up" : " down")));
  }

 private:
  [[nodiscard]] std::string port(const std::string& name) const { return "acl" + tag_.substr(0, 8) + "p" + name; }
  bool attach(const std::string& ns, const std::string& address, const std::string& name) {
    const std::string p = port(name);
    return sh("ip netns add " + ns) &&
           sh("ip link add " + p + " netns " + hub() + " type veth peer name eth0 netns " + ns) &&
           sh("ip -n " + hub() + " link set " + p + " master br0 up") &&
           sh("ip -n " + ns + " addr add " + address + "/24 dev eth0") && sh("ip -n " + ns + " link set eth0 up") &&
           sh("ip -n " + ns + " link set lo up");
  }
  std::string tag_;
  bool ok_ = false;
};

// `amsg serve` on a worker host, registered in etcd.
std::unique_ptr<Process> start_worker(const ClusterHosts& hosts, int h, int i, const std::string& etcd) {
  const std::string listen = "tcp://" + ClusterHosts::ip(h) + ":" + std::to_string(6000 + i);
  auto p = std::make_unique<Process>(std::vector<std::string>{
      "/usr/sbin/ip", "netns", "exec", hosts.host(h), AMSG_CLI_PATH, "serve", "--listen", listen, "--insecure",
      "--concurrency", "8", "--threads", "1", "--join", etcd, "--lease-ttl", "2"});
  if (!p->wait_for_line("joined the cohort", 60s)) throw std::runtime_error("no worker: " + p->output());
  return p;
}

// The leader: a node, its cohort and the etcd directory, made and destroyed on
// a thread that entered the control namespace (the threads they start stay in it).
class Leader {
 public:
  Leader(const ClusterHosts& hosts, const std::string& etcd) {
    std::promise<void> ready;
    auto started = ready.get_future();
    thread_ = std::thread{[&] {
      try {
        const int fd = ::open(("/var/run/netns/" + hosts.control()).c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) throw std::runtime_error("cannot enter the control namespace");
        ::close(fd);
        NodeOptions o;
        o.manager.logger_name = quiet_logger("cluster-leader");
        o.heartbeat_interval = 250ms;
        o.heartbeat_timeout = 2s;
        node_ = std::make_unique<Node>(o);
        node_->start();
        cohort_ = std::make_unique<Cohort>(*node_);
        cohort_->on_change([this](const CohortEvent& e) {
          std::string identity;  // whom the join was with
          for (const auto& m : cohort_->members()) {
            if (m.rank == e.rank) identity = m.identity;
          }
          std::lock_guard lock{mutex_};
          (e.kind == CohortEvent::Kind::joined ? joins_ : leaves_)[e.rank]++;
          if (e.kind == CohortEvent::Kind::joined) joined_identity_[e.rank] = identity;
        });
        EtcdOptions eo;
        eo.retry = 200ms;
        directory_ = std::make_unique<EtcdDirectory>(*cohort_, etcd, eo);
      } catch (...) {
        ready.set_exception(std::current_exception());
        return;
      }
      ready.set_value();
      stop_.get_future().wait();
      directory_.reset();
      cohort_.reset();
      node_->shutdown(0ms);
      node_.reset();
    }};
    try {
      started.get();
    } catch (...) {
      thread_.join();  // it returned after setting the exception
      throw;
    }
  }
  ~Leader() {
    stop_.set_value();
    thread_.join();
  }
  Leader(const Leader&) = delete;
  Leader& operator=(const Leader&) = delete;

  Cohort& cohort() { return *cohort_; }
  EtcdDirectory& directory() { return *directory_; }
  int leaves(std::uint32_t rank) {
    std::lock_guard lock{mutex_};
    return leaves_[rank];
  }
  // The identity of the member of `rank` at its last reported join.
  std::string joined_identity(std::uint32_t rank) {
    std::lock_guard lock{mutex_};
    return joined_identity_[rank];
  }
  // Every join and leave so far.
  int changes() {
    std::lock_guard lock{mutex_};
    int n = 0;
    for (const auto& [rank, count] : joins_) n += count;
    for (const auto& [rank, count] : leaves_) n += count;
    return n;
  }
  FanoutResult broadcast(const std::string& type, const std::string& body, std::chrono::milliseconds deadline = 10s) {
    auto f = cohort_->broadcast(type, bytes(body), {"c", deadline}, asio::use_future);
    if (f.wait_for(60s) != std::future_status::ready) {
      ADD_FAILURE() << "the broadcast did not complete";
      return {};
    }
    return f.get();
  }

 private:
  std::unique_ptr<Node> node_;
  std::unique_ptr<Cohort> cohort_;
  std::unique_ptr<EtcdDirectory> directory_;
  std::mutex mutex_;
  std::map<std::uint32_t, int> joins_, leaves_;
  std::map<std::uint32_t, std::string> joined_identity_;
  std::promise<void> stop_;
  std::thread thread_;
};

// The outcomes that are not ok, as "rank: text".
std::string failures(const FanoutResult& r) {
  std::string out;
  for (std::size_t i = 0; i < r.outcomes.size(); ++i) {
    if (!r.outcomes[i].is_success()) out += std::to_string(r.ranks[i]) + ": " + r.outcomes[i].text() + "; ";
  }
  return out;
}

std::size_t count(const FanoutResult& r, std::error_code code) {
  return static_cast<std::size_t>(
      std::count_if(r.outcomes.begin(), r.outcomes.end(), [&](const Notification& n) { return n.code == code; }));
}

TEST(Cluster, ThirtyTwoWorkersOnFourHostsThroughEtcdSurviveACutAKillAndEtcdsDeath) {
  if (!EtcdServer::available()) GTEST_SKIP() << "etcd is not installed (Debian: etcd-server)";
  ClusterHosts hosts;
  if (!hosts.ok()) GTEST_SKIP() << "needs root, ip and network namespaces (ip netns add failed)";
  EtcdServer etcd{kEtcdIp, 2379, 2380, {"/usr/sbin/ip", "netns", "exec", hosts.etcd_host()}};
  ASSERT_TRUE(etcd.start(false));
  const std::string etcd_address = etcd.address("/cluster");
  Leader leader{hosts, etcd_address};
  ASSERT_TRUE(leader.directory().wait_synced(30s)) << leader.directory().last_error() << "; etcd log " << etcd.log();

  // 32 workers join through etcd.
  std::map<std::uint32_t, std::unique_ptr<Process>> workers;  // by rank
  std::map<std::uint32_t, int> host_of, slot_of;
  for (int h = 0; h < kHosts; ++h) {
    for (int i = 0; i < kWorkersPerHost; ++i) {
      auto p = start_worker(hosts, h, i, etcd_address);
      const auto at = p->output().find("as rank ");
      ASSERT_NE(at, std::string::npos) << p->output();
      const auto rank = static_cast<std::uint32_t>(std::stoul(p->output().substr(at + 8)));
      host_of[rank] = h;
      slot_of[rank] = i;
      workers[rank] = std::move(p);
    }
  }
  ASSERT_EQ(workers.size(), static_cast<std::size_t>(kWorkers)) << "32 distinct ranks";
  ASSERT_TRUE(leader.cohort().wait_ready(kWorkers, 60s)) << leader.cohort().ready_count() << " ready";

  // A broadcast reaches all 32; a scatter returns each rank's own bytes.
  FanoutResult r = leader.broadcast("echo", "offload blocks 0-63");
  ASSERT_EQ(r.outcomes.size(), static_cast<std::size_t>(kWorkers));
  EXPECT_EQ(r.ok_count(), static_cast<std::size_t>(kWorkers));
  std::map<std::uint32_t, Payload> parts;
  for (const auto& [rank, p] : workers) parts.emplace(rank, bytes("rank " + std::to_string(rank)));
  auto sf = leader.cohort().scatter("echo", std::move(parts), {"s", 10s}, asio::use_future);
  ASSERT_EQ(sf.wait_for(60s), std::future_status::ready);
  r = sf.get();
  ASSERT_EQ(r.outcomes.size(), static_cast<std::size_t>(kWorkers));
  for (std::size_t i = 0; i < r.outcomes.size(); ++i) {
    EXPECT_EQ(r.outcomes[i].payload.as_string_view(), "rank " + std::to_string(r.ranks[i]));
  }

  // Host 2's link is cut while its workers run a 1.5 s command: their 8
  // outcomes are `peer lost` within the heartbeat bound, the other 24 are ok.
  auto cut = leader.cohort().broadcast("sleep", bytes("1500"), {"cut", 20s}, asio::use_future);
  hosts.link(2, false);
  const auto cut_at = std::chrono::steady_clock::now();
  ASSERT_EQ(cut.wait_for(60s), std::future_status::ready);
  r = cut.get();
  const auto took = std::chrono::steady_clock::now() - cut_at;
  ASSERT_EQ(r.outcomes.size(), static_cast<std::size_t>(kWorkers)) << "one outcome per worker";
  EXPECT_EQ(r.ok_count(), static_cast<std::size_t>(kWorkers - kWorkersPerHost));
  EXPECT_EQ(count(r, make_error_code(errc::peer_lost)), static_cast<std::size_t>(kWorkersPerHost));
  for (std::size_t i = 0; i < r.outcomes.size(); ++i) {
    EXPECT_EQ(r.outcomes[i].is_success(), host_of[r.ranks[i]] != 2) << r.ranks[i] << ": " << r.outcomes[i].text();
  }
  EXPECT_LT(took, 10s) << "the heartbeat bound (2 s) and the 1.5 s command, with room for a loaded machine";
  // Their leases expire: the leader sees them leave; the link comes back and they rejoin.
  ASSERT_TRUE(eventually([&] { return leader.cohort().members().size() == kWorkers - kWorkersPerHost; }, 20s));
  hosts.link(2, true);
  ASSERT_TRUE(leader.cohort().wait_ready(kWorkers, 60s)) << leader.cohort().ready_count() << " ready";
  EXPECT_EQ(leader.broadcast("echo", "after the cut").ok_count(), static_cast<std::size_t>(kWorkers));

  // A worker SIGKILLed: its lease expires and it leaves; restarted, it rejoins with its rank.
  const std::uint32_t victim = 5;
  const int leaves_before = leader.leaves(victim);
  workers[victim]->signal(SIGKILL);
  (void)workers[victim]->wait_exit(10s);
  ASSERT_TRUE(eventually([&] { return !leader.cohort().peer(victim); }, 20s)) << "its key went with its lease";
  EXPECT_TRUE(eventually([&] { return leader.leaves(victim) > leaves_before; }, 5s)) << "its leave was reported";
  workers[victim] = start_worker(hosts, host_of[victim], slot_of[victim], etcd_address);  // the same address
  EXPECT_NE(workers[victim]->output().find("as rank " + std::to_string(victim)), std::string::npos)
      << workers[victim]->output();
  // Rejoined means a join reported with the new process (its identity), not
  // the old connection's state that the leader may not have seen end yet.
  const std::string out = workers[victim]->output();
  const auto at = out.find("identity ");
  ASSERT_NE(at, std::string::npos) << out;
  const std::string identity = out.substr(at + 9, out.find('\n', at) - at - 9);
  ASSERT_TRUE(eventually([&] { return leader.joined_identity(victim) == identity; }, 30s))
      << "a join with the restarted worker " << identity << "; last: " << leader.joined_identity(victim);
  ASSERT_TRUE(leader.cohort().wait_ready(kWorkers, 30s));

  // etcd killed during traffic: messages between known nodes go on for longer
  // than two lease TTLs (the workers' leases cannot be kept alive meanwhile),
  // with no join and no leave; membership resumes when it is back.
  etcd.kill();
  ASSERT_TRUE(eventually([&] { return !leader.directory().connected(); }, 20s));
  const int changes_before = leader.changes();
  const auto outage = std::chrono::steady_clock::now();
  int broadcasts = 0;
  while (std::chrono::steady_clock::now() - outage < 5s) {
    const FanoutResult down = leader.broadcast("echo", "etcd is down");
    ASSERT_EQ(down.ok_count(), static_cast<std::size_t>(kWorkers)) << broadcasts << ": " << failures(down);
    ++broadcasts;
  }
  EXPECT_GT(broadcasts, 10);
  EXPECT_EQ(leader.changes(), changes_before) << "losing etcd made no member join or leave";
  EXPECT_EQ(leader.cohort().members().size(), static_cast<std::size_t>(kWorkers)) << "no member lost with etcd";
  const auto syncs = leader.directory().syncs();
  ASSERT_TRUE(etcd.start(false));
  ASSERT_TRUE(eventually([&] { return leader.directory().connected() && leader.directory().syncs() > syncs; }, 30s))
      << leader.directory().last_error();
  r = leader.broadcast("echo", "etcd is back");
  EXPECT_EQ(r.ok_count(), static_cast<std::size_t>(kWorkers));
  EXPECT_EQ(leader.cohort().members().size(), static_cast<std::size_t>(kWorkers));
}

}  // namespace
}  // namespace amsg::test

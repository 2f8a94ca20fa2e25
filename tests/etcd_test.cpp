// Cohort membership through a real etcd (Debian's etcd-server, started by the
// test on a loopback port): workers register under a prefix with leases, the
// leader follows the prefix into its cohort; a stopped worker leaves, a
// restarted one gets its rank back, a wanted rank waits for its holder, and
// etcd itself may die and come back while messages flow. Skipped with a
// message where etcd is not installed.

#include <gtest/gtest.h>

#include <algorithm>
#include <asio/use_future.hpp>
#include <csignal>
#include <mutex>
#include <set>

#include "amsg/net/cohort.hpp"
#include "amsg/net/etcd_membership.hpp"
#include "amsg/net/node.hpp"
#include "etcd_support.hpp"
#include "link/memory_link.hpp"
#include "memory_node_support.hpp"
#include "net_test_support.hpp"
#include "test_support.hpp"

namespace amsg::test {
namespace {

using net::Cohort;
using net::CohortEvent;
using net::EtcdDirectory;
using net::EtcdOptions;
using net::EtcdRegistration;
using net::FanoutResult;
using net::MemoryLink;
using net::MemoryNetwork;
using net::Node;
using net::NodeOptions;

EtcdOptions fast() {
  EtcdOptions o;
  o.lease_ttl = std::chrono::seconds{2};
  o.retry = 100ms;
  o.request_timeout = 1s;
  return o;
}

// A leader and workers on the in-memory link (mem://w0...), and an etcd.
class EtcdCohort : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!EtcdServer::available()) GTEST_SKIP() << "etcd is not installed (Debian: etcd-server)";
    ASSERT_TRUE(etcd_.start()) << "etcd did not start; its log: " << etcd_.log();
    leader_.emplace(node("etcd-leader", ""));
    leader_->start();
  }
  void TearDown() override {
    for (auto& w : workers_) w->shutdown();
  }
  NodeOptions node(const std::string& name, const std::string& listen) { return mem_node(net_, name, listen); }
  static std::string address(int i) { return "mem://w" + std::to_string(i); }
  Node& worker(int i) {
    while (static_cast<int>(workers_.size()) <= i) {
      const int n = static_cast<int>(workers_.size());
      workers_.push_back(std::make_unique<Node>(node("etcd-w" + std::to_string(n), address(n))));
      add_handlers(workers_.back()->manager());
      workers_.back()->start();
    }
    return *workers_[static_cast<std::size_t>(i)];
  }
  std::unique_ptr<EtcdRegistration> registration(int i, std::optional<std::uint32_t> rank = std::nullopt,
                                                 EtcdOptions options = fast()) {
    return std::make_unique<EtcdRegistration>(worker(i), etcd_.address("/etcd-test"), address(i), rank, options);
  }
  // A lease that outlives the test: a key that goes, went by a revoke.
  static EtcdOptions long_lease() {
    EtcdOptions o = fast();
    o.lease_ttl = std::chrono::seconds{60};
    return o;
  }
  FanoutResult broadcast(Cohort& cohort, const std::string& body) {
    auto f = cohort.broadcast("echo", bytes(body), {"b", 5s}, asio::use_future);
    if (f.wait_for(20s) != std::future_status::ready) {
      ADD_FAILURE() << "the broadcast did not complete";
      return {};
    }
    return f.get();
  }

  EtcdServer etcd_;
  std::shared_ptr<MemoryNetwork> net_ = std::make_shared<MemoryNetwork>();
  std::vector<std::unique_ptr<Node>> workers_;  // declared before the leader: destroyed after it
  std::optional<Node> leader_;
};

TEST_F(EtcdCohort, WorkersRegisterWithRanksAndTheLeaderFollowsThePrefix) {
  Cohort cohort{*leader_};
  EtcdDirectory directory{cohort, etcd_.address("/etcd-test"), fast()};
  std::vector<std::unique_ptr<EtcdRegistration>> regs;
  regs.reserve(3);
  for (int i = 0; i < 3; ++i) regs.push_back(registration(i));
  ASSERT_TRUE(cohort.wait_ready(3, 20s)) << directory.last_error();
  EXPECT_TRUE(directory.connected());
  std::set<std::uint32_t> ranks;
  for (auto& r : regs) {
    ASSERT_TRUE(r->wait_registered(5s)) << r->last_error();
    ranks.insert(*r->rank());
  }
  EXPECT_EQ(ranks, (std::set<std::uint32_t>{0, 1, 2})) << "the lowest free ranks";
  const FanoutResult result = broadcast(cohort, "blocks 0-63");
  ASSERT_EQ(result.outcomes.size(), 3u);
  EXPECT_TRUE(result.succeeded);
  for (const auto& n : result.outcomes) EXPECT_EQ(n.payload.as_string_view(), "blocks 0-63");

  const auto listed = net::etcd_members(etcd_.address("/etcd-test"));
  ASSERT_EQ(listed.size(), 3u);
  ASSERT_EQ(cohort.members().size(), 3u);
  for (const auto& m : listed) {
    EXPECT_EQ(cohort.members()[m.rank].address, m.address);
    EXPECT_EQ(m.identity, workers_[static_cast<std::size_t>(m.address.back() - '0')]->identity());
    EXPECT_NE(std::find(m.handlers.begin(), m.handlers.end(), "echo"), m.handlers.end());
    EXPECT_NE(m.lease, 0);
  }
  EXPECT_TRUE(net::etcd_members(etcd_.address("/other-prefix")).empty());
  EXPECT_THROW(EtcdDirectory(cohort, "tcp://127.0.0.1:1"), std::invalid_argument);
}

TEST_F(EtcdCohort, AStoppedWorkerLeavesAtOnceAndARestartedOneGetsItsRankBack) {
  std::mutex mutex;  // declared first: the callback uses them until the cohort is gone
  std::vector<CohortEvent> events;
  Cohort cohort{*leader_};
  cohort.on_change([&](const CohortEvent& e) {
    std::lock_guard lock{mutex};
    events.push_back(e);
  });
  EtcdDirectory directory{cohort, etcd_.address("/etcd-test"), fast()};
  auto r0 = registration(0, std::nullopt, long_lease());
  auto r1 = registration(1, std::nullopt, long_lease());
  ASSERT_TRUE(cohort.wait_ready(2, 20s));
  const auto rank1 = *r1->rank();
  r1.reset();  // revokes its lease: the key goes now, not at the lease's expiry (60 s)
  ASSERT_TRUE(eventually([&] { return cohort.members().size() == 1; }, 5s)) << "the leader saw the key's delete";
  ASSERT_TRUE(eventually(
      [&] {
        std::lock_guard lock{mutex};
        return std::any_of(events.begin(), events.end(),
                           [&](const CohortEvent& e) { return e.kind == CohortEvent::Kind::left && e.rank == rank1; });
      },
      5s))
      << "remove() reports the leave of a ready member";
  r1 = registration(1, std::nullopt, long_lease());  // the same worker (same address) registers again
  ASSERT_TRUE(r1->wait_registered(5s)) << r1->last_error();
  EXPECT_EQ(*r1->rank(), rank1) << "the lowest free rank is its own again";
  ASSERT_TRUE(cohort.wait_ready(2, 10s));
  EXPECT_EQ(broadcast(cohort, "again").ok_count(), 2u);
}

TEST_F(EtcdCohort, AWantedRankHeldByAnotherWorkerIsRetriedUntilItIsFree) {
  Cohort cohort{*leader_};
  EtcdDirectory directory{cohort, etcd_.address("/etcd-test"), fast()};
  auto holder = registration(0, 5, long_lease());
  ASSERT_TRUE(holder->wait_registered(5s)) << holder->last_error();
  EXPECT_EQ(*holder->rank(), 5u);
  auto wanting = registration(1, 5);
  ASSERT_TRUE(eventually([&] { return wanting->last_error().find("held by mem://w0") != std::string::npos; }, 5s))
      << wanting->last_error();
  EXPECT_FALSE(wanting->rank());
  holder.reset();  // revoked: free now, not in 60 s
  ASSERT_TRUE(wanting->wait_registered(5s)) << wanting->last_error();
  EXPECT_EQ(*wanting->rank(), 5u);
  ASSERT_TRUE(eventually(
      [&] {
        const auto m = cohort.members();
        return m.size() == 1 && m[0].rank == 5 && m[0].address == address(1);
      },
      5s));
}

TEST_F(EtcdCohort, WorkersStartingTogetherGetDistinctRanksQuickly) {
  Cohort cohort{*leader_};
  EtcdDirectory directory{cohort, etcd_.address("/etcd-test"), fast()};
  for (int i = 0; i < 8; ++i) (void)worker(i);  // the nodes first: the registrations then start together
  std::vector<std::unique_ptr<EtcdRegistration>> regs;
  regs.reserve(8);
  for (int i = 0; i < 8; ++i) regs.push_back(registration(i));
  std::set<std::uint32_t> ranks;
  for (auto& r : regs) {
    ASSERT_TRUE(r->wait_registered(10s)) << r->last_error();
    ranks.insert(*r->rank());
  }
  EXPECT_EQ(ranks.size(), 8u);
  EXPECT_EQ(*ranks.rbegin(), 7u) << "ranks 0-7, one each";
  ASSERT_TRUE(cohort.wait_ready(8, 20s));
  EXPECT_EQ(broadcast(cohort, "all").ok_count(), 8u);
}

#ifdef AMSG_CLI_PATH
// A serve process killed (its lease lives on) and restarted at once at the
// same address takes its own key over: the same rank, though a lower one is free.
TEST_F(EtcdCohort, AKilledServeRestartedAtOnceTakesItsKeyOverAndKeepsItsRank) {
  auto low = registration(0, std::nullopt, long_lease());  // rank 0
  ASSERT_TRUE(low->wait_registered(5s)) << low->last_error();
  const std::string listen = "tcp://127.0.0.1:" + std::to_string(free_port());
  const std::vector<std::string> argv{AMSG_CLI_PATH, "serve", "--listen", listen, "--join", etcd_.address("/etcd-test"),
                                      "--lease-ttl", "60"};
  auto serve = std::make_unique<Process>(argv);
  ASSERT_TRUE(serve->wait_for_line("joined the cohort", 20s)) << serve->output();
  EXPECT_NE(serve->output().find("as rank 1 "), std::string::npos) << serve->output();
  low.reset();  // rank 0 is free now
  serve->signal(SIGKILL);
  ASSERT_TRUE(serve->wait_exit(10s));
  serve = std::make_unique<Process>(argv);  // within its lease of 60 s
  ASSERT_TRUE(serve->wait_for_line("joined the cohort", 20s)) << serve->output();
  EXPECT_NE(serve->output().find("as rank 1 "), std::string::npos) << "its own key, taken over: " << serve->output();
  const auto listed = net::etcd_members(etcd_.address("/etcd-test"));
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].rank, 1u);
  EXPECT_EQ(listed[0].address, listen);
  EXPECT_TRUE(serve->stop(10s));
  ASSERT_TRUE(eventually([&] { return net::etcd_members(etcd_.address("/etcd-test")).empty(); }, 5s))
      << "a serve stopped by SIGTERM revokes its lease";
}
#endif

TEST_F(EtcdCohort, MessagesFlowWhileEtcdIsDownAndMembershipResumesWhenItReturns) {
  Cohort cohort{*leader_};
  EtcdDirectory directory{cohort, etcd_.address("/etcd-test"), fast()};
  auto r0 = registration(0);
  auto r1 = registration(1);
  ASSERT_TRUE(cohort.wait_ready(2, 20s));
  etcd_.kill();
  ASSERT_TRUE(eventually([&] { return !directory.connected(); }, 10s)) << "the watch broke";
  EXPECT_FALSE(directory.last_error().empty());
  for (int i = 0; i < 20; ++i) ASSERT_EQ(broadcast(cohort, "without etcd").ok_count(), 2u);
  EXPECT_EQ(cohort.members().size(), 2u) << "losing etcd removes no member";
  ASSERT_TRUE(etcd_.start());
  ASSERT_TRUE(eventually([&] { return directory.connected() && directory.syncs() >= 2; }, 15s))
      << directory.last_error();
  auto r2 = registration(2);  // a new worker joins through the restarted etcd
  ASSERT_TRUE(cohort.wait_ready(3, 20s)) << directory.last_error();
  EXPECT_EQ(broadcast(cohort, "with etcd").ok_count(), 3u);
  EXPECT_TRUE(r0->last_error().empty() || eventually([&] { return r0->last_error().empty(); }, 5s));
}

}  // namespace
}  // namespace amsg::test

// Cohorts over the in-memory link: membership (static, announced), joins and
// leaves, and the fan-out operations with their policies. Every fan-out ends
// in exactly one outcome per worker, in rank order.

#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/use_future.hpp>
#include <atomic>
#include <future>
#include <mutex>
#include <set>

#include "amsg/net/cohort.hpp"
#include "amsg/net/cohort_membership.hpp"
#include "amsg/net/node.hpp"
#include "link/memory_link.hpp"
#include "memory_node_support.hpp"
#include "net_test_support.hpp"
#include "test_support.hpp"

namespace amsg::test {
namespace {

using net::Cohort;
using net::CohortEvent;
using net::FanoutOptions;
using net::FanoutResult;
using net::MemoryNetwork;
using net::Node;

// A leader (listening on mem://leader, for joins) and `n` workers on
// mem://w0.., each serving echo, fail, sleep and count, and "work": fails on
// the workers listed in `failing`, waits for the worker's gate on the others.
struct Cluster {
  explicit Cluster(const std::string& name, int n, const std::set<int>& failing = {})
      : net{std::make_shared<MemoryNetwork>()}, leader{mem_node(net, name + "-l", "mem://leader")} {
    for (int i = 0; i < n; ++i) {
      auto w = std::make_unique<Node>(mem_node(net, name + "-w" + std::to_string(i), address(i)));
      add_handlers(w->manager(), nullptr, &runs);
      gates.push_back(std::make_unique<Gate>(w->executor()));
      Gate* gate = gates.back().get();
      const bool fails = failing.count(i) == 1;
      w->manager().register_handler("work", make_handler([gate, fails](Message& msg) -> asio::awaitable<void> {
                                      if (fails) throw std::runtime_error("no room");
                                      co_await gate->wait();
                                      msg.response = std::move(msg.payload);
                                    }));
      w->start();
      workers.push_back(std::move(w));
    }
    leader.start();
  }
  ~Cluster() {
    open_gates();
    for (auto& w : workers) w->shutdown();
  }
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;
  static std::string address(int i) { return "mem://w" + std::to_string(i); }
  void open_gates() {
    for (auto& g : gates) g->open(64);
  }
  std::shared_ptr<MemoryNetwork> net;
  std::atomic<int> runs{0};
  Node leader;
  std::vector<std::unique_ptr<Node>> workers;
  std::vector<std::unique_ptr<Gate>> gates;  // destroyed first: no handler waits on them by then
};

FanoutResult wait_for_result(std::future<FanoutResult>& f, std::chrono::milliseconds timeout = 20s) {
  if (f.wait_for(timeout) != std::future_status::ready) {
    ADD_FAILURE() << "the fan-out did not complete within " << timeout.count() << " ms";
    return {};
  }
  return f.get();
}

TEST(Cohort, ABroadcastReachesEveryMemberAndGathersTheirResponsesInRankOrder) {
  Cluster c{"coh-bcast", 4};
  Cohort cohort{c.leader};
  for (int i = 3; i >= 0; --i) EXPECT_EQ(cohort.add(Cluster::address(i)), static_cast<std::uint32_t>(3 - i));
  EXPECT_EQ(cohort.add(Cluster::address(2)), 1u) << "adding an address again gives its rank";
  ASSERT_TRUE(cohort.wait_ready(4, 10s));
  auto f = cohort.broadcast("echo", bytes("blocks 0-63"), {"off-1", 5s}, asio::use_future);
  const FanoutResult r = wait_for_result(f);
  ASSERT_EQ(r.outcomes.size(), 4u);
  EXPECT_EQ(r.ranks, (std::vector<std::uint32_t>{0, 1, 2, 3}));
  EXPECT_TRUE(r.succeeded);
  EXPECT_EQ(r.ok_count(), 4u);
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_TRUE(r.outcomes[i].is_success()) << r.outcomes[i].text();
    EXPECT_EQ(r.outcomes[i].id, "off-1#" + std::to_string(i));
    EXPECT_EQ(r.outcomes[i].payload.as_string_view(), "blocks 0-63");
  }
  EXPECT_EQ(c.runs.load(), 4);
  const auto members = cohort.members();
  ASSERT_EQ(members.size(), 4u);
  EXPECT_EQ(members[0].address, "mem://w3");
  EXPECT_EQ(members[0].state, net::PeerState::ready);
  EXPECT_EQ(cohort.peer(3), c.leader.connect("mem://w0"));
  EXPECT_FALSE(cohort.peer(4));
  EXPECT_THROW(cohort.add(Cluster::address(0), 2), std::invalid_argument);  // it is rank 3
  EXPECT_THROW(cohort.add("mem://other", 1), std::invalid_argument);        // rank 1 is taken
}

TEST(Cohort, AScatterGivesEachRankItsOwnPayloadAndAnswersInRankOrder) {
  Cluster c{"coh-scatter", 3};
  Cohort cohort{c.leader};
  for (int i = 0; i < 3; ++i) cohort.add(Cluster::address(i));
  std::map<std::uint32_t, Payload> parts;
  parts.emplace(2, bytes("two"));
  parts.emplace(0, bytes("zero"));
  auto f = cohort.scatter("echo", std::move(parts), {}, asio::use_future);
  const FanoutResult r = wait_for_result(f);
  EXPECT_EQ(r.ranks, (std::vector<std::uint32_t>{0, 2}));
  ASSERT_NE(r.find(0), nullptr);
  ASSERT_NE(r.find(2), nullptr);
  EXPECT_EQ(r.find(0)->payload.as_string_view(), "zero");
  EXPECT_EQ(r.find(2)->payload.as_string_view(), "two");
  EXPECT_EQ(r.find(1), nullptr);
  EXPECT_EQ(r.outcomes[0].id.rfind("fanout-", 0), 0u) << r.outcomes[0].id;
  EXPECT_EQ(c.runs.load(), 2);
  std::map<std::uint32_t, Payload> stray;
  stray.emplace(9, bytes("x"));
  EXPECT_THROW((void)cohort.scatter("echo", std::move(stray), {}, asio::use_future), std::invalid_argument);
  EXPECT_THROW((void)cohort.broadcast("echo", {}, FanoutOptions{"q"}.need(4), asio::use_future), std::invalid_argument);
  EXPECT_THROW((void)cohort.broadcast("", {}, {}, asio::use_future), std::invalid_argument);
  // In a coroutine (the default token) too: an exception, not std::terminate.
  auto thrown = asio::co_spawn(
      c.leader.executor(),
      [&]() -> asio::awaitable<bool> {
        std::map<std::uint32_t, Payload> bad;
        bad.emplace(7, bytes("x"));
        try {
          (void)co_await cohort.scatter("echo", std::move(bad));
        } catch (const std::invalid_argument&) {
          co_return true;
        }
        co_return false;
      },
      asio::use_future);
  ASSERT_EQ(thrown.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(thrown.get());
}

TEST(Cohort, WorkersAnnounceThemselvesAndGetTheirRanks) {
  std::vector<CohortEvent> events;  // declared first: the callback uses them until the cohort is gone
  std::mutex mutex;
  Cluster c{"coh-join", 3};
  Cohort cohort{c.leader};
  cohort.accept_joins();
  cohort.on_change([&](const CohortEvent& e) {
    std::lock_guard lock{mutex};
    events.push_back(e);
  });
  EXPECT_EQ(Cohort::join(*c.workers[0], "mem://leader", Cluster::address(0), 5), 5u);
  EXPECT_EQ(Cohort::join(*c.workers[1], "mem://leader", Cluster::address(1)), 0u);
  EXPECT_EQ(Cohort::join(*c.workers[2], "mem://leader", Cluster::address(2)), 1u);
  EXPECT_EQ(Cohort::join(*c.workers[1], "mem://leader", Cluster::address(1)), 0u) << "a second join keeps the rank";
  try {
    Cohort::join(*c.workers[2], "mem://leader", "mem://elsewhere", 5);
    ADD_FAILURE() << "a taken rank was given";
  } catch (const NetworkError& e) {
    EXPECT_NE(std::string{e.what()}.find("rank 5 is taken by 'mem://w0'"), std::string::npos) << e.what();
  }
  ASSERT_TRUE(cohort.wait_ready(3, 10s));
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock{mutex};
    return events.size() == 3;
  }));
  std::set<std::uint32_t> joined;
  {
    std::lock_guard lock{mutex};
    for (const auto& e : events) {
      EXPECT_EQ(e.kind, CohortEvent::Kind::joined);
      joined.insert(e.rank);
    }
  }
  EXPECT_EQ(joined, (std::set<std::uint32_t>{0, 1, 5}));
  auto f = cohort.broadcast("count", {}, {}, asio::use_future);
  EXPECT_TRUE(wait_for_result(f).succeeded);
  EXPECT_FALSE(cohort.wait_ready(4, 100ms));
}

// A worker cut off mid-fan-out: its rank ends `peer lost`, the others' outcomes
// are theirs; the leader sees it leave, and join again once the link heals.
TEST(Cohort, AWorkerLostDuringABroadcastEndsPeerLostAndTheOthersAreUnaffected) {
  // Declared first: the filter and the callback use them until the nodes are gone.
  std::atomic<bool> cut{false};
  std::atomic<int> left{0};
  std::atomic<int> joined{0};
  Cluster c{"coh-lost", 3};
  c.net->set_filter([&](const MemoryNetwork::Frame& frame) {
    return cut.load() && frame.listener == "mem://w1" ? MemoryNetwork::Verdict::drop : MemoryNetwork::Verdict::pass;
  });
  Cohort cohort{c.leader};
  cohort.on_change([&](const CohortEvent& e) {
    if (e.rank != 1) return;
    (e.kind == CohortEvent::Kind::left ? left : joined).fetch_add(1);
  });
  for (int i = 0; i < 3; ++i) cohort.add(Cluster::address(i));
  ASSERT_TRUE(cohort.wait_ready(3, 10s));
  EXPECT_EQ(joined.load(), 1) << "wait_ready returns once the joins were reported";
  auto f = cohort.broadcast("work", bytes("w"), {}, asio::use_future);
  ASSERT_TRUE(eventually([&] { return c.workers[1]->stats().manager.dispatched >= 1; }));
  cut = true;
  ASSERT_TRUE(eventually([&] { return left.load() == 1; }));
  c.open_gates();
  const FanoutResult r = wait_for_result(f);
  ASSERT_EQ(r.outcomes.size(), 3u);
  EXPECT_TRUE(r.outcomes[0].is_success()) << r.outcomes[0].text();
  EXPECT_EQ(r.outcomes[1].code, errc::peer_lost) << r.outcomes[1].text();
  EXPECT_TRUE(r.outcomes[2].is_success()) << r.outcomes[2].text();
  EXPECT_FALSE(r.succeeded);
  cut = false;
  ASSERT_TRUE(eventually([&] { return joined.load() == 2; }));
  ASSERT_TRUE(cohort.wait_ready(3, 10s));
  auto again = cohort.broadcast("echo", bytes("back"), {}, asio::use_future);
  EXPECT_EQ(wait_for_result(again).ok_count(), 3u);
}

TEST(Cohort, FailFastCompletesAtTheFirstErrorAndAbandonsTheRest) {
  Cluster c{"coh-ff", 3, {1}};
  Cohort cohort{c.leader};
  for (int i = 0; i < 3; ++i) cohort.add(Cluster::address(i));
  auto f = cohort.broadcast("work", bytes("w"), FanoutOptions{"ff", 10s}.fail_fast(), asio::use_future);
  const FanoutResult r = wait_for_result(f);  // the gates are closed: only the failure can complete it
  ASSERT_EQ(r.outcomes.size(), 3u);
  EXPECT_FALSE(r.succeeded);
  EXPECT_EQ(r.outcomes[0].code, errc::abandoned);
  EXPECT_EQ(r.outcomes[0].text(), "ff#0:err(abandoned)");
  EXPECT_EQ(r.outcomes[1].code, errc::handler_error);
  EXPECT_EQ(r.outcomes[1].error, "no room");
  EXPECT_EQ(r.outcomes[2].code, errc::abandoned);
  c.open_gates();
}

// Fail fast cancels the rest at their workers: their running handlers are
// cancelled (through each call's cancellation slot and a CANCEL), not left to
// run to the end for an outcome nobody will read.
TEST(Cohort, FailFastCancelsTheHandlersStillRunningAtTheOtherWorkers) {
  Cluster c{"coh-ffc", 3};
  for (int i = 0; i < 3; ++i) {
    Gate* gate = c.gates[static_cast<std::size_t>(i)].get();
    c.workers[static_cast<std::size_t>(i)]->manager().register_handler(
        "job", make_handler([gate, fails = i == 1](Message&) -> asio::awaitable<void> {
          co_await gate->wait();
          if (fails) throw std::runtime_error("no room");
        }));
  }
  Cohort cohort{c.leader};
  for (int i = 0; i < 3; ++i) cohort.add(Cluster::address(i));
  ASSERT_TRUE(cohort.wait_ready(3, 10s));
  auto f = cohort.broadcast("job", bytes("j"), FanoutOptions{"ffc", 30s}.fail_fast(), asio::use_future);
  for (const auto& w : c.workers) ASSERT_TRUE(eventually([&] { return w->stats().manager.dispatched == 1; }));
  c.gates[1]->open();  // rank 1 fails now; ranks 0 and 2 are still running
  const FanoutResult r = wait_for_result(f);
  EXPECT_EQ(r.outcomes[1].error, "no room");
  EXPECT_EQ(r.outcomes[0].code, errc::abandoned);
  EXPECT_EQ(r.outcomes[2].code, errc::abandoned);
  for (std::size_t w : {0U, 2U}) {
    EXPECT_TRUE(eventually([&] { return c.workers[w]->stats().manager.cancelled == 1; }, 10s)) << "worker " << w;
    EXPECT_TRUE(eventually([&] { return c.workers[w]->stats().manager.in_flight == 0; }, 10s)) << "worker " << w;
  }
  // Their REPLYs (cancelled) reached the leader after its calls had ended.
  EXPECT_TRUE(eventually([&] { return c.leader.stats().late_replies == 2; }, 10s));
}

TEST(Cohort, AQuorumCompletesOnceEnoughAreOkOrOnceItCannot) {
  Cluster c{"coh-quorum", 4, {3}};
  Cohort cohort{c.leader};
  for (int i = 0; i < 4; ++i) cohort.add(Cluster::address(i));
  ASSERT_TRUE(cohort.wait_ready(4, 10s));
  // Ranks 0-2 wait at their gates; two of them are opened.
  c.gates[0]->open();
  c.gates[2]->open();
  std::map<std::uint32_t, Payload> parts;
  for (std::uint32_t rank = 0; rank < 3; ++rank) parts.emplace(rank, bytes("q"));
  auto f = cohort.scatter("work", std::move(parts), FanoutOptions{"q"}.need(2), asio::use_future);
  const FanoutResult r = wait_for_result(f);
  EXPECT_TRUE(r.succeeded);
  EXPECT_EQ(r.ok_count(), 2u);
  EXPECT_TRUE(r.outcomes[0].is_success());
  EXPECT_EQ(r.outcomes[1].code, errc::abandoned);
  EXPECT_TRUE(r.outcomes[2].is_success());
  // 4 of 4 can no longer be had once rank 3 failed: it completes then, not succeeded.
  auto g = cohort.broadcast("work", bytes("q"), FanoutOptions{"q4"}.need(4), asio::use_future);
  const FanoutResult all = wait_for_result(g);
  EXPECT_FALSE(all.succeeded);
  ASSERT_EQ(all.outcomes.size(), 4u);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(all.outcomes[i].code, errc::abandoned) << i;
  EXPECT_EQ(all.outcomes[3].code, errc::handler_error);
  c.open_gates();
}

TEST(Cohort, TheNotifiedFormGivesOneOutcomePerRankOnTheChannel) {
  Cluster c{"coh-notify", 3, {2}};
  Cohort cohort{c.leader};
  for (int i = 0; i < 3; ++i) cohort.add(Cluster::address(i));
  c.open_gates();
  EXPECT_EQ(cohort.broadcast_notified("work", bytes("n"), "flush-9"), (std::vector<std::uint32_t>{0, 1, 2}));
  std::set<std::string> texts;
  for (int i = 0; i < 3; ++i) {
    auto n = c.leader.manager().receive_for(10s);
    ASSERT_TRUE(n);
    EXPECT_TRUE(texts.insert(n->text()).second) << n->text();
  }
  EXPECT_EQ(texts, (std::set<std::string>{"flush-9#0:ok", "flush-9#1:ok", "flush-9#2:err(no room)"}));
  EXPECT_FALSE(c.leader.manager().receive_for(50ms)) << "one outcome per rank, no more";
}

TEST(Cohort, AFanoutToNobodyCompletesAtOnce) {
  auto net = std::make_shared<MemoryNetwork>();
  Node leader{mem_node(net, "coh-empty", "")};
  leader.start();
  Cohort cohort{leader};
  auto f = cohort.broadcast("echo", bytes("x"), {}, asio::use_future);
  const FanoutResult r = wait_for_result(f);
  EXPECT_TRUE(r.outcomes.empty());
  EXPECT_TRUE(r.succeeded);
}

// A worker's standing membership: announced at once; the leader restarts (a new
// node on the same address, knowing nobody) and the worker is announced again,
// with its rank, without restarting. A rank that is taken is an error it keeps
// retrying, with the leader's answer in last_error().
TEST(Cohort, AMembershipAnnouncesAgainWhenTheLeaderRestarts) {
  auto net = std::make_shared<MemoryNetwork>();
  Node worker{mem_node(net, "coh-member-w", "mem://w0")};
  add_handlers(worker.manager());
  worker.start();
  auto leader = std::make_unique<Node>(mem_node(net, "coh-member-l1", "mem://leader"));
  auto cohort = std::make_unique<Cohort>(*leader);
  cohort->accept_joins();
  leader->start();
  net::CohortMembership membership{worker, "mem://leader", "mem://w0", 4};
  ASSERT_TRUE(membership.wait_joined(10s)) << membership.last_error();
  EXPECT_EQ(membership.rank(), 4u);
  ASSERT_TRUE(cohort->wait_ready(1, 10s));
  EXPECT_EQ(cohort->members().at(0).rank, 4u);

  cohort.reset();
  leader->shutdown();
  leader = std::make_unique<Node>(mem_node(net, "coh-member-l2", "mem://leader"));
  cohort = std::make_unique<Cohort>(*leader);
  cohort->accept_joins();
  leader->start();
  ASSERT_TRUE(cohort->wait_ready(1, 10s)) << membership.last_error();
  EXPECT_EQ(cohort->members().at(0).rank, 4u);
  EXPECT_EQ(cohort->members().at(0).address, "mem://w0");
  EXPECT_EQ(membership.joins(), 2u);
  auto f = cohort->broadcast("echo", bytes("again"), {}, asio::use_future);
  EXPECT_EQ(wait_for_result(f).ok_count(), 1u);

  Node other{mem_node(net, "coh-member-o", "mem://w1")};
  other.start();
  net::CohortMembership clash{other, "mem://leader", "mem://w1", 4};
  ASSERT_TRUE(eventually([&] { return !clash.last_error().empty(); }));
  EXPECT_NE(clash.last_error().find("rank 4 is taken by 'mem://w0'"), std::string::npos) << clash.last_error();
  EXPECT_FALSE(clash.rank());
  EXPECT_EQ(cohort->members().size(), 1u);
  cohort.reset();
}

// A membership that ends gives back its use of the worker's connection to the
// leader: with no other use, the worker stops dialing it.
TEST(Cohort, AMembershipThatEndsClosesItsConnectionToTheLeader) {
  auto net = std::make_shared<MemoryNetwork>();
  Node worker{mem_node(net, "coh-end-w", "mem://w0")};
  add_handlers(worker.manager());
  worker.start();
  Node leader{mem_node(net, "coh-end-l", "mem://leader")};
  Cohort cohort{leader};
  cohort.accept_joins();
  leader.start();
  auto leader_state = [&worker] {
    for (const auto& ps : worker.peer_stats()) {
      if (ps.info.address == "mem://leader") return ps.info.state;
    }
    return net::PeerState::connecting;
  };
  {
    net::CohortMembership membership{worker, "mem://leader", "mem://w0"};
    ASSERT_TRUE(membership.wait_joined(10s)) << membership.last_error();
    EXPECT_EQ(leader_state(), net::PeerState::ready);
  }
  EXPECT_TRUE(eventually([&] { return leader_state() == net::PeerState::disconnected; }));
}

}  // namespace
}  // namespace amsg::test

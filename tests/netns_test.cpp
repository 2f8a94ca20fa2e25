// Faults across emulated hosts: two network namespaces joined by a veth pair
// (client 10.231.0.1, server 10.231.0.2: addresses that exist only inside
// them), `amsg serve` in one and a node of this process in the other. The link
// is cut (both ways, or one way with nftables), the server paused (SIGSTOP) and
// killed and restarted; each time the outcomes are checked against what ran.
// Needs root, `ip` and `nft`; skipped with a message where that is not so.

#include <gtest/gtest.h>

#include <csignal>
#include <optional>
#include <string>

#include "netns_support.hpp"

namespace amsg::test {
namespace {

using net::NodeOptions;

using netns::all_threads_stopped;

class Netns : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!hosts_.ok()) GTEST_SKIP() << "needs root, ip and nft, and network namespaces (ip netns add failed)";
  }
  netns::Hosts hosts_;
};

TEST_F(Netns, ACutLinkEndsCallsInFlightWithPeerLostAndTrafficResumesWhenItHeals) {
  netns::Server server{hosts_};
  netns::Client c{hosts_, client_options("netns-cut")};
  ASSERT_TRUE(c.node().wait_ready(c.peer(), 20s));
  auto in_flight = c.calls(5, "sleep", "60000");
  ASSERT_TRUE(eventually([&] { return c.node().stats().messages_sent == 5; }));
  hosts_.link(false);
  const auto cut = std::chrono::steady_clock::now();
  for (auto& f : in_flight) EXPECT_EQ(get(f).code, errc::peer_lost);
  EXPECT_LT(std::chrono::steady_clock::now() - cut, 5s) << "the loss is noticed within the heartbeat bound";
  hosts_.link(true);
  ASSERT_TRUE(c.node().wait_ready(c.peer(), 20s));
  auto after = c.calls(1, "echo", "healed", 10s);
  EXPECT_EQ(get(after[0]).payload.as_string_view(), "healed");
  EXPECT_EQ(c.node().stats().outstanding_calls, 0u);
}

TEST_F(Netns, ServerToClientDroppedEndsCallsPeerLostAndEveryOkRan) {
  netns::Server server{hosts_};
  netns::Client c{hosts_, client_options("netns-drop-out")};
  ASSERT_TRUE(c.node().wait_ready(c.peer(), 20s));
  hosts_.drop("output");
  auto calls = c.calls(20, "echo", "x");
  int lost = 0;
  for (auto& f : calls) {
    const Notification n = get(f);
    EXPECT_EQ(n.code, errc::peer_lost) << n.text();  // the requests arrived (and ran); the answers did not
    lost += n.code == errc::peer_lost ? 1 : 0;
  }
  hosts_.heal();
  ASSERT_TRUE(c.node().wait_ready(c.peer(), 20s));
  auto after = c.calls(1, "echo", "back", 10s);
  EXPECT_EQ(get(after[0]).payload.as_string_view(), "back");
  const long ran = server.handlers_ok();
  EXPECT_GE(ran, 1);         // at least the one that came back ok
  EXPECT_LE(ran, 1 + lost);  // and none beyond what "may have run" allows
}

TEST_F(Netns, ClientToServerDroppedEndsCallsByTheirDeadlineAndHeals) {
  netns::Server server{hosts_};
  netns::Client c{hosts_, client_options("netns-drop-in")};
  ASSERT_TRUE(c.node().wait_ready(c.peer(), 20s));
  hosts_.drop("input");
  auto calls = c.calls(10, "echo", "x", 500ms);
  for (auto& f : calls) EXPECT_EQ(get(f).code, errc::timeout);
  hosts_.heal();
  auto after = c.calls(1, "echo", "back", 20s);
  const Notification n = get(after[0], 30s);
  EXPECT_TRUE(n.is_success()) << n.text();
  EXPECT_EQ(c.node().stats().outstanding_calls, 0u);
}

TEST_F(Netns, APausedServerIsLostThenResumesAndWhatRanIsAccountedFor) {
  netns::Server server{hosts_};
  netns::Client c{hosts_, client_options("netns-pause")};
  ASSERT_TRUE(c.node().wait_ready(c.peer(), 20s));
  const long before = server.handlers_ok();
  server.process().signal(SIGSTOP);
  ASSERT_TRUE(eventually([&] { return all_threads_stopped(server.process().pid()); }));
  auto calls = c.calls(20, "echo", "paused");
  int lost = 0;
  for (auto& f : calls) {
    const Notification n = get(f);
    EXPECT_EQ(n.code, errc::peer_lost) << n.text();
    lost += n.code == errc::peer_lost ? 1 : 0;
  }
  server.process().signal(SIGCONT);
  ASSERT_TRUE(c.node().wait_ready(c.peer(), 20s));
  auto after = c.calls(1, "echo", "resumed", 10s);
  EXPECT_EQ(get(after[0]).payload.as_string_view(), "resumed");
  const long ran = server.handlers_ok() - before;
  EXPECT_GE(ran, 1);
  EXPECT_LE(ran, 1 + lost);
}

TEST_F(Netns, AServerKilledAndRestartedAtOnceIsNoticedAndServesAgain) {
  std::optional<netns::Server> server;
  server.emplace(hosts_);
  NodeOptions o = client_options("netns-restart");
  o.heartbeat_timeout = 30s;  // only the new connection can explain a quick peer lost
  netns::Client c{hosts_, o};
  ASSERT_TRUE(c.node().wait_ready(c.peer(), 20s));
  const std::string first = c.node().peer_info(c.peer())->identity;
  auto orphan = c.calls(1, "sleep", "600000");
  ASSERT_TRUE(eventually([&] { return c.node().stats().messages_sent == 1; }));
  server->process().signal(SIGKILL);
  ASSERT_TRUE(server->process().wait_exit(10s));
  server.emplace(hosts_);
  const auto restarted = std::chrono::steady_clock::now();
  while (orphan[0].wait_for(0s) != std::future_status::ready && std::chrono::steady_clock::now() - restarted < 20s) {
    auto ping = c.calls(1, "echo", "x", 300ms);
    (void)get(ping[0]);
  }
  EXPECT_EQ(get(orphan[0], 1s).code, errc::peer_lost);
  EXPECT_LT(std::chrono::steady_clock::now() - restarted, 10s);
  EXPECT_NE(c.node().peer_info(c.peer())->identity, first);
  auto after = c.calls(1, "echo", "after", 10s);
  EXPECT_EQ(get(after[0]).payload.as_string_view(), "after");
}

}  // namespace
}  // namespace amsg::test

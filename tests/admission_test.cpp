// Each client's budget at a listening node, and the turns clients take into its
// manager (NodeOptions::max_inflight_per_client, max_inflight_bytes_per_client,
// fair_share), over the in-memory link. Handlers wait on a gate that the test
// opens one step at a time, so every order below is deterministic.

#include <gtest/gtest.h>

#include <asio/use_future.hpp>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "amsg/net/node.hpp"
#include "link/memory_link.hpp"
#include "net_test_support.hpp"
#include "test_support.hpp"

namespace amsg::test {
namespace {

using net::CallOptions;
using net::MemoryLink;
using net::MemoryNetwork;
using net::Node;
using net::NodeOptions;
using net::PeerId;

// A server whose "gate" handler records its payload when it starts, then waits
// for the gate; clients "flood" and "normal" connected to it.
struct Fixture {
  explicit Fixture(const std::string& name, NodeOptions server_options, bool with_normal = true)
      : net{std::make_shared<MemoryNetwork>()},
        server{with_link(std::move(server_options), name + "-s")},
        gate{server.manager().executor()},
        flood{with_link(client_options(name + "-f"), name + "-f")},
        normal{with_link(client_options(name + "-n"), name + "-n")} {
    server.manager().register_handler("gate", make_handler([this](Message& m) -> asio::awaitable<void> {
                                        {
                                          std::lock_guard lock{mutex};
                                          started.emplace_back(m.payload.as_string_view());
                                        }
                                        co_await gate.wait();
                                        m.response = std::move(m.payload);
                                      }));
    server.start();
    flood.start();
    flood_peer = flood.connect("mem://server");
    EXPECT_TRUE(flood.wait_ready(flood_peer, 10s));
    if (with_normal) {
      normal.start();
      normal_peer = normal.connect("mem://server");
      EXPECT_TRUE(normal.wait_ready(normal_peer, 10s));
    }
  }
  NodeOptions with_link(NodeOptions o, const std::string& log) {
    o.links = {std::make_shared<MemoryLink>(net)};
    o.manager.logger_name = quiet_logger(log);
    return o;
  }
  std::size_t starts() {
    std::lock_guard lock{mutex};
    return started.size();
  }
  std::vector<std::string> order() {
    std::lock_guard lock{mutex};
    return started;
  }
  std::future<Notification> call(Node& from, PeerId to, const std::string& tag) {
    return from.call(to, "gate", bytes(tag), CallOptions{tag, 20s}, asio::use_future);
  }
  // Lets the handlers through one at a time, each after the previous one started.
  void step_through(std::size_t total) {
    for (std::size_t n = starts(); n < total; n = starts()) {
      gate.open();
      ASSERT_TRUE(eventually([&] { return starts() > n; })) << "no handler started after " << n;
    }
    gate.open(total);  // the last ones end
  }

  std::shared_ptr<MemoryNetwork> net;
  Node server;
  Gate gate;
  std::mutex mutex;
  std::vector<std::string> started;
  Node flood;
  Node normal;
  PeerId flood_peer{};
  PeerId normal_peer{};
};

NodeOptions server_options(std::size_t concurrency, std::size_t budget) {
  NodeOptions o;
  o.listen = {"mem://server"};
  o.manager.threads = 2;
  o.manager.concurrency = concurrency;
  o.max_inflight_per_client = budget;
  return o;
}

TEST(Admission, AClientOverItsBudgetBesideAnotherIsRefusedOverloadedAndNothingRefusedRuns) {
  Fixture f{"adm-over", server_options(2, 16)};
  std::vector<std::future<Notification>> calls;
  calls.reserve(64);
  for (int i = 0; i < 40; ++i) calls.push_back(f.call(f.flood, f.flood_peer, "f" + std::to_string(i)));
  // The 24 over the budget end at once, while the first 16 are still here.
  std::size_t overloaded = 0;
  for (std::size_t i = 16; i < calls.size(); ++i) {
    const Notification n = get(calls[i]);
    EXPECT_EQ(n.code, errc::overloaded) << n.text();
    EXPECT_EQ(n.text(), "f" + std::to_string(i) + ":err(overloaded)");
    overloaded += n.code == errc::overloaded ? 1 : 0;
  }
  EXPECT_EQ(overloaded, 24u);
  EXPECT_EQ(f.server.stats().refused_overloaded, 24u);
  EXPECT_EQ(f.server.stats().clients_cut_off, 0u);  // a burst, refused at once: not cut off
  // The normal client is served meanwhile, within its own budget.
  auto normal = f.call(f.normal, f.normal_peer, "n0");
  f.step_through(17);
  for (std::size_t i = 0; i < 16; ++i) EXPECT_TRUE(get(calls[i]).is_success()) << i;
  EXPECT_TRUE(get(normal).is_success());
  EXPECT_EQ(f.starts(), 17u) << "a refused message ran";
  for (const auto& tag : f.order()) EXPECT_TRUE(tag == "n0" || std::stoi(tag.substr(1)) < 16) << tag;
}

TEST(Admission, AClientAloneOverItsBudgetIsSlowedNotRefused) {
  Fixture f{"adm-alone", server_options(2, 16), false};
  std::vector<std::future<Notification>> calls;
  calls.reserve(64);
  for (int i = 0; i < 40; ++i) calls.push_back(f.call(f.flood, f.flood_peer, "f" + std::to_string(i)));
  f.step_through(40);
  for (auto& c : calls) EXPECT_TRUE(get(c).is_success());
  EXPECT_EQ(f.server.stats().refused_overloaded, 0u);
  EXPECT_EQ(f.starts(), 40u);
}

TEST(Admission, ABudgetInBytesRefusesWhatWouldExceedIt) {
  NodeOptions o = server_options(2, 1024);
  o.max_inflight_bytes_per_client = 4096;
  Fixture f{"adm-bytes", o};
  const std::string big(2000, 'b');  // with its digit: 2,001 bytes; two fit in 4,096
  std::vector<std::future<Notification>> calls;
  calls.reserve(64);
  for (int i = 0; i < 3; ++i) {
    calls.push_back(f.flood.call(f.flood_peer, "gate", bytes(std::to_string(i) + big),
                                 CallOptions{"b" + std::to_string(i), 20s}, asio::use_future));
  }
  const Notification third = get(calls[2]);
  EXPECT_EQ(third.code, errc::overloaded) << third.text();
  f.step_through(2);
  EXPECT_TRUE(get(calls[0]).is_success());
  EXPECT_TRUE(get(calls[1]).is_success());
  EXPECT_EQ(f.starts(), 2u);
}

TEST(Admission, FireAndForgetOverTheBudgetIsDroppedCountedAndNeverRuns) {
  Fixture f{"adm-ff", server_options(2, 4)};
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(f.flood.send(f.flood_peer, "gate", bytes("f" + std::to_string(i))), SendStatus::ok);
  }
  ASSERT_TRUE(eventually([&] { return f.server.stats().refused_overloaded == 16; }))
      << f.server.stats().refused_overloaded;
  // The budget frees as the first four end: a later message is taken again.
  f.step_through(4);
  ASSERT_TRUE(eventually([&] { return f.server.stats().manager.ok == 4; }));
  auto later = f.call(f.flood, f.flood_peer, "later");
  f.step_through(5);
  EXPECT_TRUE(get(later).is_success());
  EXPECT_EQ(f.starts(), 5u);
}

// Refused, and still sending: once its refusals have gone on for longer than
// the server's heartbeat timeout (never more than that apart), a whole budget's
// worth more refused within one heartbeat timeout cuts the client off. What it
// sends then is ignored (never run); what was running ends without a reply,
// so its calls end "peer lost" (they ran); its next HELLO makes it a client
// like any other.
TEST(Admission, AClientThatKeepsSendingAfterItsRefusalsIsCutOffUntilItSaysHelloAgain) {
  NodeOptions o = server_options(2, 16);
  o.heartbeat_interval = 100ms;
  o.heartbeat_timeout = 600ms;  // the time a client has to see its refusals
  Fixture f{"adm-cut", o};
  std::vector<std::future<Notification>> calls;
  calls.reserve(96);
  auto send = [&](int n) {
    for (int i = 0; i < n; ++i) {
      calls.push_back(f.call(f.flood, f.flood_peer, "f" + std::to_string(calls.size())));
    }
  };
  send(16 + 17);  // 16 taken, 17 refused at once: a burst, not counted
  for (std::size_t i = 16; i < 33; ++i) EXPECT_EQ(get(calls[i]).code, errc::overloaded) << i;
  // The times under test (not waits for events): the client goes on sending,
  // its refusals less than a heartbeat timeout apart, for longer than one.
  std::this_thread::sleep_for(400ms);
  send(1);
  EXPECT_EQ(get(calls[33]).code, errc::overloaded);
  std::this_thread::sleep_for(400ms);
  EXPECT_EQ(f.server.stats().clients_cut_off, 0u);
  send(17 + 5);  // 16 refused, the 17th cuts it off, the last 5 are ignored
  for (std::size_t i = 34; i < 51; ++i) EXPECT_EQ(get(calls[i]).code, errc::overloaded) << i;
  ASSERT_TRUE(eventually([&] { return f.server.stats().frames_ignored >= 1; }));  // 1 to 5: BATCHes vary
  EXPECT_EQ(f.server.stats().clients_cut_off, 1u);
  EXPECT_EQ(f.server.stats().refused_overloaded, 35u);
  // The other client is served meanwhile.
  auto normal = f.call(f.normal, f.normal_peer, "n0");
  f.step_through(17);
  EXPECT_TRUE(get(normal).is_success());
  for (std::size_t i = 0; i < 16; ++i) EXPECT_EQ(get(calls[i]).code, errc::peer_lost) << i;  // ran, no reply
  for (std::size_t i = 51; i < calls.size(); ++i) EXPECT_EQ(get(calls[i]).code, errc::peer_lost) << i;
  EXPECT_EQ(f.starts(), 17u) << "an ignored message ran";
  // It said HELLO again on its own (after the loss): served again.
  ASSERT_TRUE(f.flood.wait_ready(f.flood_peer, 10s));
  auto again = f.call(f.flood, f.flood_peer, "again");
  f.step_through(18);
  EXPECT_TRUE(get(again).is_success());
}

// Concurrency 1, a share of 1: once both clients have messages waiting, their
// handlers start in turns, one of each.
TEST(Admission, ClientsTakeTurnsSoNeitherWaitsBehindTheOthersFlood) {
  NodeOptions o = server_options(1, 64);
  o.fair_share = 1;
  Fixture f{"adm-turns", o};
  std::vector<std::future<Notification>> calls;
  calls.reserve(64);
  for (int i = 0; i < 5; ++i) calls.push_back(f.call(f.flood, f.flood_peer, "f" + std::to_string(i)));
  // All five received (so taken into the manager) before the other client sends.
  ASSERT_TRUE(eventually([&] { return f.starts() == 1 && f.server.stats().messages_received == 5; }));
  for (int i = 0; i < 5; ++i) calls.push_back(f.call(f.normal, f.normal_peer, "n" + std::to_string(i)));
  ASSERT_TRUE(eventually([&] { return f.server.stats().messages_received == 10; }));
  for (int i = 5; i < 10; ++i) calls.push_back(f.call(f.flood, f.flood_peer, "f" + std::to_string(i)));
  ASSERT_TRUE(eventually([&] { return f.server.stats().messages_received == 15; }));
  f.step_through(15);
  for (auto& c : calls) EXPECT_TRUE(get(c).is_success());
  // f0..f4 went into the manager before the normal client had anything (a
  // client alone is not held back); from n0 on, the two take turns.
  const std::vector<std::string> expected{"f0", "f1", "f2", "f3", "f4", "n0", "f5", "n1",
                                          "f6", "n2", "f7", "n3", "f8", "n4", "f9"};
  EXPECT_EQ(f.order(), expected);
  EXPECT_EQ(f.server.stats().refused_overloaded, 0u);
}

}  // namespace
}  // namespace amsg::test

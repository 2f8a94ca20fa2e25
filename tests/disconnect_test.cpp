// Node::disconnect() over the in-memory link: what is unsent ends
// "disconnected" and never runs, calls in flight end as they would have (the
// connection stays until then), uses counted per connect(), connect()
// reopening the same PeerId, a closed peer's slot going to a new address, and a
// cohort ending its use of a member it removes.

#include <gtest/gtest.h>

#include <asio/post.hpp>
#include <asio/use_future.hpp>

#include <atomic>
#include <future>

#include "amsg/errors.hpp"
#include "amsg/net/cohort.hpp"
#include "amsg/net/node.hpp"
#include "memory_node_support.hpp"
#include "net_test_support.hpp"
#include "test_support.hpp"
#include "wire/codec.hpp"

namespace amsg::test {
namespace {

using net::CallOptions;
using net::MemoryNetwork;
using net::Node;
using net::PeerId;
using net::PeerState;

namespace wire = net::wire;

wire::Kind kind_of(const MemoryNetwork::Frame& f) {
  return f.bytes.size() < 3 ? wire::Kind{0} : static_cast<wire::Kind>(std::to_integer<int>(f.bytes[2]));
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool in_state(const Node& node, PeerId peer, PeerState state) {
  const auto info = node.peer_info(peer);
  return info && info->state == state;
}

// A server on mem://<name> counting its handler runs.
struct CountingServer {
  CountingServer(const std::shared_ptr<MemoryNetwork>& net, const std::string& name)
      : address{"mem://" + name}, node{mem_node(net, name + "-s", address)} {
    add_handlers(node.manager(), nullptr, &runs);
    node.start();
  }
  std::string address;
  std::atomic<int> runs{0};
  Node node;
};

TEST(Disconnect, WhatWaitsUnsentEndsDisconnectedNeverRunsAndConnectReopensTheSamePeer) {
  auto net = std::make_shared<MemoryNetwork>();
  Node client{mem_node(net, "disc-unsent-c", "")};
  client.start();
  // Nobody listens yet: what is sent waits unsent for the HELLO_ACK.
  const PeerId peer = client.connect("mem://disc-unsent");
  auto queued = client.call(peer, "echo", bytes("queued"), CallOptions{"queued"}, asio::use_future);
  ASSERT_EQ(client.send(peer, "echo", bytes("queued, not notified")), SendStatus::ok);
  client.disconnect(peer);
  const Notification n = get(queued, 5s);
  EXPECT_EQ(n.code, errc::disconnected) << n.text();
  EXPECT_EQ(n.error, "disconnected");
  ASSERT_TRUE(eventually([&] { return in_state(client, peer, PeerState::disconnected); }));
  ASSERT_TRUE(eventually([&] { return client.stats().unsent_disconnected == 1; }));  // the fire-and-forget one
  auto query = client.query_handlers(peer);
  ASSERT_EQ(query.wait_for(5s), std::future_status::ready);
  EXPECT_THROW(query.get(), NetworkError);
  // Sent while disconnected: ends so too, unsent.
  auto after = client.call(peer, "echo", bytes("after"), CallOptions{"after"}, asio::use_future);
  EXPECT_EQ(get(after, 5s).code, errc::disconnected);

  CountingServer server{net, "disc-unsent"};
  EXPECT_EQ(client.connect(server.address), peer);  // reopened under the same PeerId
  ASSERT_TRUE(client.wait_ready(peer, 10s));
  auto later = client.call(peer, "echo", bytes("later"), CallOptions{"later"}, asio::use_future);
  EXPECT_EQ(get(later).payload.as_string_view(), "later");
  EXPECT_EQ(server.runs.load(), 1);  // none of what ended "disconnected"
  EXPECT_EQ(server.node.stats().messages_received, 1u);
  EXPECT_EQ(client.stats().outstanding_calls, 0u);
}

TEST(Disconnect, ACallInFlightEndsAsItWouldHaveAndTheConnectionClosesAfterIt) {
  // Declared first: the filter writes it until the nodes are gone.
  std::atomic<std::int64_t> last_ping{0};  // when the client last sent a PING (steady clock, ns)
  auto net = std::make_shared<MemoryNetwork>();
  CountingServer server{net, "disc-inflight"};
  Node client{mem_node(net, "disc-inflight-c", "")};
  client.start();
  const PeerId peer = client.connect(server.address);
  ASSERT_TRUE(client.wait_ready(peer, 10s));
  net->set_filter([&](const MemoryNetwork::Frame& f) {
    if (f.to_listener && kind_of(f) == wire::Kind::ping) last_ping = now_ns();
    return MemoryNetwork::Verdict::pass;
  });
  auto slow = client.call(peer, "sleep", bytes("300"), CallOptions{"slow"}, asio::use_future);
  ASSERT_TRUE(eventually([&] { return server.runs.load() == 1; }));
  client.disconnect(peer);
  ASSERT_TRUE(eventually([&] { return in_state(client, peer, PeerState::disconnected); }));
  auto after = client.call(peer, "echo", bytes("after"), CallOptions{"after"}, asio::use_future);
  EXPECT_EQ(get(after, 5s).code, errc::disconnected);  // sent after: not run
  const Notification n = get(slow, 10s);
  EXPECT_TRUE(n.is_success()) << "sent before: it ends as it would have, not " << n.text();
  // Then the connection closes: no more heartbeats (the interval is 100 ms).
  EXPECT_TRUE(eventually([&] { return now_ns() - last_ping.load() > 500'000'000; }, 10s));
  EXPECT_EQ(server.runs.load(), 1);
  EXPECT_EQ(client.stats().outstanding_calls, 0u);
}

TEST(Disconnect, APeerLostWhileDisconnectingEndsItsCallsPeerLostAndConnectReopensIt) {
  auto net = std::make_shared<MemoryNetwork>();
  CountingServer server{net, "disc-lost"};
  Node client{mem_node(net, "disc-lost-c", "")};
  client.start();
  const PeerId peer = client.connect(server.address);
  ASSERT_TRUE(client.wait_ready(peer, 10s));
  // connect() while it drains: it is as it was, the same connection.
  auto first = client.call(peer, "sleep", bytes("300"), CallOptions{"first"}, asio::use_future);
  ASSERT_TRUE(eventually([&] { return server.runs.load() == 1; }));
  client.disconnect(peer);
  ASSERT_TRUE(eventually([&] { return in_state(client, peer, PeerState::disconnected); }));
  EXPECT_EQ(client.connect(server.address), peer);
  ASSERT_TRUE(eventually([&] { return in_state(client, peer, PeerState::ready); }));
  EXPECT_TRUE(get(first, 10s).is_success());
  // Lost while it drains: its call ends peer lost (the heartbeat bound: 1 s).
  auto second = client.call(peer, "sleep", bytes("5000"), CallOptions{"second"}, asio::use_future);
  ASSERT_TRUE(eventually([&] { return server.runs.load() == 2; }));
  client.disconnect(peer);
  net->set_filter([](const MemoryNetwork::Frame&) { return MemoryNetwork::Verdict::drop; });
  const Notification n = get(second, 10s);
  EXPECT_EQ(n.code, errc::peer_lost) << n.text();
  EXPECT_TRUE(in_state(client, peer, PeerState::disconnected));
  net->set_filter({});
  EXPECT_EQ(client.connect(server.address), peer);  // dialed afresh
  ASSERT_TRUE(client.wait_ready(peer, 10s));
  auto third = client.call(peer, "echo", bytes("third"), CallOptions{"third"}, asio::use_future);
  EXPECT_EQ(get(third).payload.as_string_view(), "third");
}

TEST(Disconnect, ACallThisNodeSentToItselfRunsToItsEndAfterADisconnect) {
  auto net = std::make_shared<MemoryNetwork>();
  CountingServer node{net, "disc-self"};
  const PeerId peer = node.node.connect(node.address);  // itself, found by its HELLO_ACK
  ASSERT_TRUE(node.node.wait_ready(peer, 10s));
  ASSERT_TRUE(in_state(node.node, peer, PeerState::local));
  auto slow = node.node.call(peer, "sleep", bytes("200"), CallOptions{"slow"}, asio::use_future);
  ASSERT_TRUE(eventually([&] { return node.runs.load() == 1; }));
  node.node.disconnect(peer);
  const Notification n = get(slow, 10s);
  EXPECT_TRUE(n.is_success()) << "it ran: " << n.text();
  EXPECT_TRUE(eventually([&] { return in_state(node.node, peer, PeerState::disconnected); }));
}

TEST(Disconnect, EachConnectIsOneUseAndTheLastDisconnectClosesIt) {
  auto net = std::make_shared<MemoryNetwork>();
  CountingServer server{net, "disc-uses"};
  Node client{mem_node(net, "disc-uses-c", "")};
  client.start();
  const PeerId peer = client.connect(server.address);
  EXPECT_EQ(client.connect(server.address), peer);  // a second use
  ASSERT_TRUE(client.wait_ready(peer, 10s));
  client.disconnect(peer);
  auto call = client.call(peer, "echo", bytes("still"), CallOptions{"still"}, asio::use_future);
  EXPECT_TRUE(get(call).is_success()) << "one use is left";
  EXPECT_TRUE(in_state(client, peer, PeerState::ready));
  client.disconnect(peer);
  ASSERT_TRUE(eventually([&] { return in_state(client, peer, PeerState::disconnected); }));
  client.disconnect(peer);           // no use left: no effect
  client.disconnect(client.self());  // never closes the node itself
  client.disconnect(PeerId{4000});   // unknown: no effect
  EXPECT_EQ(client.connect(server.address), peer);
  ASSERT_TRUE(client.wait_ready(peer, 10s));
  auto again = client.call(peer, "echo", bytes("again"), CallOptions{"again"}, asio::use_future);
  EXPECT_TRUE(get(again).is_success());
  EXPECT_EQ(server.runs.load(), 2);
}

// Returns once everything the node's executor had to do before has run.
void one_turn_of(Node& node) {
  std::promise<void> turn;
  asio::post(node.executor(), [&turn] { turn.set_value(); });
  ASSERT_EQ(turn.get_future().wait_for(10s), std::future_status::ready);
}

// Disconnects `peer` and waits until its channel has closed (the slot is then free).
void disconnect_and_wait(Node& node, PeerId peer) {
  node.disconnect(peer);
  ASSERT_TRUE(eventually([&] { return in_state(node, peer, PeerState::disconnected); }));
  one_turn_of(node);  // the closing runs in the same turn as the state change
}

TEST(Disconnect, AClosedPeersSlotGoesToTheNextNewAddressAndItsOldPeerIdNamesNoPeer) {
  auto net = std::make_shared<MemoryNetwork>();
  CountingServer a{net, "disc-slot-a"};
  CountingServer b{net, "disc-slot-b"};
  Node client{mem_node(net, "disc-slot-c", "")};
  client.start();
  const PeerId peer_a = client.connect(a.address);
  auto first = client.call(peer_a, "echo", bytes("a"), CallOptions{"a"}, asio::use_future);
  EXPECT_TRUE(get(first).is_success());
  disconnect_and_wait(client, peer_a);

  const PeerId peer_b = client.connect(b.address);
  EXPECT_NE(peer_b, peer_a);
  ASSERT_EQ(client.peer_stats().size(), 1u) << "b took a's slot";
  EXPECT_FALSE(client.peer_info(peer_a)) << "a's PeerId names no peer now";
  EXPECT_THROW((void)client.try_send(peer_a, "echo", bytes("x")), std::invalid_argument);
  EXPECT_FALSE(client.wait_ready(peer_a, 10s));  // at once: it names no peer
  EXPECT_THROW((void)client.query_handlers(peer_a).get(), std::invalid_argument);
  auto to_b = client.call(peer_b, "echo", bytes("b"), CallOptions{"b"}, asio::use_future);
  EXPECT_TRUE(get(to_b).is_success());
  const auto stats = client.peer_stats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].peer, peer_b);
  EXPECT_EQ(stats[0].info.address, b.address);
  EXPECT_EQ(stats[0].calls_sent, 1u) << "the slot's counters start again";
  EXPECT_EQ(a.runs.load(), 1);
  EXPECT_EQ(b.runs.load(), 1);

  // a again: its old slot is b's now, so it gets another.
  const PeerId again = client.connect(a.address);
  EXPECT_NE(again, peer_a);
  auto to_a = client.call(again, "echo", bytes("a2"), CallOptions{"a2"}, asio::use_future);
  EXPECT_TRUE(get(to_a).is_success());
  EXPECT_EQ(client.peer_stats().size(), 2u);
  EXPECT_EQ(a.runs.load(), 2);
}

TEST(Disconnect, ANodeDialsMoreDistinctAddressesOverItsLifeThanItHasSlots) {
  auto net = std::make_shared<MemoryNetwork>();
  CountingServer server{net, "disc-many"};
  Node client{mem_node(net, "disc-many-c", "")};
  client.start();
  const PeerId kept = client.connect(server.address);
  ASSERT_TRUE(client.wait_ready(kept, 10s));
  constexpr int kAddresses = 4200;  // more than the 4,095 peers a node holds at once
  for (int i = 0; i < kAddresses; ++i) {
    const PeerId gone = client.connect("mem://disc-many-nobody-" + std::to_string(i));
    disconnect_and_wait(client, gone);
    if (HasFatalFailure()) return;
  }
  EXPECT_EQ(client.peer_stats().size(), 2u) << "every address used the one free slot in turn";
  auto call = client.call(kept, "echo", bytes("still"), CallOptions{"still"}, asio::use_future);
  EXPECT_TRUE(get(call).is_success());
}

TEST(Disconnect, ACohortEndsItsUseOfAMemberItRemovesButNotTheApplications) {
  auto net = std::make_shared<MemoryNetwork>();
  CountingServer a{net, "disc-cohort-a"};
  CountingServer b{net, "disc-cohort-b"};
  Node leader{mem_node(net, "disc-cohort-l", "")};
  leader.start();
  const PeerId own_use = leader.connect(b.address);  // the application's use of b
  net::Cohort cohort{leader};
  cohort.add(a.address, 0);
  cohort.add(b.address, 1);
  ASSERT_TRUE(cohort.wait_ready(2, 10s));
  const PeerId peer_a = leader.connect(a.address);
  leader.disconnect(peer_a);  // (that connect() was a use too)
  ASSERT_TRUE(cohort.remove(0));
  ASSERT_TRUE(cohort.remove(1));
  ASSERT_TRUE(eventually([&] { return in_state(leader, peer_a, PeerState::disconnected); }));
  EXPECT_TRUE(in_state(leader, own_use, PeerState::ready)) << "the application still uses it";
  auto call = leader.call(own_use, "echo", bytes("b"), CallOptions{"b"}, asio::use_future);
  EXPECT_TRUE(get(call).is_success());
  EXPECT_EQ(cohort.add(a.address, 0), 0u);  // added again: reopened
  ASSERT_TRUE(cohort.wait_ready(1, 10s));
  EXPECT_TRUE(in_state(leader, peer_a, PeerState::ready));
}

}  // namespace
}  // namespace amsg::test

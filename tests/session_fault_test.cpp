// The session under faults, over the in-memory link (mem://): frames dropped,
// delayed, reordered, duplicated, connections cut, peers restarted. One
// process, no sockets, no sleeps; every test checks the accounting: one
// outcome per notified message, with the right code.

#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/use_future.hpp>

#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <atomic>
#include <charconv>
#include <future>
#include <set>

#include "amsg/net/node.hpp"
#include "link/memory_link.hpp"
#include "net_test_support.hpp"
#include "test_support.hpp"
#include "wire/codec.hpp"

namespace amsg::test {
namespace {

using net::CallOptions;
using net::MemoryLink;
using net::MemoryNetwork;
using net::Node;
using net::NodeOptions;
using net::PeerId;
using net::PeerState;
using Verdict = MemoryNetwork::Verdict;
namespace wire = net::wire;

wire::Kind kind_of(const MemoryNetwork::Frame& f) {
  return f.bytes.size() < 3 ? wire::Kind{0} : static_cast<wire::Kind>(std::to_integer<int>(f.bytes[2]));
}
bool is_request(const MemoryNetwork::Frame& f) {
  return f.to_listener && (kind_of(f) == wire::Kind::msg || kind_of(f) == wire::Kind::batch);
}
bool is_answer(const MemoryNetwork::Frame& f) {
  return !f.to_listener && (kind_of(f) == wire::Kind::reply || kind_of(f) == wire::Kind::batch);
}

// Short heartbeats, so that loss is detected in ~100 ms.
NodeOptions mem_options(const std::shared_ptr<MemoryNetwork>& net, const std::string& log, std::size_t threads) {
  NodeOptions o;
  o.links = {std::make_shared<MemoryLink>(net)};
  o.manager.logger_name = quiet_logger(log);
  o.manager.threads = threads;
  o.heartbeat_interval = 20ms;
  o.heartbeat_timeout = 100ms;
  return o;
}

// A server on mem://server counting the handler runs, and a client connected to it.
struct MemPair {
  explicit MemPair(const std::string& name, std::string address = "mem://server")
      : net{std::make_shared<MemoryNetwork>()},
        address{std::move(address)},
        server{std::make_unique<Node>(server_options(name))},
        client{mem_options(net, name + "-c", 1)} {
    start_server(*server);
    client.start();
    peer = client.connect(this->address);
    EXPECT_TRUE(client.wait_ready(peer, 10s));
  }
  NodeOptions server_options(const std::string& name) {
    NodeOptions o = mem_options(net, name + "-s", 2);
    o.listen = {address};
    o.manager.concurrency = 16;  // room beside handlers that a test leaves running
    return o;
  }
  void start_server(Node& node) {
    add_handlers(node.manager(), nullptr, &runs);
    node.start();
  }
  std::vector<std::future<Notification>> calls(int n, const std::string& type, const std::string& body,
                                               std::chrono::milliseconds timeout = 0ms) {
    std::vector<std::future<Notification>> out;
    out.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
      out.push_back(client.call(peer, type, bytes(body + std::to_string(i)),
                                CallOptions{"c" + std::to_string(i), timeout}, asio::use_future));
    }
    return out;
  }
  std::shared_ptr<MemoryNetwork> net;
  std::string address;
  std::atomic<int> runs{0};
  std::unique_ptr<Node> server;
  Node client;
  PeerId peer{};
};

TEST(SessionFaults, DroppedRequestsEndByTheirDeadlineAndNothingElse) {
  MemPair pair{"fault-drop"};
  pair.net->set_filter([](const MemoryNetwork::Frame& f) { return is_request(f) ? Verdict::drop : Verdict::pass; });
  auto futures = pair.calls(10, "echo", "x", 150ms);
  for (auto& f : futures) {
    const Notification n = get(f);
    EXPECT_EQ(n.code, errc::timeout) << n.text();
    EXPECT_EQ(n.error, "timeout");
  }
  EXPECT_EQ(pair.runs.load(), 0);
  EXPECT_EQ(pair.client.stats().timeouts, 10u);
  pair.net->set_filter({});
  auto again = pair.calls(1, "echo", "back");
  EXPECT_EQ(get(again[0]).payload.as_string_view(), "back0");
  EXPECT_EQ(pair.client.stats().outstanding_calls, 0u);
  EXPECT_EQ(pair.client.stats().late_replies, 0u);
}

TEST(SessionFaults, DelayedRepliesArriveLateAndAreDiscardedNotDelivered) {
  MemPair pair{"fault-delay"};
  pair.net->set_filter([](const MemoryNetwork::Frame& f) { return is_answer(f) ? Verdict::hold : Verdict::pass; });
  auto futures = pair.calls(8, "echo", "x", 100ms);
  for (auto& f : futures) EXPECT_EQ(get(f).code, errc::timeout);
  ASSERT_TRUE(eventually([&] { return pair.net->held() > 0 && pair.runs.load() == 8; }));
  pair.net->set_filter({});
  const std::size_t released = pair.net->release_held();
  EXPECT_GT(released, 0u);
  // Every reply (alone or batched) finds its call ended: counted, never an outcome.
  ASSERT_TRUE(eventually([&] { return pair.client.stats().late_replies == 8; }));
  EXPECT_FALSE(pair.client.manager().try_receive());
  EXPECT_EQ(pair.client.stats().outstanding_calls, 0u);
}

TEST(SessionFaults, ReorderedRequestsAndRepliesEachFindTheirCall) {
  MemPair pair{"fault-reorder"};
  pair.net->set_filter(
      [](const MemoryNetwork::Frame& f) { return is_request(f) || is_answer(f) ? Verdict::hold : Verdict::pass; });
  // Each call on its own, so each request is a frame of its own: held, then sent last first.
  std::vector<std::future<Notification>> futures;
  for (int i = 0; i < 6; ++i) {
    futures.push_back(pair.client.call(pair.peer, "echo", bytes("r" + std::to_string(i)), {}, asio::use_future));
    ASSERT_TRUE(eventually([&] { return pair.net->held() == static_cast<std::size_t>(i + 1); }));
  }
  EXPECT_EQ(pair.net->release_held(/*reverse=*/true), 6u);
  ASSERT_TRUE(eventually([&] { return pair.net->held() >= 1 && pair.runs.load() == 6; }));
  ASSERT_TRUE(eventually([&] {
    pair.net->release_held(/*reverse=*/true);
    return pair.client.stats().outstanding_calls == 0;
  }));
  for (int i = 0; i < 6; ++i) {
    const Notification n = get(futures[static_cast<std::size_t>(i)]);
    EXPECT_TRUE(n.is_success()) << n.text();
    EXPECT_EQ(n.payload.as_string_view(), "r" + std::to_string(i));
  }
  EXPECT_EQ(pair.client.stats().late_replies, 0u);
}

TEST(SessionFaults, DuplicatedFramesGiveOneOutcomePerCall) {
  MemPair pair{"fault-dup"};
  pair.net->set_filter(
      [](const MemoryNetwork::Frame& f) { return is_request(f) || is_answer(f) ? Verdict::duplicate : Verdict::pass; });
  std::vector<std::future<Notification>> futures;
  for (int i = 0; i < 5; ++i) {
    futures.push_back(pair.client.call(pair.peer, "echo", bytes("d" + std::to_string(i)), {}, asio::use_future));
    EXPECT_EQ(get(futures.back()).payload.as_string_view(), "d" + std::to_string(i));
  }
  // Each request ran twice (duplicated on the way), each reply came 4 times
  // (2 runs x 2 copies): one outcome, three late.
  ASSERT_TRUE(eventually([&] { return pair.client.stats().late_replies == 15; }));
  EXPECT_EQ(pair.runs.load(), 10);
  EXPECT_EQ(pair.client.stats().replies_received, 5u);
  EXPECT_FALSE(pair.client.manager().try_receive());
}

TEST(SessionFaults, ACutConnectionFailsOutstandingCallsWithPeerLostAndHealsWhenRestored) {
  std::atomic<bool> cut{false};  // declared first: the filter reads it until the nodes are gone
  MemPair pair{"fault-cut"};
  auto running = pair.calls(4, "sleep", "60000");  // no deadline: only the cut can end them
  ASSERT_TRUE(eventually([&] { return pair.runs.load() == 4; }));
  ASSERT_EQ(pair.client.send(pair.peer, "sleep", bytes("60000"), {"notified"}), SendStatus::ok);
  ASSERT_TRUE(eventually([&] { return pair.runs.load() == 5; }));
  cut = true;
  pair.net->set_filter([&cut](const MemoryNetwork::Frame&) { return cut ? Verdict::drop : Verdict::pass; });
  for (auto& f : running) {
    const Notification n = get(f, 5s);
    EXPECT_EQ(n.code, errc::peer_lost) << n.text();
    EXPECT_EQ(n.error, "peer lost");
  }
  auto channel = receive_n(pair.client.manager(), 1, 5s);
  ASSERT_EQ(channel.size(), 1u);
  EXPECT_EQ(channel[0].text(), "notified:err(peer lost)");
  EXPECT_EQ(channel[0].code, errc::peer_lost);
  EXPECT_EQ(pair.client.stats().calls_failed_peer, 5u);
  const auto before = pair.client.peer_info(pair.peer)->connections;
  cut = false;
  ASSERT_TRUE(eventually([&] { return pair.client.peer_info(pair.peer)->connections > before; }))
      << "state " << net::to_string(pair.client.peer_info(pair.peer)->state) << " connections "
      << pair.client.peer_info(pair.peer)->connections << " before " << before << " dropped " << pair.net->dropped()
      << " server received " << pair.server->stats().messages_received << " malformed "
      << pair.server->stats().malformed_frames;
  auto after = pair.calls(1, "echo", "healed");
  EXPECT_EQ(get(after[0]).payload.as_string_view(), "healed0");
  EXPECT_TRUE(eventually([&] { return pair.client.stats().outstanding_calls == 0; }));
}

TEST(SessionFaults, ARestartedPeerIsReconnectedUnderItsNewIdentity) {
  MemPair pair{"fault-restart"};
  const std::string first = pair.client.peer_info(pair.peer)->identity;
  auto running = pair.calls(3, "sleep", "60000");
  ASSERT_TRUE(eventually([&] { return pair.runs.load() == 3; }));
  pair.server->shutdown(0ms);  // its shutdown cancels the running handlers and says so
  pair.server.reset();
  for (auto& f : running) {
    const Notification n = get(f, 5s);
    EXPECT_EQ(n.code, errc::cancelled) << n.text();
    EXPECT_EQ(n.outcome, Outcome::cancelled);
  }
  pair.server = std::make_unique<Node>(pair.server_options("fault-restart-2"));
  pair.start_server(*pair.server);
  ASSERT_TRUE(eventually([&] {
    const auto info = pair.client.peer_info(pair.peer);
    return info->state == PeerState::ready && info->identity == pair.server->identity();
  }));
  EXPECT_NE(first, pair.server->identity());
  auto again = pair.calls(1, "echo", "new");
  EXPECT_EQ(get(again[0]).payload.as_string_view(), "new0");
}

TEST(SessionFaults, NobodyListeningMeansPeerUnreachable) {
  auto net = std::make_shared<MemoryNetwork>();
  Node client{mem_options(net, "fault-unreachable", 1)};
  client.start();
  const PeerId peer = client.connect("mem://nobody");
  auto f = client.call(peer, "echo", bytes(""), CallOptions{"u"}, asio::use_future);
  const Notification n = get(f, 5s);
  EXPECT_EQ(n.text(), "u:err(peer unreachable)");
  EXPECT_EQ(n.code, errc::peer_unreachable);
}

// Callers that call again from their outcome (a coroutine in a loop on the
// node's own thread) while the peer is unreachable: each attempt ends
// unreachable in turn, the node's heartbeat goes on, and its other peers are
// served. (The outcomes once failed the queue in a loop that the new calls kept
// refilling: the node's thread never came back. A chaos run found it.)
TEST(SessionFaults, CallersThatRetryOnUnreachableDoNotStallTheNode) {
  MemPair pair{"fault-retry-unreachable"};
  const PeerId nobody = pair.client.connect("mem://nobody");
  std::atomic<bool> stop{false};
  std::atomic<int> unreachable{0};
  std::vector<std::future<void>> retriers;
  retriers.reserve(4);
  for (int i = 0; i < 4; ++i) {
    retriers.push_back(asio::co_spawn(
        pair.client.executor(),
        [&]() -> asio::awaitable<void> {
          while (!stop) {
            const Notification n = co_await pair.client.call(nobody, "echo", bytes("x"), CallOptions{"r"});
            if (n.code == errc::peer_unreachable) unreachable.fetch_add(1);
          }
        },
        asio::use_future));
  }
  ASSERT_TRUE(eventually([&] { return unreachable.load() >= 8; })) << unreachable.load();
  auto other = pair.calls(1, "echo", "served");
  EXPECT_TRUE(get(other[0], 10s).is_success());
  stop = true;
  for (auto& r : retriers) EXPECT_EQ(r.wait_for(10s), std::future_status::ready);
}

// "peer unreachable" means not run: nothing is sent before the HELLO_ACK, so a
// listener that appears later never sees the messages that ended that way.
TEST(SessionFaults, MessagesThatEndedPeerUnreachableNeverRunWhenThePeerAppears) {
  auto net = std::make_shared<MemoryNetwork>();
  Node client{mem_options(net, "fault-unreachable-later-c", 1)};
  client.start();
  const PeerId peer = client.connect("mem://appears-later");
  auto call = client.call(peer, "echo", bytes("early"), CallOptions{"early"}, asio::use_future);
  ASSERT_EQ(client.send(peer, "echo", bytes("early, not notified")), SendStatus::ok);
  EXPECT_EQ(get(call, 5s).code, errc::peer_unreachable);
  ASSERT_TRUE(eventually([&] { return client.stats().unsent_unreachable == 1; }));

  NodeOptions so = mem_options(net, "fault-unreachable-later-s", 1);
  so.listen = {"mem://appears-later"};
  std::atomic<int> runs{0};
  Node server{so};
  add_handlers(server.manager(), nullptr, &runs);
  server.start();
  ASSERT_TRUE(client.wait_ready(peer, 10s));
  auto later = client.call(peer, "echo", bytes("later"), CallOptions{"later"}, asio::use_future);
  EXPECT_TRUE(get(later).is_success());
  EXPECT_EQ(runs.load(), 1);  // only the later call
  EXPECT_EQ(server.stats().messages_received, 1u);
}

// Nothing is sent before the HELLO_ACK, but a queued call's deadline still
// holds: it ends "timeout" at its deadline, not "peer unreachable" later.
TEST(SessionFaults, ACallWhoseDeadlinePassesWhileConnectingEndsTimeoutAndNeverRuns) {
  auto net = std::make_shared<MemoryNetwork>();
  NodeOptions co = mem_options(net, "fault-connecting-deadline-c", 1);
  co.heartbeat_timeout = 30s;  // so "peer unreachable" cannot come first
  Node client{co};
  client.start();
  const PeerId peer = client.connect("mem://connecting-deadline");
  const auto sent = std::chrono::steady_clock::now();
  auto short_call = client.call(peer, "echo", bytes("short"), CallOptions{"short", 50ms}, asio::use_future);
  auto long_call = client.call(peer, "echo", bytes("long"), CallOptions{"long", 60s}, asio::use_future);
  const Notification n = get(short_call, 10s);
  EXPECT_EQ(n.code, errc::timeout) << n.text();
  EXPECT_LT(std::chrono::steady_clock::now() - sent, 10s);
  EXPECT_EQ(client.stats().timeouts, 1u);

  NodeOptions so = mem_options(net, "fault-connecting-deadline-s", 1);
  so.listen = {"mem://connecting-deadline"};
  std::atomic<int> runs{0};
  Node server{so};
  add_handlers(server.manager(), nullptr, &runs);
  server.start();
  EXPECT_EQ(get(long_call).payload.as_string_view(), "long") << "the call still in time is sent once connected";
  EXPECT_EQ(runs.load(), 1);
  EXPECT_EQ(server.stats().messages_received, 1u);
  EXPECT_EQ(client.stats().outstanding_calls, 0u);
}

// The peer restarts and the link carries on to the new process (as ZeroMQ's
// reconnection does) before any silence is noticed: the new node's unasked
// HELLO_ACK ends the old connection's calls, and the client says HELLO on the
// new connection, so the new node knows it (heartbeats, BYE at shutdown).
TEST(SessionFaults, ARestartBehindTheLinksBackIsNoticedAndTheNewConnectionSaysHello) {
  auto net = std::make_shared<MemoryNetwork>();
  NodeOptions co = mem_options(net, "fault-relink-c", 1);
  co.heartbeat_timeout = 30s;  // silence cannot explain what follows
  Node client{co};
  auto server_options = [&] {  // a new link each time: a link belongs to one node
    NodeOptions so = mem_options(net, "fault-relink-s", 2);
    so.listen = {"mem://relink"};
    return so;
  };
  std::atomic<int> runs{0};
  auto server = std::make_unique<Node>(server_options());
  add_handlers(server->manager(), nullptr, &runs);
  server->start();
  client.start();
  const PeerId peer = client.connect("mem://relink");
  ASSERT_TRUE(client.wait_ready(peer, 10s));
  const std::string first = server->identity();
  auto orphan = client.call(peer, "sleep", bytes("600000"), CallOptions{"orphan"}, asio::use_future);
  ASSERT_TRUE(eventually([&] { return runs.load() == 1; }));
  // The old node vanishes without a word: its last replies and its BYE are lost.
  net->set_filter([](const MemoryNetwork::Frame& f) { return f.to_listener ? Verdict::pass : Verdict::drop; });
  server->shutdown(0ms);
  net->set_filter({});  // before the new node exists: its new-connection HELLO_ACK must pass
  server = std::make_unique<Node>(server_options());
  add_handlers(server->manager(), nullptr, &runs);
  server->start();

  const Notification n = get(orphan);  // the client's next PING reaches the new node
  EXPECT_EQ(n.code, errc::peer_lost) << n.text();
  EXPECT_EQ(client.stats().peers_lost, 1u);
  ASSERT_TRUE(eventually([&] { return client.peer_info(peer)->identity == server->identity(); }));
  EXPECT_NE(client.peer_info(peer)->identity, first);
  EXPECT_EQ(client.peer_info(peer)->state, PeerState::ready);
  auto after = client.call(peer, "echo", bytes("after"), CallOptions{"after", 10s}, asio::use_future);
  EXPECT_EQ(get(after).payload.as_string_view(), "after");

  // The new node knows the client said HELLO: its shutdown tells it so.
  server->shutdown(0ms);
  EXPECT_TRUE(eventually([&] { return client.peer_info(peer)->state == PeerState::closing; }));
  EXPECT_EQ(client.stats().peers_lost, 1u);
  EXPECT_EQ(client.stats().outstanding_calls, 0u);
}

TEST(SessionFaults, MessagesSentBeforeTheListenerExistsArriveWhenItDoes) {
  auto net = std::make_shared<MemoryNetwork>();
  NodeOptions co = mem_options(net, "fault-late-listener-c", 1);
  co.heartbeat_timeout = 20s;  // the listener appears within it: the message waits for it
  Node client{co};
  client.start();
  const PeerId peer = client.connect("mem://later");
  ASSERT_EQ(client.send(peer, "echo", bytes("early")), SendStatus::ok);
  NodeOptions so = mem_options(net, "fault-late-listener-s", 2);
  so.listen = {"mem://later"};
  std::atomic<int> got{0};
  Node server{so};
  server.manager().register_handler("echo", make_handler([&got](Message&) -> asio::awaitable<void> {
                                      got.fetch_add(1);
                                      co_return;
                                    }));
  server.start();
  ASSERT_TRUE(eventually([&] { return got.load() == 1; }));
  EXPECT_TRUE(client.wait_ready(peer, 10s));
}

TEST(SessionFaults, BackpressureOverTheMemoryLinkIsBoundedAndLosesNothing) {
  auto net = std::make_shared<MemoryNetwork>();
  NodeOptions so = mem_options(net, "fault-bp-s", 2);
  so.listen = {"mem://bp"};
  so.manager.concurrency = 1;
  so.manager.inbox_capacity = 2;
  Node server{so};
  Gate gate{server.manager().executor()};
  server.manager().register_handler("gated",
                                    make_handler([&gate](Message&) -> asio::awaitable<void> { co_await gate.wait(); }));
  server.start();
  NodeOptions co = mem_options(net, "fault-bp-c", 1);
  co.peer_queue_capacity = 4;
  co.max_outstanding_calls = 64;
  Node client{co};
  client.start();
  const PeerId peer = client.connect("mem://bp");
  ASSERT_TRUE(client.wait_ready(peer, 10s));
  // The peer queue (4) may be full for a moment, until the executor drains it;
  // the outstanding-call limit (64) is what stays.
  int accepted = 0;
  for (int tries = 0; tries < 1'000'000 && accepted < 64; ++tries) {
    if (client.try_send(peer, "gated", bytes("g"), {"g" + std::to_string(accepted)}) == SendStatus::ok) ++accepted;
  }
  ASSERT_EQ(accepted, 64);
  EXPECT_EQ(client.try_send(peer, "gated", bytes("g"), {"over"}), SendStatus::full)
      << "the outstanding-call limit bounds what a sender can have in flight";
  gate.open(static_cast<std::size_t>(accepted));
  auto got = receive_n(client.manager(), static_cast<std::size_t>(accepted));
  ASSERT_EQ(got.size(), static_cast<std::size_t>(accepted));
  std::set<std::string> ids;
  for (const auto& n : got) {
    EXPECT_TRUE(n.is_success()) << n.text();
    ids.insert(n.id);
  }
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(accepted));
  EXPECT_FALSE(client.manager().try_receive());
}

// A server whose inbox is full stops reading its clients, PINGs included, but
// keeps PINGing them: a busy, healthy server is never declared lost.
TEST(SessionFaults, ABusyServerThatStopsReadingIsNotDeclaredLost) {
  auto net = std::make_shared<MemoryNetwork>();
  NodeOptions so = mem_options(net, "fault-busy-s", 2);
  so.listen = {"mem://busy"};
  so.manager.concurrency = 1;
  so.manager.inbox_capacity = 2;
  Node server{so};
  std::atomic<int> runs{0};
  add_handlers(server.manager(), nullptr, &runs);
  server.start();
  NodeOptions co = mem_options(net, "fault-busy-c", 1);
  co.heartbeat_timeout = 400ms;  // room for a loaded machine; silence would still show well within the test
  Node client{co};
  client.start();
  const PeerId peer = client.connect("mem://busy");
  ASSERT_TRUE(client.wait_ready(peer, 10s));
  // 1.5 s of work ahead of 64 more calls: the server's inbox stays full, and its
  // reading paused, for longer than the 1 s (10 x its heartbeat_timeout) after
  // which a listener forgets a client it has not heard from while reading.
  auto slow = client.call(peer, "sleep", bytes("1500"), CallOptions{"slow"}, asio::use_future);
  std::vector<std::future<Notification>> behind;
  behind.reserve(64);
  for (int i = 0; i < 64; ++i) {
    behind.push_back(client.call(peer, "echo", bytes(std::to_string(i)), CallOptions{"e"}, asio::use_future));
  }
  ASSERT_TRUE(eventually([&] { return server.stats().manager.received >= 3; }));
  const Notification n = get(slow);
  EXPECT_TRUE(n.is_success()) << n.text();
  for (int i = 0; i < 64; ++i) {
    EXPECT_EQ(get(behind[static_cast<std::size_t>(i)]).payload.as_string_view(), std::to_string(i));
  }
  EXPECT_EQ(client.stats().peers_lost, 0u);
  EXPECT_EQ(runs.load(), 65);
}

// What a busy server is not: one whose handlers block every pool thread. The
// session runs on the pool too, so it cannot answer; its clients declare it
// lost (the truth: it cannot serve) and pick it up again once it can.
TEST(SessionFaults, HandlersThatBlockEveryPoolThreadStopTheNodeAndItsPeersSaySo) {
  auto net = std::make_shared<MemoryNetwork>();
  NodeOptions so = mem_options(net, "fault-blocked-s", 1);
  so.listen = {"mem://blocked"};
  Node server{so};
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  server.manager().register_handler("block", make_handler([released](Message&) -> asio::awaitable<void> {
                                      released.wait();  // blocks the pool's only thread (what not to do)
                                      co_return;
                                    }));
  add_handlers(server.manager());
  server.start();
  Node client{mem_options(net, "fault-blocked-c", 1)};
  client.start();
  const PeerId peer = client.connect("mem://blocked");
  ASSERT_TRUE(client.wait_ready(peer, 10s));
  auto blocked = client.call(peer, "block", bytes(""), CallOptions{"blocked"}, asio::use_future);
  const Notification n = get(blocked);
  EXPECT_EQ(n.code, errc::peer_lost) << n.text();
  EXPECT_GE(client.stats().peers_lost, 1u);
  release.set_value();
  ASSERT_TRUE(client.wait_ready(peer, 10s));
  auto after = client.call(peer, "echo", bytes("after"), CallOptions{"after", 10s}, asio::use_future);
  EXPECT_EQ(get(after).payload.as_string_view(), "after");
}

TEST(SessionFaults, EveryOutcomeCarriesItsCode) {
  MemPair pair{"fault-codes"};
  auto fail = pair.client.call(pair.peer, "fail", bytes("boom"), CallOptions{"f"}, asio::use_future);
  auto unknown = pair.client.call(pair.peer, "nope", bytes(""), CallOptions{"n"}, asio::use_future);
  auto ok = pair.client.call(pair.peer, "echo", bytes("y"), CallOptions{"o"}, asio::use_future);
  const Notification f = get(fail);
  EXPECT_EQ(f.text(), "f:err(boom)");
  EXPECT_EQ(f.code, errc::handler_error);
  const Notification u = get(unknown);
  EXPECT_EQ(u.text(), "n:err(unknown message type 'nope')");
  EXPECT_EQ(u.code, errc::unknown_type);
  const Notification o = get(ok);
  EXPECT_TRUE(o.is_success());
  EXPECT_FALSE(o.code);
  pair.client.shutdown(0ms);
  auto closed = pair.client.call(pair.peer, "echo", bytes(""), CallOptions{"c"}, asio::use_future);
  const Notification c = get(closed);
  EXPECT_EQ(c.code, errc::node_shutting_down);
  EXPECT_EQ(c.text(), "c:err(node shutting down)");
}

}  // namespace
}  // namespace amsg::test

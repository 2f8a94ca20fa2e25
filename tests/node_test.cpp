// Two nodes in this process over each link between processes: ZeroMQ (ipc on
// /tmp, removed afterwards) and UCX (ucx:// on loopback; shared memory carries
// the AMs): every send pattern, deadlines, self-sends, backpressure and
// shutdown accounting.

#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <array>
#include <asio/co_spawn.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_future.hpp>
#include <charconv>
#include <future>
#include <mutex>
#include <set>

#include "amsg/net/node.hpp"
#include "net_test_support.hpp"
#include "process.hpp"
#include "test_support.hpp"

namespace amsg::test {
namespace {

using net::CallOptions;
using net::Node;
using net::NodeOptions;
using net::PeerId;
using net::PeerState;

// The link under test: "ipc" (ZeroMQ), "ucx", or "ucx_busy" (UCX with
// UcxOptions::busy_poll: the server's pool, and ServerAndClient's client's,
// poll without sleeping).
class NodeOverLink : public ::testing::TestWithParam<std::string> {};

// Where a server listens: an ipc path (removed afterwards) or a fresh loopback
// port. Clients connect to what the server says it listens on (endpoints()).
class ListenAt {
 public:
  explicit ListenAt(std::string link) : link_{std::move(link)} {}
  [[nodiscard]] std::string address() const { return link_ == "ipc" ? ipc_.address() : "ucx://127.0.0.1:0"; }
  [[nodiscard]] bool busy() const { return link_ == "ucx_busy"; }

 private:
  std::string link_;
  IpcPath ipc_;
};

NodeOptions server_options(const ListenAt& path, const std::string& log) {
  NodeOptions o;
  o.listen = {path.address()};
  o.manager.logger_name = quiet_logger(log);
  o.manager.threads = 2;
  if (path.busy()) {
    o.ucx.busy_poll = true;
    o.manager.threads = 1;  // one spinning thread: the machine has few cores
  }
  return o;
}

NodeOptions client_options_for(const ListenAt& path, const std::string& log) {
  NodeOptions o = client_options(log);
  o.ucx.busy_poll = path.busy();
  return o;
}

// A server with the handlers above on an ipc path, and a started client
// connected to it: how most tests here begin.
struct ServerAndClient {
  ServerAndClient(const std::string& name, const std::string& link)
      : path{link}, server{server_options(path, name + "-s")}, client{client_options_for(path, name + "-c")} {
    add_handlers(server.manager());
    server.start();
    client.start();
    peer = client.connect(server.endpoints().front());
  }
  ListenAt path;
  Node server;
  Node client;
  PeerId peer{};
};

TEST_P(NodeOverLink, CallCarriesTheResponseBytesBack) {
  ServerAndClient nodes{"node-call", GetParam()};
  Node& client = nodes.client;
  const PeerId peer = nodes.peer;
  auto f = client.call(peer, "echo", bytes("hello over ipc"), CallOptions{"c1"}, asio::use_future);
  Notification n = get(f);
  EXPECT_TRUE(n.is_success()) << n.text();
  EXPECT_EQ(n.id, "c1");
  EXPECT_EQ(n.message_type, "echo");
  EXPECT_EQ(n.payload.as_string_view(), "hello over ipc");
  EXPECT_EQ(n.text(), "c1:ok");
}

// Payloads of at least 16 KiB travel apart from their header (over UCX from
// the sender's buffer into the receiver's), the rest inside their frame or
// BATCH: queued together, both kinds keep their bytes and their order, and so
// do replies of both kinds.
TEST_P(NodeOverLink, LargeAndSmallPayloadsQueuedTogetherArriveWholeAndInOrder) {
  const ListenAt at{GetParam()};
  NodeOptions so = server_options(at, "node-mixed-s");
  so.manager.concurrency = 1;  // handlers run in the order the messages were read
  Node server{so};
  add_handlers(server.manager());
  std::mutex mutex;
  std::vector<std::string> received;
  server.manager().register_handler("record", make_handler([&](Message& m) -> asio::awaitable<void> {
                                      std::lock_guard lock{mutex};
                                      received.emplace_back(m.payload.as_string_view());
                                      co_return;
                                    }));
  server.start();
  Node client{client_options("node-mixed-c")};
  client.start();
  const PeerId peer = client.connect(server.endpoints().front());
  ASSERT_TRUE(client.wait_ready(peer, 10s));

  const std::array<std::size_t, 8> sizes{10, 20 << 10, 300, 1 << 20, (16 << 10) - 1, 16 << 10, 70000, 5};
  std::vector<std::string> sent;
  for (std::size_t i = 0; i < 6 * sizes.size(); ++i) {
    std::string body(sizes[i % sizes.size()], '\0');
    for (std::size_t j = 0; j < body.size(); ++j) body[j] = static_cast<char>('a' + (i * 31 + j * 7 + j / 4096) % 26);
    sent.push_back(body);
  }
  for (const auto& body : sent) ASSERT_EQ(client.send(peer, "record", bytes(body)), SendStatus::ok);
  std::vector<std::future<Notification>> calls;
  calls.reserve(sent.size());
  for (const auto& body : sent)
    calls.push_back(client.call(peer, "echo", bytes(body), CallOptions{"e"}, asio::use_future));
  for (std::size_t i = 0; i < calls.size(); ++i) {
    const Notification n = get(calls[i]);
    ASSERT_TRUE(n.is_success()) << i << ": " << n.text();
    EXPECT_TRUE(n.payload.as_string_view() == sent[i]) << "reply " << i << " of " << sent[i].size() << " bytes";
  }
  const bool all_arrived = eventually([&] {
    std::lock_guard lock{mutex};
    return received.size() == sent.size();
  });
  if (!all_arrived) {
    const net::NodeStats c = client.stats();
    const net::NodeStats s = server.stats();
    std::lock_guard lock{mutex};
    FAIL() << received.size() << " of " << sent.size() << " messages arrived; client: sent " << c.messages_sent
           << ", peers lost " << c.peers_lost << ", malformed " << c.malformed_frames << "; server: received "
           << s.messages_received << ", malformed " << s.malformed_frames << ", refused overloaded "
           << s.refused_overloaded << ", too large " << s.refused_too_large << ", cut off " << s.clients_cut_off
           << ", ignored " << s.frames_ignored << ", manager received " << s.manager.received << ", dispatched "
           << s.manager.dispatched;
  }
  std::lock_guard lock{mutex};
  for (std::size_t i = 0; i < sent.size(); ++i) {
    EXPECT_TRUE(received[i] == sent[i]) << "message " << i << " of " << sent[i].size() << " bytes";
  }
}

TEST_P(NodeOverLink, PeerStatsCountCallsByOutcomeAndTheirRoundTrips) {
  ServerAndClient nodes{"node-peer-stats", GetParam()};
  Node& client = nodes.client;
  const PeerId peer = nodes.peer;
  for (int i = 0; i < 5; ++i) {
    auto f = client.call(peer, "echo", bytes("x"), CallOptions{"ok"}, asio::use_future);
    EXPECT_TRUE(get(f).is_success());
  }
  auto bad = client.call(peer, "fail", bytes("no"), CallOptions{"bad"}, asio::use_future);
  EXPECT_FALSE(get(bad).is_success());
  auto slow = client.call(peer, "sleep", bytes("5000"), CallOptions{"slow", 50ms}, asio::use_future);
  EXPECT_EQ(get(slow).code, errc::timeout);
  const auto all = client.peer_stats();
  ASSERT_EQ(all.size(), 1u);
  const net::PeerStats& s = all.front();
  EXPECT_EQ(s.peer, peer);
  EXPECT_EQ(s.info.state, net::PeerState::ready);
  EXPECT_EQ(s.calls_sent, 7u);
  EXPECT_EQ(s.calls_ok, 5u);
  EXPECT_EQ(s.calls_failed, 2u);
  EXPECT_EQ(s.timeouts, 1u);
  EXPECT_EQ(s.calls_outstanding, 0u);
  EXPECT_EQ(s.lost_events, 0u);
  EXPECT_EQ(s.round_trip.count, 6u);  // a timeout is not a round trip, whoever decided it
  EXPECT_EQ(s.round_trip.counts.back(), 6u);
  EXPECT_GT(s.round_trip.sum_s, 0.0);
}

TEST_P(NodeOverLink, PeerStatsCountCallsEndedByTheNodesShutdown) {
  ServerAndClient nodes{"node-peer-stats-shutdown", GetParam()};
  Node& client = nodes.client;
  auto running = client.call(nodes.peer, "sleep", bytes("60000"), CallOptions{"long"}, asio::use_future);
  ASSERT_TRUE(eventually([&] { return nodes.server.manager().stats().in_flight == 1; }));
  client.shutdown(0ms);
  EXPECT_EQ(get(running).code, errc::node_shutting_down);
  const auto all = client.peer_stats();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all.front().calls_sent, 1u);
  EXPECT_EQ(all.front().calls_failed, 1u);
  EXPECT_EQ(all.front().calls_outstanding, 0u);
  EXPECT_EQ(all.front().round_trip.count, 0u);  // this node ended it: not a round trip
}

TEST_P(NodeOverLink, AwaitableCallRunsOnTheNodesExecutor) {
  ServerAndClient nodes{"node-await", GetParam()};
  Node& client = nodes.client;
  const PeerId peer = nodes.peer;
  auto fut = asio::co_spawn(
      client.executor(),
      [&]() -> asio::awaitable<std::vector<std::string>> {
        std::vector<std::string> texts;
        for (int i = 0; i < 20; ++i) {
          Notification n = co_await client.call(peer, "echo", bytes(std::to_string(i)), {"e" + std::to_string(i)});
          texts.emplace_back(n.payload.as_string_view());
        }
        Notification bad = co_await client.call(peer, "fail", bytes("no (good)"), {"b", 10s});
        texts.push_back(bad.text());
        co_return texts;
      },
      asio::use_future);
  ASSERT_EQ(fut.wait_for(20s), std::future_status::ready);
  const auto texts = fut.get();
  ASSERT_EQ(texts.size(), 21u);
  EXPECT_EQ(texts[7], "7");
  EXPECT_EQ(texts[20], "b:err(no (good))");
}

// Callers that a reply resumes make their next calls from inside the node's
// reader (the reader flushes them after the reply frame): calls to another peer
// must leave too. On a one-thread pool (the node on the pool's executor) and on
// two threads (a strand).
class ResumedCallers : public ::testing::TestWithParam<std::size_t> {};

TEST_P(ResumedCallers, CallsFromResumedCallersReachEveryPeer) {
  ListenAt path_a{"ipc"};
  ListenAt path_b{"ipc"};
  Node a{server_options(path_a, "node-resumed-a")};
  Node b{server_options(path_b, "node-resumed-b")};
  add_handlers(a.manager());
  add_handlers(b.manager());
  a.start();
  b.start();
  NodeOptions co = client_options("node-resumed-c");
  co.manager.threads = GetParam();
  Node client{co};
  client.start();
  const PeerId pa = client.connect(a.endpoints().front());
  const PeerId pb = client.connect(b.endpoints().front());
  constexpr int kCallers = 8;
  constexpr int kRounds = 50;
  std::vector<std::future<int>> callers;
  callers.reserve(kCallers);
  for (int c = 0; c < kCallers; ++c) {
    callers.push_back(asio::co_spawn(
        client.executor(),
        [&client, pa, pb, c]() -> asio::awaitable<int> {
          int ok = 0;
          // Each caller calls one peer twice, then the other twice, out of step
          // with the others, so one reply frame resumes callers whose next call
          // goes to either peer.
          for (int i = 0; i < kRounds; ++i) {
            const std::string body = std::to_string(c) + "/" + std::to_string(i);
            const PeerId to = (c + i / 2) % 2 == 0 ? pa : pb;
            Notification r = co_await client.call(to, "echo", bytes(body), {"r"});
            if (r.is_success() && r.payload.as_string_view() == body) ++ok;
          }
          co_return ok;
        },
        asio::use_future));
  }
  for (auto& f : callers) {
    ASSERT_EQ(f.wait_for(20s), std::future_status::ready) << "a call never left or never came back";
    EXPECT_EQ(f.get(), kRounds);
  }
  EXPECT_EQ(client.stats().outstanding_calls, 0u);
}

INSTANTIATE_TEST_SUITE_P(PoolThreads, ResumedCallers, ::testing::Values(std::size_t{1}, std::size_t{2}));

// The asynchronous operations take any completion token, and an operation that
// completes at once never runs its handler inside the initiating call: a long
// loop of co_await async_send does not grow the stack.
TEST_P(NodeOverLink, AsyncOperationsTakeAnyCompletionTokenAndNeverCompleteInline) {
  ServerAndClient nodes{"node-tokens", GetParam()};
  Node& client = nodes.client;
  const PeerId peer = nodes.peer;
  auto looped = asio::co_spawn(
      client.executor(),
      [&]() -> asio::awaitable<int> {
        int ok = 0;
        for (int i = 0; i < 20000; ++i) {
          if (co_await client.async_send(peer, "count", bytes("")) == SendStatus::ok) ++ok;
        }
        co_return ok;
      },
      asio::use_future);
  ASSERT_EQ(looped.wait_for(30s), std::future_status::ready);
  EXPECT_EQ(looped.get(), 20000);
  auto queued = client.async_send(peer, "echo", bytes(""), {"by-future"}, asio::use_future);
  ASSERT_EQ(queued.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(queued.get(), SendStatus::ok);
  std::promise<std::string> called_back;
  std::atomic<bool> inline_call{true};
  client.call(peer, "echo", bytes("cb"), {"cb"},
              [&](Notification n) { called_back.set_value(n.text() + (inline_call ? " inline" : "")); });
  inline_call = false;
  auto text = called_back.get_future();
  ASSERT_EQ(text.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(text.get(), "cb:ok");
  auto got = receive_n(client.manager(), 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].text(), "by-future:ok");
}

TEST_P(NodeOverLink, NotifiedSendsArriveOnTheChannelInTheSeedFormat) {
  ServerAndClient nodes{"node-notified", GetParam()};
  Node& client = nodes.client;
  const PeerId peer = nodes.peer;
  ASSERT_EQ(client.send(peer, "echo", bytes("x"), {"request_123"}), SendStatus::ok);
  ASSERT_EQ(client.send(peer, "fail", bytes("Invalid data format"), {"user_request_456"}), SendStatus::ok);
  ASSERT_EQ(client.send(peer, "missing", bytes("x"), {"r3"}), SendStatus::ok);
  auto got = receive_n(client.manager(), 3);
  ASSERT_EQ(got.size(), 3u);
  std::set<std::string> texts;
  for (const auto& n : got) texts.insert(n.text());
  EXPECT_TRUE(texts.contains("request_123:ok"));
  EXPECT_TRUE(texts.contains("user_request_456:err(Invalid data format)"));
  EXPECT_TRUE(texts.contains("r3:err(unknown message type 'missing')"));
  EXPECT_FALSE(client.manager().try_receive());
}

TEST_P(NodeOverLink, FireAndForgetRunsRemotelyAndNotifiesNobody) {
  ListenAt path{GetParam()};
  std::atomic<int> counter{0};
  Node server{server_options(path, "node-ff-s")};
  add_handlers(server.manager(), &counter);
  server.start();
  Node client{client_options("node-ff-c")};
  client.start();
  const PeerId peer = client.connect(server.endpoints().front());
  for (int i = 0; i < 500; ++i) ASSERT_EQ(client.send(peer, "count", bytes("")), SendStatus::ok);
  ASSERT_TRUE(eventually([&] { return counter.load() == 500; }));
  ASSERT_EQ(client.send(peer, "echo", bytes(""), {"last"}), SendStatus::ok);
  auto got = receive_n(client.manager(), 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].text(), "last:ok");
  EXPECT_FALSE(client.manager().try_receive());
  EXPECT_EQ(client.stats().replies_received, 1u);
  EXPECT_EQ(server.stats().replies_sent, 1u);
}

TEST_P(NodeOverLink, HelloExchangesIdentityAndHandlerTypes) {
  ServerAndClient nodes{"node-hello", GetParam()};
  Node& server = nodes.server;
  Node& client = nodes.client;
  const PeerId peer = nodes.peer;
  EXPECT_EQ(client.connect(server.endpoints().front()), peer);  // one connection per address
  ASSERT_TRUE(client.wait_ready(peer, 10s));
  const auto info = client.peer_info(peer);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->identity, server.identity());
  EXPECT_EQ(info->state, PeerState::ready);
  EXPECT_EQ(info->handlers, (std::vector<std::string>{"count", "echo", "fail", "sleep"}));
  server.manager().register_handler("late", make_handler([](Message&) -> asio::awaitable<void> { co_return; }));
  auto handlers = client.query_handlers(peer);
  ASSERT_EQ(handlers.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(handlers.get(), (std::vector<std::string>{"count", "echo", "fail", "late", "sleep"}));
  EXPECT_NE(server.identity(), client.identity());
}

TEST_P(NodeOverLink, SendsToItselfSkipTheSocket) {
  ListenAt path{GetParam()};
  Node node{server_options(path, "node-self")};
  add_handlers(node.manager());
  node.start();
  auto f = node.call(node.self(), "echo", bytes("me"), {}, asio::use_future);
  EXPECT_EQ(get(f).payload.as_string_view(), "me");
  // Connecting to its own address finds out (by identity) that the peer is itself.
  const PeerId own = node.connect(node.endpoints().front());
  ASSERT_TRUE(node.wait_ready(own, 10s));
  EXPECT_EQ(node.peer_info(own)->state, PeerState::local);
  auto g = node.call(own, "fail", bytes("local err"), CallOptions{"L"}, asio::use_future);
  EXPECT_EQ(get(g).text(), "L:err(local err)");
  ASSERT_EQ(node.send(node.self(), "echo", bytes(""), {"via-channel"}), SendStatus::ok);
  auto got = receive_n(node.manager(), 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].text(), "via-channel:ok");
  EXPECT_EQ(node.stats().messages_sent, 0u);  // no MSG frame ever left
}

TEST(Node, TypesAndIdsOverTheWireLimitsAreRefusedAtTheSender) {
  Node node{client_options("node-limits")};
  node.start();
  const std::string long_type(256, 't');
  EXPECT_THROW(node.send(node.self(), long_type, bytes("")), std::invalid_argument);
  EXPECT_THROW(node.send(node.self(), "", bytes("")), std::invalid_argument);
  EXPECT_THROW(node.send(node.self(), "ok", bytes(""), {std::string(1025, 'i')}), std::invalid_argument);
  EXPECT_THROW((void)node.call(node.self(), long_type, bytes(""), {}, asio::use_future), std::invalid_argument);
  auto awaited = asio::co_spawn(
      node.executor(),
      [&]() -> asio::awaitable<Notification> {
        co_return co_await node.call(node.self(), long_type, bytes(""), {"x"});
      },
      asio::use_future);
  ASSERT_EQ(awaited.wait_for(10s), std::future_status::ready);
  EXPECT_THROW(awaited.get(), std::invalid_argument);
}

TEST_P(NodeOverLink, DeadlineEndsTheCallAndTheLateAnswerIsDiscarded) {
  ServerAndClient nodes{"node-deadline", GetParam()};
  Node& client = nodes.client;
  const PeerId peer = nodes.peer;
  const auto t0 = std::chrono::steady_clock::now();
  auto f = client.call(peer, "sleep", bytes("400"), CallOptions{"slow", 50ms}, asio::use_future);
  const Notification n = get(f);
  EXPECT_EQ(n.text(), "slow:err(timeout)");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 400ms);
  EXPECT_EQ(client.stats().timeouts, 1u);
  // The deadline travels in the MSG: the server ends the handler at the same
  // moment and answers `timeout`. That answer is a late reply, discarded, when
  // the client's timer fired first (the usual order); on a loaded machine
  // (ASan in CI) it can arrive first and be the outcome itself. Either way
  // there is one outcome and nothing after it.
  (void)eventually([&] { return client.stats().late_replies == 1; }, 3s);
  EXPECT_LE(client.stats().late_replies, 1u);
  EXPECT_FALSE(client.manager().try_receive());
}

TEST_P(NodeOverLink, APeerThatCannotKeepUpSlowsItsSenderAndNothingIsLost) {
  ListenAt path{GetParam()};
  NodeOptions so = server_options(path, "node-bp-s");
  // Backpressure, not liveness, is tested here: the flood below saturates a
  // core (twice over when ctest runs the ipc and ucx cases side by side under
  // TSan), which can starve heartbeats past the default 1 s.
  so.heartbeat_timeout = 10s;
  so.manager.concurrency = 1;
  so.manager.inbox_capacity = 2;
  so.socket_hwm = 4;
  Node server{so};
  Gate gate{server.manager().executor()};
  server.manager().register_handler("gated",
                                    make_handler([&gate](Message&) -> asio::awaitable<void> { co_await gate.wait(); }));
  server.start();
  NodeOptions co = client_options("node-bp-c");
  co.heartbeat_timeout = 10s;
  co.peer_queue_capacity = 4;
  co.socket_hwm = 4;
  Node client{co};
  client.start();
  const PeerId peer = client.connect(server.endpoints().front());
  ASSERT_TRUE(client.wait_ready(peer, 10s));
  // Offer messages for a while: the pipeline (peer queue, ZeroMQ pipes and kernel
  // buffers, the inbox) absorbs a bounded number, then try_send keeps saying full.
  int accepted = 0;
  int refused = 0;
  const std::string big(std::size_t{16} * 1024, 'x');  // large enough that kernel socket buffers hold few
  const auto until = std::chrono::steady_clock::now() + 2s;
  while (std::chrono::steady_clock::now() < until) {
    const SendStatus s = client.try_send(peer, "gated", bytes(big), {"g" + std::to_string(accepted)});
    if (s == SendStatus::ok) {
      ++accepted;
    } else {
      ASSERT_EQ(s, SendStatus::full);
      ++refused;
      std::this_thread::yield();
    }
  }
  EXPECT_GT(refused, 0) << "the sender never felt the backpressure";
  EXPECT_GT(accepted, 4) << "more than the peer queue: the wire took some";
  // Over UCX the transport's buffers count too: a send completes once tcp's
  // socket buffer (up to 4 MiB here) or the shared-memory queue has taken it,
  // and the paused listener's last turn of progress took what had arrived:
  // 17-81 frames on an idle machine, 426 seen once in CI (6.7 MiB).
  const int bound = GetParam() != "ipc" ? 1024 : 200;
  EXPECT_LT(accepted, bound) << "bounded: inbox 2 + high-water marks 4 + 4 + peer queue 4 + kernel buffers";
  gate.open(static_cast<std::size_t>(accepted));
  auto got = receive_n(client.manager(), static_cast<std::size_t>(accepted));
  ASSERT_EQ(got.size(), static_cast<std::size_t>(accepted))
      << "client sent " << client.stats().messages_sent << ", server received " << server.stats().messages_received
      << ", server replies " << server.stats().replies_sent << " dropped " << server.stats().replies_dropped
      << ", client replies " << client.stats().replies_received << " late " << client.stats().late_replies
      << " outstanding " << client.stats().outstanding_calls;
  std::set<std::string> ids;
  for (const auto& n : got) {
    EXPECT_TRUE(n.is_success()) << n.text();
    ids.insert(n.id);
  }
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(accepted));
  EXPECT_FALSE(client.manager().try_receive());
}

// A peer's queue is bounded in payload bytes as well as in messages: while the
// peer is still connecting (nothing leaves), 1 MiB messages fill a 4 MiB queue
// after four, and then even a small one waits.
TEST(Node, APeersQueueIsBoundedInBytes) {
  IpcPath nobody;  // nothing listens there: the peer stays connecting
  NodeOptions co = client_options("node-qbytes");
  co.peer_queue_bytes = std::size_t{4} << 20;
  Node client{co};
  client.start();
  const PeerId peer = client.connect(nobody.address());
  const std::string mib(std::size_t{1} << 20, 'm');
  int accepted = 0;
  while (accepted < 100 && client.try_send(peer, "echo", bytes(mib), {}) == SendStatus::ok) ++accepted;
  EXPECT_EQ(accepted, 4);
  EXPECT_EQ(client.try_send(peer, "echo", bytes("small"), {}), SendStatus::full);
  for (const auto& ps : client.peer_stats()) {
    if (ps.peer == peer) {
      EXPECT_EQ(ps.queued, 4u);
    }
  }
}

// With 256 KiB messages to a server that runs none of them, what the sender
// accepts is bounded in bytes end to end (its queue, the link both ways, the
// server's per-client budget), not by the 4,096 messages of a peer's queue.
TEST_P(NodeOverLink, WhatASlowPeerMakesItsSenderHoldIsBoundedInBytes) {
  ListenAt path{GetParam()};
  constexpr std::size_t kMiB = std::size_t{1} << 20;
  NodeOptions so = server_options(path, "node-bb-s");
  so.heartbeat_timeout = 10s;  // backpressure, not liveness, is tested here (see above)
  so.manager.concurrency = 1;
  so.manager.inbox_capacity = 2;
  so.manager.max_payload_bytes = kMiB;
  so.socket_buffer_bytes = 8 * kMiB;
  so.max_inflight_bytes_per_client = 4 * kMiB;
  Node server{so};
  Gate gate{server.manager().executor()};
  server.manager().register_handler("gated",
                                    make_handler([&gate](Message&) -> asio::awaitable<void> { co_await gate.wait(); }));
  server.start();
  NodeOptions co = client_options("node-bb-c");
  co.heartbeat_timeout = 10s;
  co.manager.max_payload_bytes = kMiB;
  co.socket_buffer_bytes = 8 * kMiB;
  co.peer_queue_bytes = 4 * kMiB;
  Node client{co};
  client.start();
  const PeerId peer = client.connect(server.endpoints().front());
  ASSERT_TRUE(client.wait_ready(peer, 10s));
  const std::string body(256 * std::size_t{1024}, 'b');
  int accepted = 0;
  const auto until = std::chrono::steady_clock::now() + 2s;
  while (std::chrono::steady_clock::now() < until && accepted < 4096) {
    if (client.try_send(peer, "gated", bytes(body), {"b" + std::to_string(accepted)}) == SendStatus::ok) {
      ++accepted;
    } else {
      std::this_thread::yield();
    }
  }
  // 4 MiB queued and 8 MiB in the client's link; in the server, 4 MiB read,
  // 8 frames of at most ~2 MiB in ZeroMQ's pipe, or over UCX what one turn of
  // progress brought before the listening worker paused (up to 64 frames,
  // 16 MiB here); kernel and shared-memory buffers. Measured: 21 MiB over ipc,
  // 45-47 MiB over ucx (70 MiB once on a loaded machine); 128 MiB is the bound
  // checked, against 0.8-0.9 GiB (3,240-3,562 messages) before the byte bounds.
  EXPECT_LT(static_cast<std::size_t>(accepted) * body.size(), 128 * kMiB) << accepted << " accepted";
  gate.open(static_cast<std::size_t>(accepted));
  auto got = receive_n(client.manager(), static_cast<std::size_t>(accepted), 60s);
  ASSERT_EQ(got.size(), static_cast<std::size_t>(accepted));
  for (const auto& n : got) EXPECT_TRUE(n.is_success()) << n.text();
}

TEST_P(NodeOverLink, ShutdownGivesEveryOutstandingCallExactlyOneOutcome) {
  ServerAndClient nodes{"node-shut", GetParam()};
  Node& server = nodes.server;
  Node& client = nodes.client;
  const PeerId peer = nodes.peer;
  std::vector<std::future<Notification>> futures;
  futures.reserve(10);
  for (int i = 0; i < 10; ++i) futures.push_back(client.call(peer, "sleep", bytes("60000"), {}, asio::use_future));
  for (int i = 0; i < 5; ++i)
    ASSERT_EQ(client.send(peer, "sleep", bytes("60000"), {"n" + std::to_string(i)}), SendStatus::ok);
  ASSERT_TRUE(eventually([&] { return server.stats().messages_received == 15; }));
  client.shutdown(0ms);
  for (auto& f : futures) EXPECT_EQ(get(f).error, "node shutting down");
  auto got = receive_n(client.manager(), 5, 5s);
  EXPECT_EQ(got.size(), 5u);
  EXPECT_EQ(client.stats().outstanding_calls, 0u);
  EXPECT_EQ(client.send(peer, "echo", bytes("")), SendStatus::closed);
  server.shutdown(0ms);
  expect_accounting(server.stats().manager);
}

// Once the manager has drained, the node stops its socket waits and timers, so
// the pool stops at once instead of running out its grace period (every
// `amsg send` and `amsg serve` shutdown used to spend it).
TEST_P(NodeOverLink, ShutdownDoesNotLeaveWorkOnThePoolForTheGracePeriod) {
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(4096);
  for (const char* name : {"node-stop-s", "node-stop-c"}) {
    auto log = std::make_shared<spdlog::logger>(name, sink);
    log->set_level(spdlog::level::debug);
    spdlog::register_logger(log);
  }
  ListenAt path{GetParam()};
  NodeOptions so = server_options(path, "node-stop-s");
  so.manager.logger_name = "node-stop-s";
  NodeOptions co = client_options("node-stop-c");
  co.manager.logger_name = "node-stop-c";
  {
    Node server{so};
    add_handlers(server.manager());
    server.start();
    Node client{co};
    client.start();
    const PeerId peer = client.connect(server.endpoints().front());
    auto f = client.call(peer, "echo", bytes("x"), CallOptions{"x"}, asio::use_future);
    EXPECT_TRUE(get(f).is_success());
    (void)client.shutdown();
    (void)server.shutdown();
  }
  spdlog::drop("node-stop-s");
  spdlog::drop("node-stop-c");
  int completed = 0;
  for (const auto& line : sink->last_formatted()) {
    EXPECT_EQ(line.find("stopping the pool with work still queued"), std::string::npos) << line;
    if (line.find("shutdown complete") != std::string::npos) ++completed;
  }
  EXPECT_EQ(completed, 2);  // both managers logged here: the check above saw their shutdowns
}

TEST_P(NodeOverLink, ARemoteThatIsShuttingDownRefusesNewMessages) {
  // Both nodes' logs go with a failure (it failed once over ucx under TSan in CI, not since).
  const LogCapture server_log{"node-remote-shut-s"};
  const LogCapture client_log{"node-remote-shut-c"};
  ListenAt path{GetParam()};
  Node server{server_options(path, "node-remote-shut-s")};
  Gate gate{server.manager().executor()};
  server.manager().register_handler("gated",
                                    make_handler([&gate](Message&) -> asio::awaitable<void> { co_await gate.wait(); }));
  add_handlers(server.manager());
  server.start();
  Node client{client_options("node-remote-shut-c")};
  client.start();
  const PeerId peer = client.connect(server.endpoints().front());
  auto running = client.call(peer, "gated", bytes(""), CallOptions{"running"}, asio::use_future);
  ASSERT_TRUE(eventually([&] { return server.stats().manager.in_flight == 1; }));
  auto stopper = std::async(std::launch::async, [&] { return server.shutdown(20s); });
  ASSERT_TRUE(eventually([&] { return client.peer_info(peer)->state == PeerState::closing; }));
  auto refused = client.call(peer, "echo", bytes(""), CallOptions{"late"}, asio::use_future);
  EXPECT_EQ(get(refused).text(), "late:err(remote shutting down)");
  gate.open();
  EXPECT_EQ(get(running).text(), "running:ok")  // what was running finishes and is answered
      << "\nserver:\n"
      << server_log.text() << "client:\n"
      << client_log.text();
  EXPECT_TRUE(stopper.get().drained);
}

INSTANTIATE_TEST_SUITE_P(Links, NodeOverLink, ::testing::Values("ipc", "ucx", "ucx_busy"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace amsg::test

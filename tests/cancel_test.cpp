// Cancelling a call, the Asio way (a cancellation slot on its handler), over
// the in-memory link: the call ends `cancelled` at the caller, and its CANCEL
// stops the message at the receiver (never run if it had not started, its
// handler cancelled if it had). One process, no sockets, no sleeps.

#include <gtest/gtest.h>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/use_future.hpp>
#include <atomic>
#include <future>
#include <memory>

#include "amsg/net/node.hpp"
#include "link/memory_link.hpp"
#include "memory_node_support.hpp"
#include "net_test_support.hpp"
#include "test_support.hpp"

namespace amsg::test {
namespace {

using net::CallOptions;
using net::MemoryNetwork;
using net::Node;
using net::NodeOptions;
using net::PeerId;

// A server running one handler at a time, and a client connected to it.
struct Pair {
  // `listening`: the server starts now (else start_server() starts it later).
  explicit Pair(const std::string& name, bool listening = true)
      : net{std::make_shared<MemoryNetwork>()}, client{mem_node(net, name + "-c", "")} {
    NodeOptions o = mem_node(net, name + "-s", "mem://server");
    o.manager.concurrency = 1;
    server = std::make_unique<Node>(o);
    add_handlers(server->manager(), nullptr, &runs);
    client.start();
    if (listening) server->start();
    peer = client.connect("mem://server");
    if (listening) {
      EXPECT_TRUE(client.wait_ready(peer, 10s));
    }
  }
  void start_server() { server->start(); }
  std::future<Notification> call(const std::string& type, const std::string& body, const std::string& id,
                                 asio::cancellation_signal& signal) {
    return client.call(peer, type, bytes(body), CallOptions{id},
                       asio::bind_cancellation_slot(signal.slot(), asio::use_future));
  }
  std::atomic<int> runs{0};  // declared before the nodes: their handlers count here until they are gone
  std::shared_ptr<MemoryNetwork> net;
  Node client;
  std::unique_ptr<Node> server;
  PeerId peer{};
};

TEST(Cancel, ACallWhoseHandlerRunsEndsCancelledAtOnceAndTheHandlerIsCancelled) {
  Pair pair{"cancel-running"};
  asio::cancellation_signal signal;
  auto f = pair.call("sleep", "60000", "long", signal);
  ASSERT_TRUE(eventually([&] { return pair.runs.load() == 1; }));
  signal.emit(asio::cancellation_type::terminal);
  const Notification n = get(f, 5s);
  EXPECT_EQ(n.code, errc::cancelled);
  EXPECT_EQ(n.outcome, Outcome::cancelled);
  EXPECT_EQ(n.text(), "long:err(cancelled)");
  // The CANCEL reached the server: its handler (a 60 s timer) was cancelled,
  // and its REPLY (cancelled) came back late to a call that had ended.
  EXPECT_TRUE(eventually([&] { return pair.server->stats().manager.cancelled == 1; }, 10s));
  EXPECT_TRUE(eventually([&] { return pair.client.stats().late_replies == 1; }, 10s));
  EXPECT_EQ(pair.client.stats().outstanding_calls, 0u);
  EXPECT_EQ(pair.client.stats().cancels_sent, 1u);
  EXPECT_EQ(pair.server->stats().cancels_received, 1u);
  EXPECT_EQ(pair.server->stats().cancelled_waiting, 0u) << "it was running, not waiting for a turn";
  // The lane is free again: the next call runs.
  auto next = pair.client.call(pair.peer, "echo", bytes("after"), CallOptions{"after"}, asio::use_future);
  EXPECT_EQ(get(next).payload.as_string_view(), "after");
}

TEST(Cancel, AMessageStillQueuedAtTheReceiverNeverRuns) {
  Pair pair{"cancel-queued"};
  asio::cancellation_signal first;
  asio::cancellation_signal second;
  auto running = pair.call("sleep", "60000", "first", first);
  ASSERT_TRUE(eventually([&] { return pair.runs.load() == 1; }));
  auto queued = pair.call("echo", "never", "second", second);  // behind it (concurrency 1)
  ASSERT_TRUE(eventually([&] { return pair.server->stats().messages_received == 2; }));
  second.emit(asio::cancellation_type::terminal);
  EXPECT_EQ(get(queued, 5s).code, errc::cancelled);
  first.emit(asio::cancellation_type::terminal);
  EXPECT_EQ(get(running, 5s).code, errc::cancelled);
  // Both REPLYs (cancelled) come back late; the queued message never ran.
  ASSERT_TRUE(eventually([&] { return pair.client.stats().late_replies == 2; }, 10s));
  EXPECT_EQ(pair.runs.load(), 1);
  EXPECT_EQ(pair.server->stats().manager.cancelled, 2u);
  EXPECT_EQ(pair.server->stats().manager.dispatched, 1u);
  EXPECT_EQ(pair.client.stats().cancels_sent, 2u);
  EXPECT_EQ(pair.server->stats().cancels_received, 2u);
}

TEST(Cancel, ACallCancelledBeforeItWasSentIsNeverSent) {
  Pair pair{"cancel-unsent", /*listening=*/false};  // nobody listens yet: the call waits at the client
  asio::cancellation_signal signal;
  auto f = pair.call("echo", "never", "early", signal);
  signal.emit(asio::cancellation_type::terminal);
  EXPECT_EQ(get(f, 5s).text(), "early:err(cancelled)");  // at once, not when the peer appears
  pair.start_server();
  ASSERT_TRUE(pair.client.wait_ready(pair.peer, 10s));
  // A call made after it goes through, and the cancelled one never reached the server.
  auto later = pair.client.call(pair.peer, "echo", bytes("later"), CallOptions{"later"}, asio::use_future);
  EXPECT_EQ(get(later).payload.as_string_view(), "later");
  EXPECT_EQ(pair.runs.load(), 1);
  EXPECT_EQ(pair.server->stats().messages_received, 1u);
  EXPECT_EQ(pair.client.stats().cancels_sent, 0u);
}

// asio's total cancellation promises no side effects: a call already sent goes on.
TEST(Cancel, TotalCancellationLeavesACallThatWasSentAlone) {
  Pair pair{"cancel-total"};
  asio::cancellation_signal signal;
  auto f = pair.call("sleep", "200", "sent", signal);
  ASSERT_TRUE(eventually([&] { return pair.runs.load() == 1; }));
  signal.emit(asio::cancellation_type::total);
  EXPECT_EQ(get(f).text(), "sent:ok");
  EXPECT_EQ(pair.server->stats().manager.cancelled, 0u);
  EXPECT_EQ(pair.client.stats().cancels_sent, 0u);
}

TEST(Cancel, ACancelAfterTheOutcomeChangesNothing) {
  Pair pair{"cancel-late"};
  asio::cancellation_signal signal;
  auto f = pair.call("echo", "done", "done", signal);
  EXPECT_EQ(get(f).text(), "done:ok");
  signal.emit(asio::cancellation_type::terminal);  // the call has ended: nothing is sent
  auto next = pair.client.call(pair.peer, "echo", bytes("next"), CallOptions{"next"}, asio::use_future);
  EXPECT_EQ(get(next).payload.as_string_view(), "next");
  EXPECT_EQ(pair.server->stats().manager.cancelled, 0u);
  EXPECT_EQ(pair.client.stats().late_replies, 0u);
  EXPECT_EQ(pair.client.stats().cancels_sent, 0u);
}

// A message waiting at the listener for its client's turn (two clients share a
// server running one handler at a time, a share of one each) is taken out by
// its CANCEL: answered cancelled, never run, and counted as such.
TEST(Cancel, AMessageWaitingForItsClientsTurnIsTakenOutAndNeverRuns) {
  auto net = std::make_shared<MemoryNetwork>();
  std::atomic<int> runs{0};  // declared before the nodes: their handlers count here until they are gone
  NodeOptions so = mem_node(net, "cancel-turn-s", "mem://server");
  so.manager.concurrency = 1;
  so.fair_share = 1;
  Node server{so};
  add_handlers(server.manager(), nullptr, &runs);
  server.start();
  Node a{mem_node(net, "cancel-turn-a", "")};
  Node b{mem_node(net, "cancel-turn-b", "")};
  a.start();
  b.start();
  const PeerId to_a = a.connect("mem://server");
  const PeerId to_b = b.connect("mem://server");
  ASSERT_TRUE(a.wait_ready(to_a, 10s) && b.wait_ready(to_b, 10s));
  const auto cancellable = [](Node& n, PeerId p, const std::string& type, const std::string& body,
                              const std::string& id, asio::cancellation_signal& s) {
    return n.call(p, type, bytes(body), CallOptions{id}, asio::bind_cancellation_slot(s.slot(), asio::use_future));
  };
  asio::cancellation_signal a0, b0, a1;
  auto first = cancellable(a, to_a, "sleep", "60000", "a0", a0);  // runs
  ASSERT_TRUE(eventually([&] { return runs.load() == 1; }));
  auto second = cancellable(b, to_b, "sleep", "60000", "b0", b0);  // b's share: into the manager, behind a0
  ASSERT_TRUE(eventually([&] { return server.stats().messages_received == 2; }));
  auto waiting = cancellable(a, to_a, "echo", "never", "a1", a1);  // a has its share in: waits for a turn
  ASSERT_TRUE(eventually([&] { return server.stats().messages_received == 3; }));
  a1.emit(asio::cancellation_type::terminal);
  EXPECT_EQ(get(waiting, 5s).text(), "a1:err(cancelled)");
  EXPECT_TRUE(eventually([&] { return server.stats().cancelled_waiting == 1; }, 10s));
  EXPECT_TRUE(eventually([&] { return a.stats().late_replies == 1; }, 10s)) << "the listener answered it";
  EXPECT_EQ(server.stats().manager.cancelled, 0u) << "it never reached the manager";
  a0.emit(asio::cancellation_type::terminal);
  EXPECT_EQ(get(first, 5s).code, errc::cancelled);
  ASSERT_TRUE(eventually([&] { return runs.load() == 2; }));  // b0 starts once a0 has ended
  b0.emit(asio::cancellation_type::terminal);
  EXPECT_EQ(get(second, 5s).code, errc::cancelled);
  EXPECT_TRUE(eventually([&] { return server.stats().manager.cancelled == 2; }, 10s));
  EXPECT_EQ(server.stats().manager.dispatched, 2u) << "a1 never ran";
  EXPECT_EQ(runs.load(), 2);
  EXPECT_EQ(server.stats().cancels_received, 3u);
}

// An idempotent call's CANCEL is ignored at the receiver: the handler runs to
// the end there (its outcome is kept for retries), while the caller's call
// ended cancelled at once.
TEST(Cancel, AnIdempotentCallsCancelIsIgnoredAndItsHandlerRunsToTheEnd) {
  Pair pair{"cancel-idem"};
  asio::cancellation_signal signal;
  CallOptions options{"idem-key-1"};
  options.idempotent = true;
  auto f = pair.client.call(pair.peer, "sleep", bytes("300"), options,
                            asio::bind_cancellation_slot(signal.slot(), asio::use_future));
  ASSERT_TRUE(eventually([&] { return pair.runs.load() == 1; }));
  signal.emit(asio::cancellation_type::terminal);
  EXPECT_EQ(get(f, 5s).code, errc::cancelled);
  EXPECT_TRUE(eventually([&] { return pair.server->stats().cancels_received == 1; }, 10s));
  // The handler finished its 300 ms: its REPLY (ok) comes back late.
  EXPECT_TRUE(eventually([&] { return pair.client.stats().late_replies == 1; }, 10s));
  EXPECT_EQ(pair.server->stats().manager.cancelled, 0u);
  EXPECT_EQ(pair.server->stats().manager.dispatched, 1u);
}

TEST(Cancel, ACallToTheNodeItselfIsCancelledInItsOwnManager) {
  auto net = std::make_shared<MemoryNetwork>();
  std::atomic<int> runs{0};
  NodeOptions o = mem_node(net, "cancel-self", "");
  o.manager.concurrency = 1;
  Node node{o};
  add_handlers(node.manager(), nullptr, &runs);
  node.start();
  asio::cancellation_signal signal;
  auto f = node.call(node.self(), "sleep", bytes("60000"), CallOptions{"self"},
                     asio::bind_cancellation_slot(signal.slot(), asio::use_future));
  ASSERT_TRUE(eventually([&] { return runs.load() == 1; }));
  signal.emit(asio::cancellation_type::terminal);
  EXPECT_EQ(get(f, 5s).code, errc::cancelled);
  EXPECT_TRUE(eventually([&] { return node.stats().manager.cancelled == 1; }, 10s));
}

}  // namespace
}  // namespace amsg::test

// Idempotent calls (SendOptions/CallOptions::idempotent): a retry with the same
// key gets the first call's outcome instead of running again, over the
// in-memory link.

#include <gtest/gtest.h>

#include <asio/use_future.hpp>
#include <atomic>
#include <future>
#include <stdexcept>
#include <string>

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

Notification done(std::future<Notification> f) { return get(f); }

struct Pair {
  explicit Pair(const std::string& name, std::chrono::milliseconds window = std::chrono::minutes{5})
      : net{std::make_shared<MemoryNetwork>()},
        server{options(name + "-s", window, true)},
        gate{server.manager().executor()},
        client{options(name + "-c", window, false)} {
    add_handlers(server.manager(), nullptr, &runs);
    server.manager().register_handler("gate", make_handler([this](Message& m) -> asio::awaitable<void> {
                                        runs.fetch_add(1);
                                        co_await gate.wait();
                                        m.response = std::move(m.payload);
                                      }));
    server.start();
    client.start();
    peer = client.connect("mem://server");
    EXPECT_TRUE(client.wait_ready(peer, 10s));
  }
  NodeOptions options(const std::string& log, std::chrono::milliseconds window, bool listen) {
    NodeOptions o;
    o.links = {std::make_shared<MemoryLink>(net)};
    o.manager.logger_name = quiet_logger(log);
    o.idempotency_window = window;
    if (listen) o.listen = {"mem://server"};
    return o;
  }
  std::future<Notification> call(const std::string& type, const std::string& key, const std::string& body,
                                 bool idempotent = true) {
    CallOptions o{key, 20s};
    o.idempotent = idempotent;
    return client.call(peer, type, bytes(body), o, asio::use_future);
  }
  std::shared_ptr<MemoryNetwork> net;
  std::atomic<int> runs{0};
  Node server;
  Gate gate;
  Node client;
  PeerId peer{};
};

TEST(Idempotency, ARetryWithTheSameKeyGetsTheFirstOutcomeAndDoesNotRunAgain) {
  Pair p{"idem-retry"};
  auto first = p.call("echo", "k1", "first");
  const Notification a = get(first);
  ASSERT_TRUE(a.is_success()) << a.text();
  auto retry = p.call("echo", "k1", "second");
  const Notification b = get(retry);
  ASSERT_TRUE(b.is_success()) << b.text();
  EXPECT_EQ(b.payload.as_string_view(), "first");
  EXPECT_EQ(p.runs.load(), 1);
  EXPECT_EQ(p.server.stats().replies_replayed, 1u);
}

TEST(Idempotency, ARetryWhileTheFirstRunsWaitsForItsOutcome) {
  Pair p{"idem-wait"};
  auto first = p.call("gate", "k2", "one");
  ASSERT_TRUE(eventually([&] { return p.runs.load() == 1; }));
  auto retry = p.call("gate", "k2", "two");
  ASSERT_TRUE(eventually([&] { return p.server.stats().messages_received == 2; }));
  p.gate.open(2);
  const Notification a = get(first);
  const Notification b = get(retry);
  EXPECT_TRUE(a.is_success() && b.is_success()) << a.text() << " " << b.text();
  EXPECT_EQ(b.payload.as_string_view(), "one");
  EXPECT_EQ(p.runs.load(), 1);
}

TEST(Idempotency, AnErrorIsRememberedLikeASuccess) {
  Pair p{"idem-err"};
  auto first = p.call("fail", "k3", "broken");
  EXPECT_EQ(get(first).text(), "k3:err(broken)");
  auto retry = p.call("fail", "k3", "other");
  const Notification b = get(retry);
  EXPECT_EQ(b.text(), "k3:err(broken)");
  EXPECT_EQ(b.code, errc::handler_error);
  EXPECT_EQ(p.runs.load(), 1);
}

TEST(Idempotency, KeysAreTypeAndIdAndOnlyIdempotentCallsAreRemembered) {
  Pair p{"idem-keys"};
  EXPECT_TRUE(done(p.call("echo", "k4", "a")).is_success());
  EXPECT_TRUE(done(p.call("count", "k4", "b")).is_success());                // another type: another key
  EXPECT_TRUE(done(p.call("echo", "k4", "c", false)).is_success());          // not idempotent: runs
  EXPECT_EQ(done(p.call("echo", "k4", "d")).payload.as_string_view(), "a");  // remembered
  EXPECT_EQ(p.runs.load(), 3);
  EXPECT_THROW(p.client.call(
                   p.peer, "echo", bytes("x"),
                   [] {
                     CallOptions o{std::chrono::milliseconds{100}};
                     o.idempotent = true;  // no id: no key
                     return o;
                   }(),
                   asio::use_future),
               std::invalid_argument);
}

TEST(Idempotency, AfterTheWindowAKeyRunsAgain) {
  Pair p{"idem-window", 20ms};
  EXPECT_TRUE(done(p.call("echo", "k5", "a")).is_success());
  // A retry within the window is answered from memory; once it has passed, one runs.
  ASSERT_TRUE(eventually([&] {
    (void)done(p.call("echo", "k5", "again"));
    return p.runs.load() == 2;
  }));
}

}  // namespace
}  // namespace amsg::test

// The seed's own tests, by name, in C++.

#include <gtest/gtest.h>

#include <algorithm>
#include <asio/steady_timer.hpp>
#include <map>
#include <mutex>

#include <fmt/format.h>

#include "test_support.hpp"

namespace amsg {
namespace {

using namespace amsg::test;

TEST(Seed, test_active_message_flow) {
  Manager m{ManagerOptions{.concurrency = 4}};
  m.register_handler("my_message_type", make_handler([](Message& msg) -> asio::awaitable<void> {
                       if (msg.payload.as_string_view() == "bad") throw std::runtime_error("Invalid data format");
                       co_return;
                     }));
  m.start();
  ASSERT_EQ(m.send(msg("my_message_type", "Hello, World!", "request_123")), SendStatus::ok);
  ASSERT_EQ(m.send(msg("my_message_type", "bad", "user_request_456")), SendStatus::ok);
  ASSERT_EQ(m.send(msg("my_message_type", "no notification wanted")), SendStatus::ok);
  auto got = receive_n(m, 2);
  ASSERT_EQ(got.size(), 2u);
  std::map<std::string, Notification> by_id;
  for (auto& n : got) by_id[n.id] = std::move(n);
  EXPECT_EQ(by_id["request_123"].text(), "request_123:ok");
  EXPECT_TRUE(by_id["request_123"].is_success());
  EXPECT_EQ(by_id["request_123"].message_type, "my_message_type");
  EXPECT_EQ(by_id["user_request_456"].text(), "user_request_456:err(Invalid data format)");
  EXPECT_FALSE(by_id["user_request_456"].is_success());
  m.shutdown();
  EXPECT_FALSE(m.try_receive());  // exactly two notifications, nothing more
  const Stats s = m.stats();
  EXPECT_EQ(s.received, 3u);
  EXPECT_EQ(s.ok, 2u);
  EXPECT_EQ(s.failed, 1u);
  expect_accounting(s);
}

// A handler that captures shared resources and uses them from every message.
struct Resource {
  std::mutex mutex;
  std::vector<std::string> seen;
};

class RecordingHandler final : public Handler {
 public:
  RecordingHandler(std::string name, std::shared_ptr<Resource> resource)
      : name_{std::move(name)}, resource_{std::move(resource)} {}
  asio::awaitable<void> handle(Message& msg) override {
    asio::steady_timer timer{co_await asio::this_coro::executor, std::chrono::microseconds{50}};
    co_await timer.async_wait(asio::use_awaitable);  // really asynchronous
    std::lock_guard lock{resource_->mutex};
    resource_->seen.push_back(name_ + ":" + std::string{msg.payload.as_string_view()});
  }

 private:
  std::string name_;
  std::shared_ptr<Resource> resource_;
};

TEST(Seed, test_resource_capturing_handler) {
  auto resource = std::make_shared<Resource>();
  Manager m{ManagerOptions{.concurrency = 4}};
  m.register_handlers(HandlerMap{{"record", std::make_shared<RecordingHandler>("h", resource)}});
  // A capturing coroutine lambda: its captures live in the handler object.
  auto counter = std::make_shared<std::atomic<int>>(0);
  m.register_handler("count", make_handler([counter](Message&) -> asio::awaitable<void> {
                       counter->fetch_add(1);
                       co_return;
                     }));
  m.start();
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(m.send(msg("record", std::to_string(i), fmt::format("r{}", i))), SendStatus::ok);
    ASSERT_EQ(m.send(msg("count", "", fmt::format("c{}", i))), SendStatus::ok);
  }
  auto got = receive_n(m, 200);
  ASSERT_EQ(got.size(), 200u);
  for (const auto& n : got) EXPECT_TRUE(n.is_success()) << n.text();
  EXPECT_EQ(counter->load(), 100);
  std::lock_guard lock{resource->mutex};
  ASSERT_EQ(resource->seen.size(), 100u);
  std::sort(resource->seen.begin(), resource->seen.end());
  EXPECT_EQ(resource->seen.front(), "h:0");
}

// An in-process communication layer: "peers" are numbered mailboxes; bytes and an
// optional notification prefix come in, notifications go back to the sending peer.
class LoopbackLayer final : public CommunicationLayer {
 public:
  void on_attach(Ingress ingress) override { ingress_ = std::move(ingress); }
  void deliver(std::uint64_t peer, Notification&& n) override {
    std::lock_guard lock{mutex_};
    mailboxes_[peer].push_back(n.text());
  }
  SendStatus receive_bytes(std::uint64_t peer, std::string type, std::string_view bytes,
                           std::optional<std::string> prefix) {
    return ingress_.submit(Message{std::move(type), Payload::copy_of(bytes), std::move(prefix)}, peer);
  }
  std::vector<std::string> mailbox(std::uint64_t peer) {
    std::lock_guard lock{mutex_};
    return mailboxes_[peer];
  }
  std::size_t total() {
    std::lock_guard lock{mutex_};
    std::size_t n = 0;
    for (auto& [peer, box] : mailboxes_) n += box.size();
    return n;
  }

 private:
  Ingress ingress_;
  std::mutex mutex_;
  std::map<std::uint64_t, std::vector<std::string>> mailboxes_;
};

TEST(Seed, test_communication_integration) {
  Manager m{ManagerOptions{.concurrency = 2, .logger_name = quiet_logger("amsg.test.comm")}};
  m.register_handler("echo", make_handler([](Message& msg) -> asio::awaitable<void> {
                       if (msg.payload.empty()) throw std::runtime_error("empty payload");
                       co_return;
                     }));
  auto layer = std::make_shared<LoopbackLayer>();
  m.attach(layer);
  m.start();
  ASSERT_EQ(layer->receive_bytes(1, "echo", "a", "p1-a"), SendStatus::ok);
  ASSERT_EQ(layer->receive_bytes(2, "echo", "b", "p2-b"), SendStatus::ok);
  ASSERT_EQ(layer->receive_bytes(2, "echo", "", "p2-empty"), SendStatus::ok);
  ASSERT_EQ(layer->receive_bytes(1, "nope", "x", "p1-unknown"), SendStatus::ok);
  ASSERT_EQ(layer->receive_bytes(1, "echo", "quiet", std::nullopt), SendStatus::ok);
  ASSERT_TRUE(eventually([&] { return layer->total() == 4; }));
  m.shutdown();
  auto box1 = layer->mailbox(1);
  auto box2 = layer->mailbox(2);
  std::sort(box1.begin(), box1.end());
  std::sort(box2.begin(), box2.end());
  EXPECT_EQ(box1, (std::vector<std::string>{"p1-a:ok", "p1-unknown:err(unknown message type 'nope')"}));
  EXPECT_EQ(box2, (std::vector<std::string>{"p2-b:ok", "p2-empty:err(empty payload)"}));
  EXPECT_FALSE(m.try_receive());  // routed notifications do not go to the local channel
  EXPECT_EQ(layer->receive_bytes(1, "echo", "late", "p1-late"), SendStatus::closed);
  expect_accounting(m.stats());
}

TEST(Seed, test_concurrency_performance) {
  constexpr int kMessages = 10;
  Manager m{ManagerOptions{.concurrency = 4, .threads = 2}};
  std::mutex mutex;
  int running = 0;
  int max_running = 0;
  // Per message: which messages had finished when it started (for the waves).
  std::vector<int> finish_order;
  std::vector<std::vector<int>> finished_before(kMessages);
  m.register_handler("sleep", make_handler([&](Message& msg) -> asio::awaitable<void> {
                       const int i = std::stoi(std::string{msg.payload.as_string_view()});
                       {
                         std::lock_guard lock{mutex};
                         max_running = std::max(max_running, ++running);
                         finished_before[static_cast<std::size_t>(i)] = finish_order;
                       }
                       asio::steady_timer timer{co_await asio::this_coro::executor, std::chrono::milliseconds{100}};
                       co_await timer.async_wait(asio::use_awaitable);
                       std::lock_guard lock{mutex};
                       --running;
                       finish_order.push_back(i);
                     }));
  m.start();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kMessages; ++i) {
    ASSERT_EQ(m.send(msg("sleep", std::to_string(i), std::to_string(i))), SendStatus::ok);
  }
  auto got = receive_n(m, kMessages);
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  ASSERT_EQ(got.size(), static_cast<std::size_t>(kMessages));
  EXPECT_EQ(max_running, 4);
  EXPECT_EQ(m.stats().max_in_flight, 4u);
  // Three waves: a message's wave is one more than the latest wave among the
  // messages that had finished before it started.
  std::vector<int> wave(kMessages, 0);
  std::vector<int> order(kMessages);
  for (int i = 0; i < kMessages; ++i) order[static_cast<std::size_t>(i)] = i;
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    return finished_before[static_cast<std::size_t>(a)].size() < finished_before[static_cast<std::size_t>(b)].size();
  });
  for (int i : order) {
    int w = 1;
    for (int j : finished_before[static_cast<std::size_t>(i)]) w = std::max(w, wave[static_cast<std::size_t>(j)] + 1);
    wave[static_cast<std::size_t>(i)] = w;
  }
  EXPECT_EQ(*std::max_element(wave.begin(), wave.end()), 3);
  EXPECT_EQ(std::count(wave.begin(), wave.end(), 1), 4);
  EXPECT_GE(elapsed, std::chrono::milliseconds{300});  // three 100 ms waves cannot take less
}

}  // namespace
}  // namespace amsg

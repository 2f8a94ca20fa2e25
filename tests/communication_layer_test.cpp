#include "amsg/communication_layer.hpp"

#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <fmt/format.h>

#include "test_support.hpp"

namespace amsg {
namespace {

using namespace amsg::test;

class RecordingLayer final : public CommunicationLayer {
 public:
  void on_attach(Ingress ingress) override { ingress_ = std::move(ingress); }
  void deliver(std::uint64_t peer, Notification&& n) override {
    std::lock_guard lock{mutex};
    delivered.emplace_back(peer, std::move(n));
  }
  void on_detach() override { detached = true; }

  Ingress ingress_;
  std::mutex mutex;
  std::vector<std::pair<std::uint64_t, Notification>> delivered;
  std::atomic<bool> detached{false};
};

TEST(CommunicationLayer, NotificationsAreRoutedToThePeerThatSentTheMessage) {
  asio::io_context client;  // outlives the manager, whose threads post into it
  Manager m{ManagerOptions{.concurrency = 4}};
  m.register_handler("t", make_handler([](Message&) -> asio::awaitable<void> { co_return; }));
  auto layer = std::make_shared<RecordingLayer>();
  m.attach(layer);
  ASSERT_TRUE(layer->ingress_.valid());
  m.start();
  for (std::uint64_t peer = 1; peer <= 3; ++peer) {
    for (int i = 0; i < 100; ++i) {
      ASSERT_EQ(layer->ingress_.submit(msg("t", "", fmt::format("{}/{}", peer, i)), peer), SendStatus::ok);
    }
  }
  // try_submit and async_submit take the same route.
  ASSERT_EQ(layer->ingress_.try_submit(msg("t", "", "9/try"), 9), SendStatus::ok);
  asio::co_spawn(
      client,
      [&]() -> asio::awaitable<void> {
        EXPECT_EQ(co_await layer->ingress_.async_submit(msg("t", "", "9/async"), 9), SendStatus::ok);
      },
      asio::detached);
  client.run();
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock{layer->mutex};
    return layer->delivered.size() == 302;
  }));
  m.shutdown();
  EXPECT_TRUE(layer->detached.load());
  for (auto& [peer, n] : layer->delivered) {
    EXPECT_EQ(std::to_string(peer), n.id.substr(0, n.id.find('/')));
    EXPECT_TRUE(n.is_success());
  }
  EXPECT_FALSE(m.try_receive());
  EXPECT_EQ(layer->ingress_.submit(msg("t", "", "x"), 1), SendStatus::closed);
}

TEST(CommunicationLayer, TheManagerKeepsItsLayerAliveUntilTheLastDelivery) {
  Manager m{ManagerOptions{.concurrency = 1}};
  Gate gate{m.executor()};
  m.register_handler("wait", make_handler([&](Message&) -> asio::awaitable<void> { co_await gate.wait(); }));
  auto layer = std::make_shared<RecordingLayer>();
  m.attach(layer);
  m.start();
  Ingress ingress = layer->ingress_;
  ASSERT_EQ(ingress.submit(msg("wait", "", "held"), 5), SendStatus::ok);
  std::weak_ptr<RecordingLayer> watch = layer;
  layer.reset();  // the transport lets go; the manager and the message still hold it
  EXPECT_FALSE(watch.expired());
  gate.open();
  ASSERT_TRUE(eventually([&] {
    auto l = watch.lock();
    std::lock_guard lock{l->mutex};
    return l->delivered.size() == 1;
  }));
  {
    auto locked = watch.lock();
    ASSERT_TRUE(locked);
    EXPECT_EQ(locked->delivered[0].first, 5u);
    EXPECT_EQ(locked->delivered[0].second.text(), "held:ok");
  }
  m.shutdown();
  EXPECT_TRUE(watch.expired());  // released after on_detach: no cycle through the Ingress
  ingress = Ingress{};
}

// on_drained(): after the last delivery, before on_detach(), while the pool still
// runs, so a layer can stop what it keeps waiting there (here: a timer that would
// otherwise hold the pool until its grace period ran out).
class WaitingLayer final : public CommunicationLayer {
 public:
  explicit WaitingLayer(const asio::any_io_executor& pool) : timer{pool, std::chrono::hours{1}} {}
  void on_attach(Ingress ingress) override { ingress_ = std::move(ingress); }
  void deliver(std::uint64_t, Notification&&) override { delivered.fetch_add(1); }
  void on_drained() override {
    delivered_when_drained = delivered.load();
    drained_before_detach = !detached.load();
    asio::post(timer.get_executor(), [this] { timer.cancel(); });
  }
  void on_detach() override { detached = true; }

  asio::steady_timer timer;
  Ingress ingress_;
  std::atomic<int> delivered{0};
  std::atomic<bool> detached{false};
  int delivered_when_drained = -1;
  bool drained_before_detach = false;
  std::atomic<bool> timer_ended{false};
};

TEST(CommunicationLayer, OnDrainedComesAfterTheLastDeliveryAndBeforeOnDetach) {
  Manager m{ManagerOptions{.concurrency = 2, .threads = 1}};
  m.register_handler("t", make_handler([](Message&) -> asio::awaitable<void> { co_return; }));
  auto layer = std::make_shared<WaitingLayer>(m.executor());
  m.attach(layer);
  m.start();
  layer->timer.async_wait([l = layer.get()](const asio::error_code&) { l->timer_ended = true; });
  for (int i = 0; i < 50; ++i) ASSERT_EQ(layer->ingress_.submit(msg("t", "", std::to_string(i)), 1), SendStatus::ok);
  m.shutdown();
  EXPECT_EQ(layer->delivered_when_drained, 50);  // every delivery made before on_drained
  EXPECT_TRUE(layer->drained_before_detach);
  EXPECT_TRUE(layer->detached.load());
  EXPECT_TRUE(layer->timer_ended.load());  // the cancel ran on the pool before it stopped
}

TEST(CommunicationLayer, AttachAfterShutdownIsALifecycleError) {
  Manager m;
  m.shutdown();
  EXPECT_THROW(m.attach(std::make_shared<RecordingLayer>()), LifecycleError);
}

}  // namespace
}  // namespace amsg

#include "concurrency/busy_loop.hpp"

#include <gtest/gtest.h>

#include <asio/any_io_executor.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/dispatch.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "amsg/manager.hpp"
#include "test_support.hpp"

namespace amsg::detail {
namespace {

using namespace std::chrono_literals;

// Runs the loop on a thread of its own until the io_context stops.
struct LoopThread {
  explicit LoopThread(std::size_t threads = 1) {
    for (std::size_t i = 0; i < threads; ++i) {
      threads_.emplace_back([this] {
        for (;;) {
          try {
            loop.run();
            return;
          } catch (const std::runtime_error&) {
            thrown.fetch_add(1);
          }
        }
      });
    }
  }
  ~LoopThread() { stop(); }
  LoopThread(const LoopThread&) = delete;
  LoopThread& operator=(const LoopThread&) = delete;
  void stop() {
    work.reset();
    io.stop();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  asio::io_context io{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work{io.get_executor()};
  BusyLoop loop{io};
  std::atomic<int> thrown{0};
  std::vector<std::thread> threads_;
};

TEST(BusyLoop, RunsPostedWorkInOrderOnItsThread) {
  LoopThread t;
  asio::any_io_executor ex{t.loop.executor()};
  std::vector<int> order;
  std::atomic<bool> done{false};
  std::atomic<bool> all_on_loop{true};
  for (int i = 0; i < 100; ++i) {
    asio::post(ex, [&, i] {
      if (!t.loop.running_in_this_thread()) all_on_loop = false;
      order.push_back(i);
      if (i == 99) done = true;
    });
  }
  ASSERT_TRUE(test::eventually([&] { return done.load(); }, 5s));
  ASSERT_EQ(order.size(), 100U);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[static_cast<std::size_t>(i)], i);
  EXPECT_TRUE(all_on_loop);
  EXPECT_FALSE(t.loop.running_in_this_thread());
}

TEST(BusyLoop, PostFromTheLoopRunsAfterTheCurrentHandlerAndDispatchRunsInline) {
  LoopThread t;
  asio::any_io_executor ex{t.loop.executor()};
  std::vector<std::string> steps;
  std::atomic<bool> done{false};
  asio::post(ex, [&] {
    asio::post(ex, [&] {
      steps.emplace_back("posted");
      done = true;
    });
    asio::dispatch(ex, [&] { steps.emplace_back("dispatched"); });
    steps.emplace_back("first");
  });
  ASSERT_TRUE(test::eventually([&] { return done.load(); }, 5s));
  EXPECT_EQ(steps, (std::vector<std::string>{"dispatched", "first", "posted"}));
}

// Timers belong to the io_context: they fire while the loop's own queue never
// empties (a poller that re-posts itself, as the UCX link's does).
TEST(BusyLoop, TimersFireWhileWorkKeepsComing) {
  LoopThread t;
  asio::any_io_executor ex{t.loop.executor()};
  std::atomic<bool> stop_polling{false};
  std::atomic<std::uint64_t> turns{0};
  std::function<void()> poll = [&] {
    turns.fetch_add(1, std::memory_order_relaxed);
    if (!stop_polling) asio::post(ex, poll);
  };
  asio::post(ex, poll);
  std::atomic<bool> fired{false};
  std::atomic<bool> fired_on_loop{false};
  asio::steady_timer timer{ex, 20ms};
  timer.async_wait([&](const asio::error_code& ec) {
    fired_on_loop = t.loop.running_in_this_thread();
    fired = !ec;
  });
  ASSERT_TRUE(test::eventually([&] { return fired.load(); }, 5s));
  EXPECT_TRUE(fired_on_loop);
  EXPECT_GT(turns.load(), 0U);
  stop_polling = true;
  std::atomic<bool> last{false};
  asio::post(ex, [&] { last = true; });
  ASSERT_TRUE(test::eventually([&] { return last.load(); }, 5s));
}

// Queued work is the io_context's work: run() returns once nothing is left
// anywhere, not while a chain of posts is still going.
TEST(BusyLoop, RunReturnsOnlyOnceNoWorkIsLeft) {
  asio::io_context io{1};
  BusyLoop loop{io};
  asio::any_io_executor ex{loop.executor()};
  int left = 1000;
  std::function<void()> step = [&] {
    if (--left > 0) asio::post(ex, step);
  };
  asio::post(ex, step);
  bool timer_fired = false;
  asio::steady_timer timer{ex, 5ms};
  timer.async_wait([&](const asio::error_code& ec) { timer_fired = !ec; });
  loop.run();
  EXPECT_EQ(left, 0);
  EXPECT_TRUE(timer_fired);
  EXPECT_TRUE(io.stopped());
}

TEST(BusyLoop, AHandlerThatThrowsLeavesTheRestQueuedAndCounted) {
  LoopThread t;
  asio::any_io_executor ex{t.loop.executor()};
  std::atomic<int> ran{0};
  asio::post(ex, [] { throw std::runtime_error("on purpose"); });
  for (int i = 0; i < 10; ++i) asio::post(ex, [&] { ran.fetch_add(1); });
  ASSERT_TRUE(test::eventually([&] { return ran.load() == 10; }, 5s));
  EXPECT_EQ(t.thrown.load(), 1);
}

TEST(BusyLoop, WorkFromOtherThreadsAndStrandsOverSeveralLoopThreads) {
  LoopThread t{2};
  auto strand = asio::make_strand(asio::any_io_executor{t.loop.executor()});
  constexpr int kPerThread = 5000;
  int in_strand = 0;  // only ever touched on the strand
  std::atomic<int> done{0};
  std::vector<std::thread> senders;
  for (int s = 0; s < 3; ++s) {
    senders.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        asio::post(strand, [&] {
          ++in_strand;
          done.fetch_add(1);
        });
      }
    });
  }
  for (auto& s : senders) s.join();
  ASSERT_TRUE(test::eventually([&] { return done.load() == 3 * kPerThread; }, 10s));
  std::atomic<int> seen{-1};
  asio::post(strand, [&] { seen = in_strand; });
  ASSERT_TRUE(test::eventually([&] { return seen.load() >= 0; }, 5s));
  EXPECT_EQ(seen.load(), 3 * kPerThread);
}

TEST(BusyLoop, WorkLeftWhenTheLoopIsDestroyedIsDestroyedUnrun) {
  asio::io_context io{1};
  auto token = std::make_shared<int>(0);
  bool ran = false;
  {
    BusyLoop loop{io};
    asio::post(loop.executor(), [token, &ran] { ran = true; });
    EXPECT_EQ(token.use_count(), 2);
  }
  EXPECT_FALSE(ran);
  EXPECT_EQ(token.use_count(), 1);
}

// A manager whose pool busy-polls runs handlers (that suspend, too) and
// notifies, and shuts down.
TEST(BusyLoop, AManagerThatBusyPollsRunsHandlersAndShutsDown) {
  ManagerOptions o;
  o.busy_poll = true;
  o.concurrency = 4;
  o.logger_name = test::quiet_logger("busy-manager");
  Manager m{o};
  m.register_handler("nap", make_handler([](Message&) -> asio::awaitable<void> {
                       asio::steady_timer timer{co_await asio::this_coro::executor, 1ms};
                       co_await timer.async_wait(asio::use_awaitable);
                     }));
  m.register_handler("now", make_handler([](Message&) -> asio::awaitable<void> { co_return; }));
  m.start();
  constexpr int kMessages = 2000;
  for (int i = 0; i < kMessages; ++i) {
    ASSERT_EQ(m.send(test::msg(i % 10 == 0 ? "nap" : "now", {}, std::to_string(i))), SendStatus::ok);
  }
  const auto notes = test::receive_n(m, kMessages);
  ASSERT_EQ(notes.size(), std::size_t{kMessages});
  for (const auto& n : notes) EXPECT_TRUE(n.is_success()) << n.text();
  const auto report = m.shutdown(5s);
  EXPECT_TRUE(report.drained);
}

}  // namespace
}  // namespace amsg::detail

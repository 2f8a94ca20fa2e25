#include "concurrency/busy_loop.hpp"

#include <gtest/gtest.h>

#include <asio/any_io_executor.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
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
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <typeinfo>
#include <vector>

#include "amsg/manager.hpp"
#include "test_support.hpp"

namespace amsg::detail {
namespace {

using namespace std::chrono_literals;

// Runs the loop on `threads` threads of its own until the io_context stops.
struct LoopThread {
  explicit LoopThread(std::size_t threads = 1) : loop{io, threads} {
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
  BusyLoop loop;
  std::atomic<int> thrown{0};
  std::vector<std::thread> threads_;
};

// Declared after what a test's work touches: stops the loop first, also when
// an ASSERT returns early.
struct StopFirst {
  explicit StopFirst(LoopThread& loop_thread) : t{loop_thread} {}
  LoopThread& t;
  StopFirst(const StopFirst&) = delete;
  StopFirst& operator=(const StopFirst&) = delete;
  ~StopFirst() { t.stop(); }
};

TEST(BusyLoop, RunsPostedWorkInOrderOnItsThread) {
  LoopThread t;
  asio::any_io_executor ex{t.loop.executor()};
  std::vector<int> order;
  std::atomic<bool> done{false};
  std::atomic<bool> all_on_loop{true};
  StopFirst stop{t};
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
  StopFirst stop{t};
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
  std::atomic<bool> stop_polling{false};
  std::atomic<std::uint64_t> turns{0};
  std::atomic<bool> fired{false};
  std::atomic<bool> fired_on_loop{false};
  LoopThread t;  // after what its work touches: stopped (below) before they go
  asio::any_io_executor ex{t.loop.executor()};
  std::function<void()> poll = [&] {
    turns.fetch_add(1, std::memory_order_relaxed);
    if (!stop_polling) asio::post(ex, poll);
  };
  asio::post(ex, poll);
  asio::steady_timer timer{ex, 20ms};
  StopFirst stop{t};
  timer.async_wait([&](const asio::error_code& ec) {
    fired_on_loop = t.loop.running_in_this_thread();
    fired = !ec;
  });
  ASSERT_TRUE(test::eventually([&] { return fired.load(); }, 5s));
  EXPECT_TRUE(fired_on_loop);
  EXPECT_GT(turns.load(), 0U);
  stop_polling = true;
  t.stop();
}

// Queued work is the io_context's work: run() returns once nothing is left
// anywhere, not while a chain of posts is still going.
TEST(BusyLoop, RunReturnsOnlyOnceNoWorkIsLeft) {
  asio::io_context io{1};
  BusyLoop loop{io};
  asio::any_io_executor ex{loop.executor()};
  int left = 1000;
  bool stopped_early = false;
  std::function<void()> step = [&] {
    io.poll();  // as run() does now and then: the io_context must still have work
    if (io.stopped()) stopped_early = true;
    if (--left > 0) asio::post(ex, step);
  };
  asio::post(ex, step);
  loop.run();
  EXPECT_EQ(left, 0);
  EXPECT_FALSE(stopped_early);
  EXPECT_TRUE(io.stopped());
}

// A coroutine spawned on the loop is work (co_spawn asks for tracked work):
// run() waits for it while it is suspended on something that is neither queued
// nor the io_context's (here: a completion another thread calls later).
TEST(BusyLoop, ASpawnedCoroutineKeepsTheLoopRunningUntilItEnds) {
  asio::io_context io{1};
  BusyLoop loop{io};
  bool done = false;
  std::function<void()> resume;  // set on the loop thread before `parked`
  std::atomic<bool> parked{false};
  asio::co_spawn(
      loop.executor(),
      [&]() -> asio::awaitable<void> {
        co_await asio::async_initiate<const asio::use_awaitable_t<>&, void()>(
            [&](auto handler) {
              auto h = std::make_shared<decltype(handler)>(std::move(handler));
              resume = [h] {
                auto ex = asio::get_associated_executor(*h);
                asio::post(ex, [h] { std::move (*h)(); });
              };
              parked = true;
            },
            asio::use_awaitable);
        done = true;
      },
      asio::detached);
  std::thread waker{[&] {
    while (!parked) std::this_thread::yield();
    // Untracked, the io_context would now run out of work and stop (run()
    // returning before the coroutine ends): watch for that, bounded, then resume.
    const auto until = std::chrono::steady_clock::now() + 50ms;
    while (!io.stopped() && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    resume();
  }};
  loop.run();
  waker.join();
  EXPECT_TRUE(done);
}

TEST(BusyLoop, AHandlerThatThrowsLeavesTheRestQueuedAndCounted) {
  asio::io_context io{1};
  BusyLoop loop{io};
  asio::any_io_executor ex{loop.executor()};
  int ran = 0;
  asio::post(ex, [&] { ++ran; });
  asio::post(ex, [] { throw std::runtime_error("on purpose"); });
  for (int i = 0; i < 10; ++i) asio::post(ex, [&] { ++ran; });
  int thrown = 0;
  for (;;) {  // all 12 are one batch: the 10 after the throw go back to the queue
    try {
      loop.run();
      break;
    } catch (const std::runtime_error&) {
      ++thrown;
      EXPECT_EQ(ran, 1);
      EXPECT_FALSE(loop.running_in_this_thread());  // left run(): the thread's marker is restored
    }
  }
  EXPECT_EQ(thrown, 1);
  EXPECT_EQ(ran, 11);
  EXPECT_TRUE(io.stopped());  // every op accounted for: the io_context ran out of work
}

TEST(BusyLoop, WorkFromOtherThreadsAndStrandsOverSeveralLoopThreads) {
  LoopThread t{2};
  auto strand = asio::make_strand(asio::any_io_executor{t.loop.executor()});
  constexpr int kPerThread = 5000;
  int in_strand = 0;  // only ever touched on the strand
  std::atomic<int> done{0};
  std::vector<std::thread> senders;
  senders.reserve(3);
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

// With several threads, each takes one piece of work at a time: what is queued
// behind a handler that holds its thread runs on another.
TEST(BusyLoop, WithSeveralThreadsWorkBehindAHeldThreadRunsOnAnother) {
  std::atomic<bool> second_ran{false};
  std::atomic<bool> first_saw_second{false};
  LoopThread t{2};
  StopFirst stop{t};
  asio::any_io_executor ex{t.loop.executor()};
  std::atomic<bool> go{false};
  asio::post(ex, [&] {
    while (!go) std::this_thread::yield();
    asio::post(ex, [&] {
      const auto until = std::chrono::steady_clock::now() + 5s;  // holds its thread until the next one ran
      while (!second_ran && std::chrono::steady_clock::now() < until) std::this_thread::yield();
      first_saw_second = second_ran.load();
    });
    asio::post(ex, [&] { second_ran = true; });
  });
  go = true;
  ASSERT_TRUE(test::eventually([&] { return first_saw_second.load(); }, 10s));
}

TEST(BusyLoop, OverAlignedWorkIsStoredAligned) {
  struct alignas(64) Wide {
    std::atomic<bool>* ok;
    void operator()() const { ok->store((reinterpret_cast<std::uintptr_t>(this) % 64) == 0); }
  };
  asio::io_context io{1};
  BusyLoop loop{io};
  std::atomic<bool> ok{false};
  asio::post(loop.executor(), Wide{&ok});
  loop.run();
  EXPECT_TRUE(ok.load());
}

// Posts its own kind again when destroyed unrun (as a coroutine's frame does).
struct PostsWhenDestroyed {
  PostsWhenDestroyed(asio::any_io_executor e, std::shared_ptr<int> t, int n)
      : ex{std::move(e)}, token{std::move(t)}, left{n} {}
  PostsWhenDestroyed(PostsWhenDestroyed&& o) noexcept : ex{std::move(o.ex)}, token{std::move(o.token)}, left{o.left} {
    o.left = 0;
  }
  PostsWhenDestroyed(const PostsWhenDestroyed&) = delete;
  PostsWhenDestroyed& operator=(const PostsWhenDestroyed&) = delete;
  PostsWhenDestroyed& operator=(PostsWhenDestroyed&&) = delete;
  ~PostsWhenDestroyed() {
    if (left > 0) asio::post(ex, PostsWhenDestroyed{ex, token, left - 1});
  }
  void operator()() { *ran = true; }
  asio::any_io_executor ex;
  std::shared_ptr<int> token;
  int left;
  std::shared_ptr<bool> ran = std::make_shared<bool>(false);
};

TEST(BusyLoop, WorkLeftWhenTheLoopIsClosedIsDestroyedUnrunAlsoWhatItPosts) {
  asio::io_context io{1};
  auto token = std::make_shared<int>(0);
  bool ran = false;
  {
    BusyLoop loop{io};
    asio::post(loop.executor(), [token, &ran] { ran = true; });
    asio::post(loop.executor(), PostsWhenDestroyed{loop.executor(), token, 3});
    EXPECT_EQ(token.use_count(), 3);
    loop.close();
    EXPECT_EQ(token.use_count(), 1);
    asio::post(loop.executor(), [token, &ran] { ran = true; });  // closed: destroyed at once
    EXPECT_EQ(token.use_count(), 1);
  }
  EXPECT_FALSE(ran);
}

// A manager whose pool busy-polls runs handlers (that suspend, too) and
// notifies, and shuts down.
class BusyManager : public ::testing::TestWithParam<std::size_t> {};

TEST_P(BusyManager, RunsHandlersAndShutsDown) {
  ManagerOptions o;
  o.busy_poll = true;
  o.threads = GetParam();  // 2: lanes on strands of the loop
  o.concurrency = 4;
  o.logger_name = test::quiet_logger("busy-manager");
  Manager m{o};
  m.register_handler("nap", make_handler([](Message&) -> asio::awaitable<void> {
                       asio::steady_timer timer{co_await asio::this_coro::executor, 1ms};
                       co_await timer.async_wait(asio::use_awaitable);
                     }));
  m.register_handler("now", make_handler([](Message&) -> asio::awaitable<void> { co_return; }));
  ASSERT_TRUE(m.executor().target_type() == typeid(BusyLoop::BasicExecutor));  // the option took effect
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
  EXPECT_LE(m.stats().max_in_flight, 4U);
}

INSTANTIATE_TEST_SUITE_P(PoolThreads, BusyManager, ::testing::Values(std::size_t{1}, std::size_t{2}));

// A handler leaves a coroutine waiting on a timer on the pool; the manager is
// shut down and destroyed with it still there (its frame is destroyed as the
// io_context goes, and posts to the loop as it does).
TEST(BusyLoop, AManagerThatBusyPollsIsDestroyedWithWorkLeftOnItsPool) {
  auto frames_gone = std::make_shared<std::atomic<int>>(0);
  {
    ManagerOptions o;
    o.busy_poll = true;
    o.logger_name = test::quiet_logger("busy-manager-left");
    Manager m{o};
    m.register_handler("leave", make_handler([frames_gone](Message&) -> asio::awaitable<void> {
                         auto ex = co_await asio::this_coro::executor;
                         asio::co_spawn(
                             ex,
                             [frames_gone]() -> asio::awaitable<void> {
                               struct Gone {
                                 std::shared_ptr<std::atomic<int>> n;
                                 ~Gone() { n->fetch_add(1); }
                               } gone{frames_gone};
                               asio::steady_timer timer{co_await asio::this_coro::executor, std::chrono::hours{1}};
                               co_await timer.async_wait(asio::use_awaitable);
                             },
                             asio::detached);
                       }));
    m.start();
    ASSERT_EQ(m.send(test::msg("leave", {}, "x")), SendStatus::ok);
    const auto notes = test::receive_n(m, 1);
    ASSERT_EQ(notes.size(), 1U);
    EXPECT_TRUE(notes[0].is_success());
    const auto report = m.shutdown(50ms);
    EXPECT_TRUE(report.drained);
  }
  EXPECT_EQ(frames_gone->load(), 1);  // destroyed, not leaked
}

}  // namespace
}  // namespace amsg::detail

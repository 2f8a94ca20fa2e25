// start / shutdown: the three phases, the accounting after them, and destruction.

#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/steady_timer.hpp>
#include <future>
#include <map>
#include <mutex>
#include <set>

#include <fmt/format.h>

#include "test_support.hpp"

namespace amsg {
namespace {

using namespace amsg::test;

std::shared_ptr<Handler> sleeper(std::chrono::milliseconds d) {
  return make_handler([d](Message&) -> asio::awaitable<void> {
    asio::steady_timer t{co_await asio::this_coro::executor, d};
    co_await t.async_wait(asio::use_awaitable);
  });
}

std::set<std::string> drain_ids(Manager& m, std::vector<Notification>* out = nullptr) {
  std::set<std::string> ids;
  while (auto n = m.try_receive()) {
    EXPECT_TRUE(ids.insert(n->id).second) << "duplicate notification " << n->id;
    if (out) out->push_back(std::move(*n));
  }
  return ids;
}

TEST(Lifecycle, StartTwiceIsALifecycleError) {
  Manager m;
  m.start();
  EXPECT_THROW(m.start(), LifecycleError);
  m.shutdown();
  EXPECT_THROW(m.start(), LifecycleError);
}

TEST(Lifecycle, ShutdownClosesIntakeAndSendsReturnClosed) {
  Manager m;
  m.register_handler("t", make_handler([](Message&) -> asio::awaitable<void> { co_return; }));
  m.start();
  m.shutdown();
  EXPECT_FALSE(m.running());
  Message late = msg("t", "still mine", "late");
  EXPECT_EQ(m.try_send(std::move(late)), SendStatus::closed);
  // A refused message is not moved from (documented), so it can be sent again.
  EXPECT_EQ(m.send(std::move(late)), SendStatus::closed);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(late.payload.as_string_view(), "still mine");  // NOLINT(bugprone-use-after-move)
  EXPECT_FALSE(m.receive());                               // closed and empty: returns at once
}

TEST(Lifecycle, GracefulShutdownDrainsQueuedAndRunningMessages) {
  Manager m{ManagerOptions{.concurrency = 2}};
  m.register_handler("sleep", sleeper(std::chrono::milliseconds{5}));
  m.start();
  for (int i = 0; i < 20; ++i) ASSERT_EQ(m.send(msg("sleep", "", std::to_string(i))), SendStatus::ok);
  const ShutdownReport r = m.shutdown(std::chrono::seconds{30});
  EXPECT_TRUE(r.drained);
  EXPECT_EQ(r.cancelled, 0u);
  std::vector<Notification> got;
  EXPECT_EQ(drain_ids(m, &got).size(), 20u);
  for (auto& n : got) EXPECT_TRUE(n.is_success());
  const Stats s = m.stats();
  EXPECT_EQ(s.ok, 20u);
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_EQ(s.queue_depth, 0u);
  expect_accounting(s);
}

TEST(Lifecycle, PastTheDeadlineRunningAndQueuedMessagesAreCancelledAndNotified) {
  LogCapture log{"amsg.test.cancel"};
  Manager m{ManagerOptions{.concurrency = 2, .logger_name = "amsg.test.cancel"}};
  m.register_handler("long", sleeper(std::chrono::seconds{60}));
  m.register_handler("quick", make_handler([](Message&) -> asio::awaitable<void> { co_return; }));
  m.start();
  for (int i = 0; i < 2; ++i) m.send(msg("long", "", fmt::format("running{}", i)));
  ASSERT_TRUE(eventually([&] { return m.stats().dispatched == 2; }));
  for (int i = 0; i < 10; ++i) m.send(msg("quick", "", fmt::format("queued{}", i)));
  m.send(msg("quick"));  // no id: counted, not notified
  const ShutdownReport r = m.shutdown(std::chrono::milliseconds{30});
  EXPECT_FALSE(r.drained);
  EXPECT_EQ(r.cancelled, 13u);
  std::vector<Notification> got;
  const auto ids = drain_ids(m, &got);
  EXPECT_EQ(ids.size(), 12u);
  for (auto& n : got) {
    EXPECT_EQ(n.outcome, Outcome::cancelled) << n.text();
    EXPECT_EQ(n.text(), n.id + ":err(cancelled)");
  }
  const Stats s = m.stats();
  EXPECT_EQ(s.cancelled, 13u);
  EXPECT_EQ(s.notifications, 12u);
  expect_accounting(s);
  EXPECT_GE(log.count_containing("cancelled by shutdown"), 13u);
}

TEST(Lifecycle, ShutdownWithoutStartCancelsWhatWasQueued) {
  Manager m;
  for (int i = 0; i < 5; ++i) m.send(msg("t", "", std::to_string(i)));
  const ShutdownReport r = m.shutdown();
  EXPECT_EQ(r.cancelled, 5u);
  EXPECT_EQ(drain_ids(m).size(), 5u);
  expect_accounting(m.stats());
}

// A reader running on the manager's own pool sees the channel end at shutdown
// (nullopt) and finishes, rather than being abandoned when the pool stops.
TEST(Lifecycle, ReadersOnThePoolSeeTheEndOfTheChannel) {
  std::atomic<int> read{0};
  std::atomic<bool> finished{false};
  {
    Manager m{ManagerOptions{.concurrency = 2}};
    m.register_handler("t", make_handler([](Message&) -> asio::awaitable<void> { co_return; }));
    m.start();
    asio::co_spawn(
        m.executor(),
        [&]() -> asio::awaitable<void> {
          while (auto n = co_await m.async_receive()) ++read;
          std::vector<Notification> batch;
          EXPECT_EQ(co_await m.async_receive_batch(batch, 4), 0u);
          finished = true;
        },
        asio::detached);
    for (int i = 0; i < 20; ++i) m.send(msg("t", "", std::to_string(i)));
    ASSERT_TRUE(eventually([&] { return read.load() == 20; }));
    m.shutdown();
    EXPECT_TRUE(finished.load());
  }
  EXPECT_EQ(read.load(), 20);
}

TEST(Lifecycle, ShutdownIsIdempotent) {
  Manager m;
  m.start();
  const auto a = m.shutdown();
  const auto b = m.shutdown();
  EXPECT_EQ(a.took, b.took);
}

TEST(Lifecycle, ShutdownReleasesBlockedSendersWithClosed) {
  Manager m{ManagerOptions{.concurrency = 1, .inbox_capacity = 2}};
  Gate gate{m.executor()};
  m.register_handler("wait", make_handler([&](Message&) -> asio::awaitable<void> { co_await gate.wait(); }));
  m.start();
  m.send(msg("wait", "", "a"));
  ASSERT_TRUE(eventually([&] { return m.stats().dispatched == 1; }));
  m.send(msg("wait", "", "b"));
  m.send(msg("wait", "", "c"));
  auto blocked = std::async(std::launch::async, [&] { return m.send(msg("wait", "", "d")); });
  ASSERT_EQ(blocked.wait_for(std::chrono::milliseconds{10}), std::future_status::timeout);
  const ShutdownReport r = m.shutdown(std::chrono::milliseconds{10});
  EXPECT_EQ(blocked.get(), SendStatus::closed);
  EXPECT_FALSE(r.drained);
  EXPECT_EQ(drain_ids(m), (std::set<std::string>{"a", "b", "c"}));
  expect_accounting(m.stats());
}

// Nobody reads and the notification channel is full: shutdown still completes and
// every notification is there to read afterwards.
TEST(Lifecycle, ShutdownCompletesWhenNobodyReadsNotifications) {
  Manager m{ManagerOptions{.concurrency = 2, .inbox_capacity = 8, .notification_capacity = 2}};
  m.register_handler("t", make_handler([](Message&) -> asio::awaitable<void> { co_return; }));
  m.start();
  int accepted = 0;
  for (int i = 0; i < 12; ++i) {
    if (m.try_send(msg("t", "", std::to_string(i))) == SendStatus::ok) ++accepted;
  }
  m.shutdown(std::chrono::milliseconds{20});
  EXPECT_EQ(drain_ids(m).size(), static_cast<std::size_t>(accepted));
  expect_accounting(m.stats());
}

TEST(Lifecycle, DestroyingWithoutShutdownIsSafe) {
  auto alive = std::make_shared<int>(1);
  std::weak_ptr<int> watch = alive;
  {
    Manager m{ManagerOptions{.concurrency = 4, .logger_name = quiet_logger("amsg.test.destroy")}};
    m.register_handler("long", make_handler([alive = std::move(alive)](Message&) -> asio::awaitable<void> {
                         asio::steady_timer t{co_await asio::this_coro::executor, std::chrono::hours{1}};
                         co_await t.async_wait(asio::use_awaitable);
                       }));
    m.start();
    for (int i = 0; i < 50; ++i) m.send(msg("long", "", std::to_string(i)));
    ASSERT_TRUE(eventually([&] { return m.stats().dispatched == 4; }));
  }  // no shutdown(): the destructor cancels and joins
  EXPECT_TRUE(watch.expired());
  { Manager never_started; }
}

TEST(Lifecycle, AccountingHoldsUnderConcurrentSendsAndShutdown) {
  for (int round = 0; round < 3; ++round) {
    Manager m{ManagerOptions{.concurrency = 4, .inbox_capacity = 64, .logger_name = quiet_logger("amsg.test.race")}};
    m.register_handler("t", sleeper(std::chrono::milliseconds{0}));
    m.start();
    std::atomic<int> accepted{0};
    std::vector<std::thread> producers;
    producers.reserve(3);
    for (int t = 0; t < 3; ++t) {
      producers.emplace_back([&, t] {
        for (int i = 0;; ++i) {
          if (m.send(msg("t", "", fmt::format("{}-{}", t, i))) != SendStatus::ok) return;
          ++accepted;
        }
      });
    }
    ASSERT_TRUE(eventually([&] { return accepted.load() > 500; }));
    std::atomic<std::size_t> received{0};
    std::thread reader{[&] {
      while (auto n = m.receive()) ++received;
    }};
    m.shutdown(std::chrono::milliseconds{round * 5});
    for (auto& p : producers) p.join();
    reader.join();
    EXPECT_EQ(received.load(), static_cast<std::size_t>(accepted.load()));
    const Stats s = m.stats();
    EXPECT_EQ(s.received, static_cast<std::uint64_t>(accepted.load()));
    expect_accounting(s);
  }
}

// Every kind of ending at once: inline handlers, suspending ones, throwing ones,
// unknown types and oversized payloads from several producers, while shutdown
// cancels part-way. Each id gets exactly one notification and the counters add up.
TEST(Lifecycle, MixedOutcomesUnderShutdownKeepExactAccounting) {
  for (int round = 0; round < 4; ++round) {
    Manager m{ManagerOptions{.concurrency = 6,
                             .threads = 2,
                             .inbox_capacity = 32,
                             .notification_capacity = 16,
                             .max_payload_bytes = 8,
                             .logger_name = quiet_logger("amsg.test.mixed")}};
    m.register_handler("inline", make_handler([](Message&) -> asio::awaitable<void> { co_return; }));
    m.register_handler("sleep", sleeper(std::chrono::milliseconds{2}));
    m.register_handler("long", sleeper(std::chrono::seconds{30}));
    m.register_handler("throw", make_handler([](Message&) -> asio::awaitable<void> {
                         throw std::runtime_error("boom");
                         co_return;
                       }));
    m.start();
    // Each producer's first message holds a lane for 30 s (3 of 6 lanes), so that
    // shutdown has running handlers to cancel; the rest end on their own.
    const char* types[] = {"inline", "sleep", "throw", "nope", "inline", "sleep", "inline", "inline"};
    std::atomic<int> accepted{0};
    std::atomic<int> with_id{0};
    std::vector<std::thread> producers;
    producers.reserve(3);
    for (int t = 0; t < 3; ++t) {
      producers.emplace_back([&, t] {
        for (int i = 0;; ++i) {
          const std::string type = i == 0 ? "long" : types[(i + t) % 8];
          const bool big = i % 13 == 7;
          const bool notify = i % 5 != 0;
          std::optional<std::string> id;
          if (notify) id = fmt::format("{}-{}", t, i);
          Message message{type, Payload::copy_of(big ? std::string_view{"0123456789"} : std::string_view{"x"}),
                          std::move(id)};
          if (m.send(std::move(message)) != SendStatus::ok) return;
          ++accepted;
          if (notify) ++with_id;
        }
      });
    }
    std::mutex mutex;
    std::map<std::string, int> seen;
    std::thread reader{[&] {
      while (auto n = m.receive()) {
        std::lock_guard lock{mutex};
        ++seen[n->id];
      }
    }};
    EXPECT_TRUE(eventually([&] { return accepted.load() > 300 * (round + 1); }));
    m.shutdown(std::chrono::milliseconds{round * 10});
    for (auto& p : producers) p.join();
    reader.join();
    const Stats s = m.stats();
    EXPECT_EQ(s.received, static_cast<std::uint64_t>(accepted.load()));
    expect_accounting(s);
    EXPECT_EQ(s.notifications, static_cast<std::uint64_t>(with_id.load()));
    EXPECT_EQ(seen.size(), static_cast<std::size_t>(with_id.load()));
    for (const auto& [id, count] : seen) EXPECT_EQ(count, 1) << id;
    EXPECT_GT(s.cancelled, 0u);  // the "long" handlers at least
    EXPECT_GT(s.rejected, 0u);
    EXPECT_GT(s.unknown_type, 0u);
    EXPECT_EQ(s.in_flight, 0u);
    EXPECT_EQ(s.queue_depth, 0u);
  }
}

}  // namespace
}  // namespace amsg

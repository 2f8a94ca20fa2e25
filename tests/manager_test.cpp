// Dispatch, limits, backpressure, notifications, errors and stats of Manager.

#include "amsg/manager.hpp"

#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <future>
#include <set>

#include <fmt/format.h>

#include "test_support.hpp"

namespace amsg {
namespace {

using namespace amsg::test;

TEST(Manager, ConcurrencyLimitIsHardUnderLoad) {
  for (std::size_t n : {1u, 3u, 8u}) {
    Manager m{ManagerOptions{.concurrency = n, .threads = 2}};
    std::atomic<int> running{0};
    std::atomic<int> max_running{0};
    m.register_handler("work", make_handler([&](Message&) -> asio::awaitable<void> {
                         record_max(max_running, ++running);
                         asio::steady_timer t{co_await asio::this_coro::executor, std::chrono::milliseconds{1}};
                         co_await t.async_wait(asio::use_awaitable);
                         --running;
                       }));
    m.start();
    constexpr int kMessages = 200;
    std::thread producer{[&] {
      for (int i = 0; i < kMessages; ++i) m.send(msg("work", "", std::to_string(i)));
    }};
    auto got = receive_n(m, kMessages);
    producer.join();
    ASSERT_EQ(got.size(), static_cast<std::size_t>(kMessages));
    EXPECT_EQ(max_running.load(), static_cast<int>(n)) << "N=" << n;
    EXPECT_EQ(m.stats().max_in_flight, n);
  }
}

// Handlers that block their thread (never suspend) must still spread over the pool:
// a burst that arrives while the first lane is waking up gets a second lane.
TEST(Manager, ABurstOfBlockingHandlersUsesTheWholePool) {
  for (int round = 0; round < 5; ++round) {
    Manager m{ManagerOptions{.concurrency = 2, .threads = 2}};
    std::atomic<int> running{0};
    std::atomic<int> max_running{0};
    m.register_handler("block", make_handler([&](Message&) -> asio::awaitable<void> {
                         record_max(max_running, ++running);
                         // Holds the thread until a second handler runs alongside (bounded).
                         const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds{5};
                         while (max_running.load() < 2 && std::chrono::steady_clock::now() < give_up) {
                           std::this_thread::yield();
                         }
                         --running;
                         co_return;
                       }));
    m.start();
    ASSERT_TRUE(eventually([&] { return m.stats().in_flight == 0; }));
    m.send(msg("block", "", "a"));
    m.send(msg("block", "", "b"));
    EXPECT_EQ(receive_n(m, 2).size(), 2u);
    EXPECT_EQ(max_running.load(), 2) << "round " << round;
  }
}

TEST(Manager, MessagesSentBeforeStartRunAfterStart) {
  Manager m{ManagerOptions{.concurrency = 2}};
  m.register_handler("t", noop());
  for (int i = 0; i < 10; ++i) ASSERT_EQ(m.try_send(msg("t", "", std::to_string(i))), SendStatus::ok);
  EXPECT_FALSE(m.receive_for(std::chrono::milliseconds{5}));
  m.start();
  EXPECT_EQ(receive_n(m, 10).size(), 10u);
}

TEST(Manager, TrySendReportsFullAndLeavesTheMessageWithTheCaller) {
  Manager m{ManagerOptions{.concurrency = 1, .threads = 1, .inbox_capacity = 4}};
  Gate gate{m.executor()};
  m.register_handler("wait", make_handler([&](Message&) -> asio::awaitable<void> { co_await gate.wait(); }));
  m.start();
  ASSERT_EQ(m.try_send(msg("wait", "", "first")), SendStatus::ok);
  ASSERT_TRUE(eventually([&] { return m.stats().dispatched == 1; }));
  for (int i = 0; i < 4; ++i) ASSERT_EQ(m.try_send(msg("wait", "", fmt::format("q{}", i))), SendStatus::ok);
  Message extra = msg("wait", "keep me", "extra");
  EXPECT_EQ(m.try_send(std::move(extra)), SendStatus::full);
  EXPECT_EQ(extra.payload.as_string_view(), "keep me");  // NOLINT(bugprone-use-after-move): documented
  ASSERT_TRUE(extra.notify_id);
  EXPECT_EQ(m.stats().queue_depth, 4u);

  // A blocking send waits for room instead of failing or dropping.
  auto blocked = std::async(std::launch::async, [&] { return m.send(std::move(extra)); });
  EXPECT_EQ(blocked.wait_for(std::chrono::milliseconds{20}), std::future_status::timeout);
  gate.open(6);
  EXPECT_EQ(blocked.get(), SendStatus::ok);
  auto got = receive_n(m, 6);
  std::set<std::string> ids;
  for (auto& n : got) ids.insert(n.id);
  EXPECT_EQ(ids, (std::set<std::string>{"first", "q0", "q1", "q2", "q3", "extra"}));
}

TEST(Manager, AsyncSendWaitsForRoomInACoroutine) {
  asio::io_context client;  // outlives the manager, whose threads post into it
  Manager m{ManagerOptions{.concurrency = 1, .threads = 1, .inbox_capacity = 2}};
  Gate gate{m.executor()};
  m.register_handler("wait", make_handler([&](Message&) -> asio::awaitable<void> { co_await gate.wait(); }));
  m.start();
  std::vector<SendStatus> results;
  asio::co_spawn(
      client,
      [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 8; ++i) results.push_back(co_await m.async_send(msg("wait", "", std::to_string(i))));
      },
      asio::detached);
  std::thread opener{[&] {
    ASSERT_TRUE(eventually([&] { return m.stats().dispatched >= 1; }));
    gate.open(8);
  }};
  client.run();
  opener.join();
  EXPECT_EQ(results, std::vector<SendStatus>(8, SendStatus::ok));
  EXPECT_EQ(receive_n(m, 8).size(), 8u);
}

TEST(Manager, HandlerExceptionsBecomeErrorNotifications) {
  LogCapture log{"amsg.test.errors"};
  Manager m{ManagerOptions{.concurrency = 2, .logger_name = "amsg.test.errors"}};
  m.register_handler("throw", make_handler([](Message& msg) -> asio::awaitable<void> {
                       throw std::runtime_error("boom: " + std::string{msg.payload.as_string_view()});
                       co_return;
                     }));
  m.register_handler("throw_int", make_handler([](Message&) -> asio::awaitable<void> {
                       throw 42;
                       co_return;
                     }));
  m.start();
  m.send(msg("throw", "(x)", "a"));
  m.send(msg("throw_int", "", "b"));
  m.send(msg("throw", "silent"));
  auto got = receive_n(m, 2);
  ASSERT_EQ(got.size(), 2u);
  std::sort(got.begin(), got.end(), [](auto& x, auto& y) { return x.id < y.id; });
  EXPECT_EQ(got[0].text(), "a:err(boom: (x))");
  EXPECT_EQ(got[0].outcome, Outcome::error);
  EXPECT_EQ(got[0].error, "boom: (x)");
  EXPECT_EQ(got[0].message_type, "throw");
  EXPECT_EQ(got[1].text(), "b:err(unknown exception)");
  ASSERT_TRUE(eventually([&] { return m.stats().failed == 3; }));
  EXPECT_EQ(log.count_containing("failed: boom: (x)"), 1u);
  EXPECT_EQ(log.count_containing("failed: boom: silent"), 1u);  // logged even without an id
}

// Message::deadline: a queued message past it never runs (timeout); a running
// handler is cancelled at it; and a handler that swallows that cancellation
// leaves its lane clean for the next message.
TEST(Manager, DeadlinesSkipQueuedMessagesCancelRunningOnesAndLeaveTheLaneClean) {
  Manager m{ManagerOptions{.concurrency = 1, .logger_name = quiet_logger("amsg.test.deadline")}};
  std::atomic<int> ran{0};
  auto wait_ms = [](Message& msg) -> asio::awaitable<void> {
    asio::steady_timer t{co_await asio::this_coro::executor,
                         std::chrono::milliseconds{std::stoi(std::string{msg.payload.as_string_view()})}};
    co_await t.async_wait(asio::use_awaitable);
  };
  m.register_handler("wait", make_handler(wait_ms));
  m.register_handler("swallow", make_handler([](Message&) -> asio::awaitable<void> {
                       asio::steady_timer t{co_await asio::this_coro::executor, std::chrono::seconds{30}};
                       asio::error_code ec;
                       co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));  // ignores cancellation
                     }));
  m.register_handler("count", make_handler([&ran](Message&) -> asio::awaitable<void> {
                       ran.fetch_add(1);
                       co_return;
                     }));
  m.start();
  const auto soon = std::chrono::steady_clock::now() + 50ms;
  Message running = msg("wait", "30000", "running");
  running.deadline = soon;
  Message queued = msg("count", "", "queued");  // behind it on the only lane
  queued.deadline = soon;
  ASSERT_EQ(m.send(std::move(running)), SendStatus::ok);
  ASSERT_EQ(m.send(std::move(queued)), SendStatus::ok);
  auto got = receive_n(m, 2);
  ASSERT_EQ(got.size(), 2u);
  for (const auto& n : got) {
    EXPECT_EQ(n.code, errc::timeout) << n.text();
    EXPECT_EQ(n.error, "timeout");
  }
  EXPECT_EQ(ran.load(), 0);
  Message swallowed = msg("swallow", "", "swallowed");
  swallowed.deadline = std::chrono::steady_clock::now() + 50ms;
  ASSERT_EQ(m.send(std::move(swallowed)), SendStatus::ok);
  ASSERT_EQ(m.send(msg("count", "", "after")), SendStatus::ok);
  got = receive_n(m, 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].text(), "swallowed:ok");  // it ended normally, if late
  EXPECT_EQ(got[1].text(), "after:ok") << "the next handler must not start cancelled";
  EXPECT_EQ(ran.load(), 1);
  EXPECT_EQ(m.stats().timed_out, 2u);
}

TEST(Manager, UnknownTypeIsAnErrorNotificationCounterAndLogLine) {
  LogCapture log{"amsg.test.unknown"};
  Manager m{ManagerOptions{.logger_name = "amsg.test.unknown"}};
  m.start();
  m.send(msg("missing", "", "u1"));
  auto n = m.receive_for(std::chrono::seconds{10});
  ASSERT_TRUE(n);
  EXPECT_EQ(n->text(), "u1:err(unknown message type 'missing')");
  const Stats s = m.stats();
  EXPECT_EQ(s.unknown_type, 1u);
  EXPECT_EQ(s.failed, 1u);
  EXPECT_EQ(s.dispatched, 0u);
  EXPECT_EQ(log.count_containing("unknown message type 'missing'"), 1u);
}

TEST(Manager, OversizedPayloadIsRejectedBeforeTheHandler) {
  LogCapture log{"amsg.test.size"};
  std::atomic<int> ran{0};
  Manager m{ManagerOptions{.max_payload_bytes = 16, .logger_name = "amsg.test.size"}};
  m.register_handler("t", make_handler([&](Message&) -> asio::awaitable<void> {
                       ++ran;
                       co_return;
                     }));
  m.start();
  m.send(msg("t", std::string(17, 'x'), "big"));
  m.send(msg("t", std::string(16, 'x'), "fits"));
  auto got = receive_n(m, 2);
  ASSERT_EQ(got.size(), 2u);
  std::sort(got.begin(), got.end(), [](auto& x, auto& y) { return x.id < y.id; });
  EXPECT_EQ(got[0].text(), "big:err(payload of 17 bytes exceeds the limit of 16 bytes)");
  EXPECT_TRUE(got[1].is_success());
  EXPECT_EQ(ran.load(), 1);
  EXPECT_EQ(m.stats().rejected, 1u);
  EXPECT_EQ(log.count_containing("exceeds the limit"), 1u);
}

TEST(Manager, NotificationCallbackReplacesTheChannel) {
  std::mutex mutex;
  std::vector<std::string> texts;
  ManagerOptions o;
  o.on_notification = [&](Notification&& n) {
    std::lock_guard lock{mutex};
    texts.push_back(n.text());
  };
  Manager m{std::move(o)};
  m.register_handler("t", noop());
  m.start();
  for (int i = 0; i < 50; ++i) m.send(msg("t", "", std::to_string(i)));
  EXPECT_FALSE(m.receive());  // the channel is unused: returns at once instead of waiting forever
  std::vector<Notification> batch;
  EXPECT_EQ(m.receive_batch(batch, 8), 0u);
  m.shutdown();
  EXPECT_FALSE(m.try_receive());
  std::lock_guard lock{mutex};
  EXPECT_EQ(texts.size(), 50u);
}

TEST(Manager, AsyncReceiveInACoroutine) {
  asio::io_context client;  // outlives the manager, whose threads post into it
  Manager m;
  m.register_handler("t", noop());
  m.start();
  for (int i = 0; i < 20; ++i) m.send(msg("t", "", std::to_string(i)));
  std::set<std::string> ids;
  asio::co_spawn(
      client,
      [&]() -> asio::awaitable<void> {
        while (ids.size() < 20) {
          auto n = co_await m.async_receive();
          if (!n) co_return;
          ids.insert(n->id);
        }
      },
      asio::detached);
  client.run();
  EXPECT_EQ(ids.size(), 20u);
}

TEST(Manager, BatchReceiveDrainsUpToMaxAndEndsAfterShutdown) {
  asio::io_context client;  // outlives the manager, whose threads post into it
  Manager m{ManagerOptions{.concurrency = 2}};
  m.register_handler("t", noop());
  for (int i = 0; i < 10; ++i) m.send(msg("t", "", std::to_string(i)));
  std::vector<Notification> out;
  EXPECT_EQ(m.try_receive_batch(out, 100), 0u);  // not started: nothing yet
  m.start();
  std::set<std::string> ids;
  while (ids.size() < 10) {
    out.clear();
    const std::size_t n = m.receive_batch(out, 4);
    ASSERT_GE(n, 1u);
    ASSERT_LE(n, 4u);
    ASSERT_EQ(out.size(), n);
    for (auto& note : out) EXPECT_TRUE(ids.insert(note.id).second);
  }
  m.send(msg("t", "", "last"));
  std::size_t got = 0;
  asio::co_spawn(
      client,
      [&]() -> asio::awaitable<void> {
        std::vector<Notification> batch;
        got = co_await m.async_receive_batch(batch, 8);
        EXPECT_EQ(batch.at(0).id, "last");
      },
      asio::detached);
  client.run();
  EXPECT_EQ(got, 1u);
  m.shutdown();
  out.clear();
  EXPECT_EQ(m.receive_batch(out, 8), 0u);  // shut down and drained: returns at once
  EXPECT_EQ(m.try_receive_batch(out, 0), 0u);
}

TEST(Manager, ReceiveForTimesOutWhenNothingComes) {
  Manager m;
  m.start();
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(m.receive_for(std::chrono::milliseconds{20}));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds{20});
}

// When nobody reads and the notification channel is full, workers wait, the inbox
// fills, and senders see full: backpressure, no drops, no growth.
TEST(Manager, FullNotificationChannelBackpressuresToSenders) {
  Manager m{ManagerOptions{.concurrency = 2, .threads = 2, .inbox_capacity = 4, .notification_capacity = 4}};
  m.register_handler("t", noop());
  m.start();
  // Nobody reads. The runtime stalls with 4 notifications in the channel, one held
  // by each of the 2 lanes waiting for room, and 4 messages queued: 10 accepted,
  // then every try_send says full. Bounded: nothing grows, nothing is dropped.
  int accepted = 0;
  auto stalled = [&] {
    const Stats s = m.stats();
    return s.queue_depth == 4 && s.notifications == 6;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{20};
  while (!stalled() && std::chrono::steady_clock::now() < deadline) {
    const SendStatus s = m.try_send(msg("t", "", std::to_string(accepted)));
    if (s == SendStatus::ok) {
      ++accepted;
    } else {
      ASSERT_EQ(s, SendStatus::full);
      std::this_thread::yield();  // lanes are still moving; retry until they block
    }
  }
  ASSERT_TRUE(stalled()) << m.stats().to_string();
  EXPECT_EQ(accepted, 10);
  EXPECT_EQ(m.try_send(msg("t", "", "refused")), SendStatus::full);
  std::set<std::string> ids;
  while (ids.size() < static_cast<std::size_t>(accepted)) {
    auto n = m.receive_for(std::chrono::seconds{10});
    ASSERT_TRUE(n);
    ids.insert(n->id);
  }
  EXPECT_EQ(ids.size(), 10u);
  EXPECT_EQ(m.try_send(msg("t", "", "after")), SendStatus::ok);
  EXPECT_TRUE(m.receive_for(std::chrono::seconds{10}));
}

TEST(Manager, ManyProducerThreadsEveryIdExactlyOnce) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20000;
  Manager m{ManagerOptions{.concurrency = 8,
                           .inbox_capacity = 256,
                           .notification_capacity = 256,
                           .logger_name = quiet_logger("amsg.test.producers")}};
  m.register_handler("ok", noop());
  m.register_handler("fail", make_handler([](Message&) -> asio::awaitable<void> {
                       throw std::runtime_error("x");
                       co_return;
                     }));
  m.start();
  std::vector<std::thread> producers;
  producers.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const char* type = (i % 10 == 0) ? "fail" : (i % 97 == 0 ? "unknown" : "ok");
        ASSERT_EQ(m.send(msg(type, "payload", fmt::format("{}:{}", t, i))), SendStatus::ok);
      }
    });
  }
  std::vector<int> seen(static_cast<std::size_t>(kThreads * kPerThread), 0);
  std::size_t received = 0;
  std::size_t errors = 0;
  while (received < seen.size()) {
    auto n = m.receive_for(std::chrono::seconds{20});
    ASSERT_TRUE(n) << "after " << received;
    const auto colon = n->id.find(':');
    const int t = std::stoi(n->id.substr(0, colon));
    const int i = std::stoi(n->id.substr(colon + 1));
    ++seen[static_cast<std::size_t>(t) * kPerThread + static_cast<std::size_t>(i)];
    errors += n->is_success() ? 0 : 1;
    ++received;
  }
  for (auto& p : producers) p.join();
  EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [](int c) { return c == 1; }));
  m.shutdown();
  EXPECT_FALSE(m.try_receive());
  const Stats s = m.stats();
  EXPECT_EQ(s.received, seen.size());
  EXPECT_EQ(s.failed, errors);
  EXPECT_EQ(s.notifications, seen.size());
  expect_accounting(s);
}

TEST(Manager, RegisteringAndRemovingWhileMessagesFlow) {
  Manager m{ManagerOptions{.concurrency = 4, .logger_name = quiet_logger("amsg.test.churn")}};
  m.register_handler("stable", noop());
  m.start();
  std::atomic<bool> stop{false};
  std::thread churn{[&] {
    int k = 0;
    while (!stop.load()) {
      m.replace_handler("flaky", noop());
      m.remove_handler("flaky");
      m.register_handler(fmt::format("t{}", k), noop());
      ++k;
    }
  }};
  constexpr int kMessages = 20000;
  std::thread producer{[&] {
    for (int i = 0; i < kMessages; ++i) m.send(msg(i % 2 ? "stable" : "flaky", "", std::to_string(i)));
  }};
  auto got = receive_n(m, kMessages, std::chrono::seconds{30});
  stop = true;
  producer.join();
  churn.join();
  ASSERT_EQ(got.size(), static_cast<std::size_t>(kMessages));
  for (auto& n : got) {
    if (n.message_type == "stable") {
      EXPECT_TRUE(n.is_success());
    }
    if (!n.is_success()) {
      EXPECT_EQ(n.error, "unknown message type 'flaky'");
    }
  }
  m.shutdown();
  expect_accounting(m.stats());
}

// A removed handler stays alive (with what it captured) until its running coroutine ends.
TEST(Manager, RemovedHandlerLivesUntilItsCoroutineEnds) {
  Manager m{ManagerOptions{.concurrency = 1}};
  Gate gate{m.executor()};
  auto alive = std::make_shared<int>(7);
  std::weak_ptr<int> watch = alive;
  std::atomic<int> value_seen{0};
  m.register_handler("t",
                     make_handler([alive = std::move(alive), &gate, &value_seen](Message&) -> asio::awaitable<void> {
                       co_await gate.wait();
                       value_seen = *alive;  // the capture must still be valid
                     }));
  m.start();
  m.send(msg("t", "", "x"));
  ASSERT_TRUE(eventually([&] { return m.stats().dispatched == 1; }));
  EXPECT_TRUE(m.remove_handler("t"));
  EXPECT_FALSE(watch.expired());
  gate.open();
  auto n = m.receive_for(std::chrono::seconds{10});
  ASSERT_TRUE(n);
  EXPECT_TRUE(n->is_success());
  EXPECT_EQ(value_seen.load(), 7);
  m.shutdown();
  EXPECT_TRUE(watch.expired());
}

TEST(Manager, PayloadReachesTheHandlerWithoutACopy) {
  Manager m;
  std::atomic<const std::byte*> seen{nullptr};
  m.register_handler("t", make_handler([&](Message& msg) -> asio::awaitable<void> {
                       seen = msg.payload.data();
                       co_return;
                     }));
  m.start();
  Payload p{1024};
  const std::byte* original = p.data();
  m.send(Message{"t", std::move(p), "id"});
  ASSERT_TRUE(m.receive_for(std::chrono::seconds{10}));
  EXPECT_EQ(seen.load(), original);
}

TEST(Manager, StatsCountAndMeasureLatency) {
  Manager m{ManagerOptions{.concurrency = 2, .logger_name = quiet_logger("amsg.test.stats")}};
  m.register_handler("t", noop());
  m.start();
  for (int i = 0; i < 100; ++i) m.send(msg("t", "", std::to_string(i)));
  for (int i = 0; i < 10; ++i) m.send(msg("nope"));
  ASSERT_EQ(receive_n(m, 100).size(), 100u);
  ASSERT_TRUE(eventually([&] { return m.stats().failed == 10; }));
  const Stats s = m.stats();
  EXPECT_EQ(s.received, 110u);
  EXPECT_EQ(s.ok, 100u);
  EXPECT_EQ(s.dispatched, 100u);
  EXPECT_EQ(s.unknown_type, 10u);
  EXPECT_EQ(s.notifications, 100u);
  EXPECT_EQ(s.latency.count, 110u);
  EXPECT_GT(s.latency.p50_us, 0.0);
  EXPECT_LE(s.latency.p50_us, s.latency.p99_us);
  EXPECT_LE(s.latency.p99_us, s.latency.max_us * 1.07);
  EXPECT_LE(s.max_in_flight, 2u);
  expect_accounting(s);
}

TEST(Manager, StatsPerHandlerTypeCountOutcomesRunningAndDurations) {
  Manager m{ManagerOptions{.concurrency = 4, .logger_name = quiet_logger("amsg.test.types")}};
  Gate gate{m.executor()};
  m.register_handler("ok", noop());
  m.register_handler("boom", make_handler([](Message&) -> asio::awaitable<void> {
                       throw std::runtime_error("boom");
                       co_return;
                     }));
  m.register_handler("wait", make_handler([&](Message&) -> asio::awaitable<void> { co_await gate.wait(); }));
  m.start();
  for (int i = 0; i < 20; ++i) m.send(msg("ok", "", fmt::format("ok{}", i)));
  for (int i = 0; i < 3; ++i) m.send(msg("boom", "", fmt::format("boom{}", i)));
  m.send(msg("nope", "", "nope"));  // no handler ran: not a type's
  Message late = msg("wait", "", "late");
  late.deadline = std::chrono::steady_clock::now() + 20ms;  // cancelled running, by its deadline
  m.send(std::move(late));
  m.send(msg("wait", "", "held"));
  ASSERT_EQ(receive_n(m, 25).size(), 25u);  // all but "held"
  ASSERT_TRUE(eventually([&] {
    const Stats s = m.stats();
    return s.handlers.size() == 3 && s.handlers[2].running == 1;
  }));
  auto by_type = [](const Stats& s, const std::string& type) {
    for (const auto& h : s.handlers) {
      if (h.type == type) return h;
    }
    ADD_FAILURE() << "no stats for " << type;
    return HandlerTypeStats{};
  };
  Stats s = m.stats();
  const HandlerTypeStats ok = by_type(s, "ok");
  EXPECT_EQ(ok.started, 20u);
  EXPECT_EQ(ok.ok, 20u);
  EXPECT_EQ(ok.failed, 0u);
  EXPECT_EQ(ok.running, 0u);
  EXPECT_EQ(ok.duration.count, 20u);
  ASSERT_EQ(ok.duration.counts.size(), ok.duration.upper_bounds_s.size() + 1);
  EXPECT_EQ(ok.duration.counts.back(), 20u);
  EXPECT_TRUE(std::is_sorted(ok.duration.counts.begin(), ok.duration.counts.end()));  // cumulative
  const HandlerTypeStats boom = by_type(s, "boom");
  EXPECT_EQ(boom.started, 3u);
  EXPECT_EQ(boom.failed, 3u);
  EXPECT_EQ(boom.timed_out, 0u);
  HandlerTypeStats wait = by_type(s, "wait");
  EXPECT_EQ(wait.started, 2u);
  EXPECT_EQ(wait.failed, 1u);
  EXPECT_EQ(wait.timed_out, 1u);
  EXPECT_EQ(wait.running, 1u);
  // One run, in the bucket its duration belongs to (the bounds are upper bounds).
  EXPECT_EQ(wait.duration.count, 1u);
  EXPECT_GT(wait.duration.sum_s, 0.0);
  const auto& bounds = wait.duration.upper_bounds_s;
  const auto& counts = wait.duration.counts;
  const auto landed = static_cast<std::size_t>(std::find(counts.begin(), counts.end(), 1u) - counts.begin());
  ASSERT_LT(landed, counts.size());
  if (landed < bounds.size()) {
    EXPECT_LE(wait.duration.sum_s, bounds[landed] * 1.01);
  }
  if (landed > 0) {
    EXPECT_GE(wait.duration.sum_s, bounds[landed - 1] * 0.99);
  }
  gate.open();
  ASSERT_EQ(receive_n(m, 1).size(), 1u);
  ASSERT_TRUE(eventually([&] { return m.stats().in_flight == 0; }));
  wait = by_type(m.stats(), "wait");
  EXPECT_EQ(wait.ok, 1u);
  EXPECT_EQ(wait.running, 0u);
  // The manager's own latency histogram agrees with its summary.
  s = m.stats();
  EXPECT_EQ(s.latency_histogram.count, s.latency.count);
  EXPECT_EQ(s.latency_histogram.counts.back(), s.latency.count);
  EXPECT_GT(s.latency_histogram.sum_s, 0.0);
}

TEST(Manager, TypesBeyondTheTrackedOnesAreSummedUnderOther) {
  Manager m{ManagerOptions{.concurrency = 1, .logger_name = quiet_logger("amsg.test.types2")}};
  for (int t = 0; t < 40; ++t) m.register_handler(fmt::format("t{}", t), noop());
  m.start();
  for (int t = 0; t < 40; ++t) m.send(msg(fmt::format("t{}", t), "", fmt::format("{}", t)));
  ASSERT_EQ(receive_n(m, 40).size(), 40u);
  const Stats s = m.stats();
  ASSERT_EQ(s.handlers.size(), 32u);  // 31 named, then the rest
  EXPECT_EQ(s.handlers.back().type, "(other)");
  EXPECT_EQ(s.handlers.back().ok, 9u);
  std::uint64_t started = 0;
  for (const auto& h : s.handlers) started += h.started;
  EXPECT_EQ(started, 40u);
}

TEST(Manager, IdleSpinModeDeliversEverything) {
  Manager m{ManagerOptions{.concurrency = 4, .threads = 2, .idle_spin = std::chrono::microseconds{50}}};
  m.register_handler("t", noop());
  m.start();
  for (int i = 0; i < 2000; ++i) {
    ASSERT_EQ(m.send(msg("t", "", std::to_string(i))), SendStatus::ok);
    if (i % 100 == 0) {
      ASSERT_TRUE(m.receive_for(std::chrono::seconds{10}));
    }
  }
  EXPECT_EQ(receive_n(m, 2000 - 20).size(), 1980u);
}

TEST(Manager, LogsToItsNamedLoggerAndLeavesTheDefaultLoggerAlone) {
  auto before = spdlog::default_logger();
  const auto level = before->level();
  {
    Manager m{ManagerOptions{.logger_name = "amsg.test.named"}};
    m.start();
    m.send(msg("missing", "", "x"));
    ASSERT_TRUE(m.receive_for(std::chrono::seconds{10}));
  }
  EXPECT_EQ(spdlog::default_logger(), before);
  EXPECT_EQ(spdlog::default_logger()->level(), level);
  EXPECT_TRUE(spdlog::get("amsg.test.named"));
}

TEST(Manager, InvalidOptionsAreRejected) {
  EXPECT_THROW(Manager{ManagerOptions{.concurrency = 0}}, InvalidOptionsError);
  EXPECT_THROW(Manager{ManagerOptions{.inbox_capacity = 0}}, InvalidOptionsError);
  EXPECT_THROW(Manager{ManagerOptions{.notification_capacity = 0}}, InvalidOptionsError);
}

}  // namespace
}  // namespace amsg

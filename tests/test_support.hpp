#pragma once
// Helpers shared by the tests: bounded waits on real conditions, a gate that
// handlers can wait on, and a log capture.

#include <gtest/gtest.h>

#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <asio/experimental/concurrent_channel.hpp>
#include <asio/use_awaitable.hpp>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "amsg/amsg.hpp"

namespace amsg::test {

using namespace std::chrono_literals;

// Polls `condition` until it holds or `timeout` passes. Used for conditions no
// event exposes (counters); the bound keeps a broken runtime from hanging a test.
inline bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return condition();
    std::this_thread::yield();
    std::this_thread::sleep_for(200us);
  }
  return true;
}

// Receives `count` notifications (or fewer if `timeout` passes), keyed by id.
inline std::vector<Notification> receive_n(Manager& m, std::size_t count, std::chrono::milliseconds timeout = 20s) {
  std::vector<Notification> out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (out.size() < count) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) break;
    auto n = m.receive_for(deadline - now);
    if (!n) break;
    out.push_back(std::move(*n));
  }
  return out;
}

// Raises `max` to `value` if it is lower (for "most ever running at once").
inline void record_max(std::atomic<int>& max, int value) {
  int seen = max.load();
  while (value > seen && !max.compare_exchange_weak(seen, value)) {
  }
}

inline Message msg(std::string type, std::string_view data = {}, std::optional<std::string> id = std::nullopt) {
  return Message{std::move(type), Payload::copy_of(data), std::move(id)};
}

// A gate handlers wait on: each open() lets one waiting handler through.
class Gate {
 public:
  explicit Gate(const asio::any_io_executor& ex) : channel_{ex, 1024} {}
  asio::awaitable<void> wait() { co_await channel_.async_receive(asio::use_awaitable); }
  void open(std::size_t n = 1) {
    for (std::size_t i = 0; i < n; ++i) channel_.try_send(asio::error_code{}, 0);
  }

 private:
  // (Asio 1.22 cannot instantiate a channel of plain void(error_code).)
  asio::experimental::concurrent_channel<void(asio::error_code, int)> channel_;
};

// Captures what a named logger writes.
class LogCapture {
 public:
  explicit LogCapture(const std::string& name) : sink_{std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(4096)} {
    spdlog::drop(name);
    logger_ = std::make_shared<spdlog::logger>(name, sink_);
    logger_->set_level(spdlog::level::trace);
    spdlog::register_logger(logger_);
  }
  ~LogCapture() { spdlog::drop(logger_->name()); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  std::size_t count_containing(const std::string& needle) const {
    std::size_t n = 0;
    for (const auto& line : sink_->last_formatted()) {
      if (line.find(needle) != std::string::npos) ++n;
    }
    return n;
  }
  // Everything captured, one line each: for a failure's message.
  std::string text() const {
    std::string out;
    for (const auto& line : sink_->last_formatted()) out += line;
    return out;
  }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
  std::shared_ptr<spdlog::logger> logger_;
};

// A handler that does nothing.
inline std::shared_ptr<Handler> noop() {
  return make_handler([](Message&) -> asio::awaitable<void> { co_return; });
}

// A logger that discards everything, for tests that make many failures on purpose.
// A logger that says nothing, unless AMSG_TEST_LOG is set (then it logs to
// stderr at debug level: what a failing test's nodes did, for its reader).
inline std::string quiet_logger(const std::string& name) {
  if (!spdlog::get(name)) {
    if (std::getenv("AMSG_TEST_LOG") != nullptr) {  // NOLINT(concurrency-mt-unsafe): read-only use of the environment
      auto l = std::make_shared<spdlog::logger>(name, std::make_shared<spdlog::sinks::stderr_sink_mt>());
      l->set_level(spdlog::level::debug);
      spdlog::register_logger(l);
    } else {
      auto l = std::make_shared<spdlog::logger>(name);
      l->set_level(spdlog::level::off);
      spdlog::register_logger(l);
    }
  }
  return name;
}

inline void expect_accounting(const Stats& s) {
  EXPECT_EQ(s.received, s.ok + s.failed + s.cancelled + s.rejected) << s.to_string();
}

}  // namespace amsg::test

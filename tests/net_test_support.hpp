#pragma once
// Helpers shared by the transport tests (node pairs and child processes).

#include <gtest/gtest.h>

#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <atomic>
#include <charconv>
#include <chrono>
#include <future>
#include <string>
#include <string_view>

#include "amsg/net/node.hpp"
#include "test_support.hpp"

namespace amsg::test {

inline Payload bytes(std::string_view s) { return Payload::copy_of(s); }

// A node that only connects out, quiet, on a 1-thread pool.
inline net::NodeOptions client_options(const std::string& log) {
  net::NodeOptions o;
  o.manager.logger_name = quiet_logger(log);
  o.manager.threads = 1;
  return o;
}

// The handlers the transport tests serve: echo (answers its payload), fail
// (throws its payload), sleep (payload: milliseconds, co_awaited) and count
// (adds one to *counter). `runs`, when set, counts every handler start.
inline void add_handlers(Manager& m, std::atomic<int>* counter = nullptr, std::atomic<int>* runs = nullptr) {
  m.register_handler("echo", make_handler([runs](Message& msg) -> asio::awaitable<void> {
                       if (runs != nullptr) runs->fetch_add(1);
                       msg.response = std::move(msg.payload);
                       co_return;
                     }));
  m.register_handler("fail", make_handler([runs](Message& msg) -> asio::awaitable<void> {
                       if (runs != nullptr) runs->fetch_add(1);
                       throw std::runtime_error(std::string{msg.payload.as_string_view()});
                       co_return;
                     }));
  m.register_handler("sleep", make_handler([runs](Message& msg) -> asio::awaitable<void> {
                       if (runs != nullptr) runs->fetch_add(1);
                       int ms = 0;
                       const auto t = msg.payload.as_string_view();
                       std::from_chars(t.data(), t.data() + t.size(), ms);
                       asio::steady_timer timer{co_await asio::this_coro::executor, std::chrono::milliseconds{ms}};
                       co_await timer.async_wait(asio::use_awaitable);
                     }));
  m.register_handler("count", make_handler([counter, runs](Message&) -> asio::awaitable<void> {
                       if (runs != nullptr) runs->fetch_add(1);
                       if (counter != nullptr) counter->fetch_add(1);
                       co_return;
                     }));
}

// The call's outcome, or a test failure when none arrives within `timeout`.
inline Notification get(std::future<Notification>& f, std::chrono::milliseconds timeout = 20s) {
  if (f.wait_for(timeout) != std::future_status::ready) {
    ADD_FAILURE() << "no outcome within " << timeout.count() << " ms";
    return Notification{"", Outcome::error, "test: no outcome", ""};
  }
  return f.get();
}

}  // namespace amsg::test

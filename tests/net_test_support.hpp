#pragma once
// Helpers shared by the transport tests (node pairs and child processes).

#include <gtest/gtest.h>

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

// The call's outcome, or a test failure when none arrives within `timeout`.
inline Notification get(std::future<Notification>& f, std::chrono::milliseconds timeout = 20s) {
  if (f.wait_for(timeout) != std::future_status::ready) {
    ADD_FAILURE() << "no outcome within " << timeout.count() << " ms";
    return Notification{"", Outcome::error, "test: no outcome", ""};
  }
  return f.get();
}

}  // namespace amsg::test

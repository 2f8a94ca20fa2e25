#pragma once
// At most one line per second for a noisy condition; says how many were skipped.

#include <chrono>
#include <cstdint>
#include <string>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace amsg::net {

class RateLimitedLog {
 public:
  template <typename... Args>
  void warn(spdlog::logger& log, fmt::format_string<Args...> f, Args&&... args) {
    const auto now = std::chrono::steady_clock::now();
    if (last_ != std::chrono::steady_clock::time_point{} && now - last_ < std::chrono::seconds{1}) {
      ++suppressed_;
      return;
    }
    last_ = now;
    const std::string text = fmt::format(f, std::forward<Args>(args)...);
    if (suppressed_ != 0) {
      log.warn("{} ({} similar messages suppressed)", text, suppressed_);
    } else {
      log.warn("{}", text);
    }
    suppressed_ = 0;
  }

 private:
  std::chrono::steady_clock::time_point last_{};
  std::uint64_t suppressed_ = 0;
};

}  // namespace amsg::net

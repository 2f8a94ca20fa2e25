#pragma once
// A one-line progress bar on stderr (count, rate, time left), drawn by its own
// thread, only when stderr is a terminal; otherwise it draws nothing at all.

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

namespace amsg::tool {

class Progress {
 public:
  Progress(bool enabled, std::string label, std::size_t total)
      : enabled_{enabled && isatty(STDERR_FILENO) != 0}, label_{std::move(label)}, total_{total} {
    if (enabled_) thread_ = std::thread{[this] { loop(); }};
  }
  ~Progress() {
    done_ = true;
    if (thread_.joinable()) thread_.join();
    if (enabled_) std::fprintf(stderr, "\r\033[K");
  }
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  std::atomic<std::size_t> count{0};

 private:
  void loop() {
    const auto t0 = std::chrono::steady_clock::now();
    while (!done_) {
      const std::size_t c = count.load(std::memory_order_relaxed);
      const double f = total_ ? static_cast<double>(c) / static_cast<double>(total_) : 0.0;
      const int width = 30;
      const int filled = static_cast<int>(f * width);
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double rate = secs > 0 ? static_cast<double>(c) / secs : 0.0;
      std::string left = "--";
      if (rate > 0 && c <= total_)
        left = std::to_string(static_cast<long>(static_cast<double>(total_ - c) / rate)) + " s";
      std::fprintf(stderr, "\r%-10s [%s%s] %5.1f%% %zu/%zu  %.0f/s  %s left\033[K", label_.c_str(),
                   std::string(static_cast<std::size_t>(filled), '#').c_str(),
                   std::string(static_cast<std::size_t>(width - filled), ' ').c_str(), f * 100, c, total_, rate,
                   left.c_str());
      std::fflush(stderr);
      std::this_thread::sleep_for(std::chrono::milliseconds{150});
    }
  }
  bool enabled_;
  std::string label_;
  std::size_t total_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

}  // namespace amsg::tool

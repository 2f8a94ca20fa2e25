#include "detail/ticks.hpp"

#include <atomic>
#include <mutex>
#include <thread>

namespace amsg::detail {
namespace {
using Clock = std::chrono::steady_clock;
struct Reference {
  std::uint64_t ticks;
  Clock::time_point time;
};
}  // namespace

double ns_per_tick() noexcept {
#if defined(__x86_64__)
  static const Reference kStart{ticks(), Clock::now()};
  static std::mutex mutex;
  static double ratio = 0;
  std::lock_guard lock{mutex};
  auto elapsed = Clock::now() - kStart.time;
  while (elapsed < std::chrono::milliseconds{2}) {
    std::this_thread::yield();
    elapsed = Clock::now() - kStart.time;
  }
  const std::uint64_t now_ticks = ticks();
  const auto now = Clock::now();
  if (now_ticks > kStart.ticks) {
    ratio = static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(now - kStart.time).count()) /
            static_cast<double>(now_ticks - kStart.ticks);
  }
  return ratio > 0 ? ratio : 1.0;
#else
  return 1.0;
#endif
}

}  // namespace amsg::detail

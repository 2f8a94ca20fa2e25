#pragma once
// EventCount: lets plain threads wait for a condition that other threads make
// true, without a lock on the notifying side. A notifier pays one fence and one
// load when nobody waits; a futex wake only when a thread is really parked.
// Optional spinning before parking trades CPU for wake-up latency.

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <ctime>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace amsg::detail {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

class EventCount {
 public:
  // Call after making the condition true.
  void notify_all() noexcept {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (waiters_.load(std::memory_order_relaxed) == 0) return;
    epoch_.fetch_add(1, std::memory_order_release);
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&epoch_), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr,
            nullptr, 0);
  }

  [[nodiscard]] bool has_waiters() const noexcept { return waiters_.load(std::memory_order_relaxed) != 0; }

  // Waits until ready() is true or the deadline passes; returns ready()'s last value.
  template <typename Ready>
  bool wait_until(Ready&& ready, std::chrono::steady_clock::time_point deadline,
                  std::chrono::microseconds spin = {}) {
    using clock = std::chrono::steady_clock;
    if (ready()) return true;
    if (spin.count() > 0) {
      const auto spin_end = clock::now() + spin;
      do {
        for (int i = 0; i < 64; ++i) {
          if (ready()) return true;
          cpu_relax();
        }
      } while (clock::now() < spin_end);
    }
    for (;;) {
      waiters_.fetch_add(1, std::memory_order_seq_cst);
      const std::uint32_t epoch = epoch_.load(std::memory_order_acquire);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      if (ready()) {
        waiters_.fetch_sub(1, std::memory_order_relaxed);
        return true;
      }
      const auto now = clock::now();
      if (now >= deadline) {
        waiters_.fetch_sub(1, std::memory_order_relaxed);
        return false;
      }
      const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - now);
      timespec ts{};
      ts.tv_sec = static_cast<time_t>(left.count() / 1'000'000'000);
      ts.tv_nsec = static_cast<long>(left.count() % 1'000'000'000);
      const bool forever = deadline == clock::time_point::max();
      syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&epoch_), FUTEX_WAIT_PRIVATE, epoch,
              forever ? nullptr : &ts, nullptr, 0);
      waiters_.fetch_sub(1, std::memory_order_relaxed);
      if (ready()) return true;
    }
  }

  template <typename Ready>
  void wait(Ready&& ready, std::chrono::microseconds spin = {}) {
    wait_until(ready, std::chrono::steady_clock::time_point::max(), spin);
  }

 private:
  std::atomic<std::uint32_t> epoch_{0};
  std::atomic<std::uint32_t> waiters_{0};
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
};

}  // namespace amsg::detail

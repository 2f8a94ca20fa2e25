#pragma once
// EventCount: lets plain threads wait for a condition that other threads make
// true, without a lock on the notifying side. A notifier pays one fence and one
// load when nobody waits; a futex wake only when a thread is really parked.
// Optional spinning before parking trades CPU for wake-up latency.

#include <atomic>
#include <bit>
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
  // Call after making the condition true. Only the first notifier after a thread
  // went to sleep pays for the futex wake; the rest see no waiters.
  void notify_all() noexcept {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    std::uint64_t state = state_.load(std::memory_order_relaxed);
    for (;;) {
      if ((state & kWaiterMask) == 0) return;
      const std::uint64_t next = (state & ~kWaiterMask) + kEpochOne;  // new epoch, no waiters
      if (state_.compare_exchange_weak(state, next, std::memory_order_acq_rel, std::memory_order_relaxed)) break;
    }
    syscall(SYS_futex, epoch_word(), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
  }

  [[nodiscard]] bool has_waiters() const noexcept {
    return (state_.load(std::memory_order_relaxed) & kWaiterMask) != 0;
  }

  // Waits until ready() is true or the deadline passes; returns ready()'s last value.
  template <typename Ready>
  bool wait_until(Ready&& ready, std::chrono::steady_clock::time_point deadline, std::chrono::microseconds spin = {}) {
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
      const std::uint64_t registered = state_.fetch_add(1, std::memory_order_seq_cst) + 1;
      const auto epoch = static_cast<std::uint32_t>(registered >> 32);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      if (ready()) {
        cancel_wait(epoch);
        return true;
      }
      const auto now = clock::now();
      if (now >= deadline) {
        cancel_wait(epoch);
        return false;
      }
      const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - now);
      timespec ts{};
      ts.tv_sec = static_cast<time_t>(left.count() / 1'000'000'000);
      ts.tv_nsec = static_cast<long>(left.count() % 1'000'000'000);
      const bool forever = deadline == clock::time_point::max();
      syscall(SYS_futex, epoch_word(), FUTEX_WAIT_PRIVATE, epoch, forever ? nullptr : &ts, nullptr, 0);
      cancel_wait(epoch);
      if (ready()) return true;
    }
  }

  template <typename Ready>
  void wait(Ready&& ready, std::chrono::microseconds spin = {}) {
    wait_until(ready, std::chrono::steady_clock::time_point::max(), spin);
  }

 private:
  static constexpr std::uint64_t kWaiterMask = 0xffff'ffffULL;
  static constexpr std::uint64_t kEpochOne = std::uint64_t{1} << 32;

  // Removes our registration unless a notifier already did (it moved the epoch on).
  void cancel_wait(std::uint32_t epoch) noexcept {
    std::uint64_t state = state_.load(std::memory_order_relaxed);
    while (static_cast<std::uint32_t>(state >> 32) == epoch && (state & kWaiterMask) != 0) {
      if (state_.compare_exchange_weak(state, state - 1, std::memory_order_relaxed)) return;
    }
  }

  // The futex word is the epoch: the high half of the state (little-endian layout).
  std::uint32_t* epoch_word() noexcept { return reinterpret_cast<std::uint32_t*>(&state_) + 1; }

  // High 32 bits: epoch, bumped by each notify that found waiters. Low 32: waiters.
  std::atomic<std::uint64_t> state_{0};
  static_assert(sizeof(std::atomic<std::uint64_t>) == sizeof(std::uint64_t));
  static_assert(std::endian::native == std::endian::little, "the futex word is the high half of state_");
};

}  // namespace amsg::detail

#pragma once
// A bounded multi-producer multi-consumer ring holding elements by value
// (D. Vyukov's sequence-numbered cells), plus a close bit kept in the tail
// counter so that "closed" and "accepted" are decided by the same atomic step:
// no push can slip in after close() returns.

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <utility>

namespace amsg::detail {

inline constexpr std::size_t kCacheLine = 64;

enum class PushResult : std::uint8_t { ok, full, closed };

template <typename T>
class BoundedQueue {
 public:
  explicit BoundedQueue(std::size_t capacity)
      : mask_{std::bit_ceil(capacity < 2 ? std::size_t{2} : capacity) - 1},
        cells_{std::make_unique<Cell[]>(mask_ + 1)} {
    for (std::size_t i = 0; i <= mask_; ++i) cells_[i].seq.store(i, std::memory_order_relaxed);
  }
  BoundedQueue(const BoundedQueue&) = delete;
  BoundedQueue& operator=(const BoundedQueue&) = delete;
  ~BoundedQueue() {
    T discard;
    while (try_pop(discard)) {
    }
  }

  // Moves from `value` only when the result is ok.
  PushResult try_push(T& value) noexcept {
    std::uint64_t pos = tail_.load(std::memory_order_relaxed);
    Cell* cell = nullptr;
    for (;;) {
      if ((pos & kClosedBit) != 0) return PushResult::closed;
      cell = &cells_[pos & mask_];
      const std::uint64_t seq = cell->seq.load(std::memory_order_acquire);
      const auto diff = static_cast<std::int64_t>(seq - pos);
      if (diff == 0) {
        if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) break;
      } else if (diff < 0) {
        const std::uint64_t now = tail_.load(std::memory_order_relaxed);
        if (now == pos) return PushResult::full;
        pos = now;
      } else {
        pos = tail_.load(std::memory_order_relaxed);
      }
    }
    ::new (static_cast<void*>(cell->storage)) T(std::move(value));
    cell->seq.store(pos + 1, std::memory_order_release);
    return PushResult::ok;
  }

  bool try_pop(T& out) noexcept {
    std::uint64_t pos = head_.load(std::memory_order_relaxed);
    Cell* cell = nullptr;
    for (;;) {
      cell = &cells_[pos & mask_];
      const std::uint64_t seq = cell->seq.load(std::memory_order_acquire);
      const auto diff = static_cast<std::int64_t>(seq - (pos + 1));
      if (diff == 0) {
        if (head_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) break;
      } else if (diff < 0) {
        return false;
      } else {
        pos = head_.load(std::memory_order_relaxed);
      }
    }
    T* item = std::launder(reinterpret_cast<T*>(cell->storage));
    out = std::move(*item);
    item->~T();
    cell->seq.store(pos + mask_ + 1, std::memory_order_release);
    return true;
  }

  // After close() every try_push returns closed; items already in stay poppable.
  void close() noexcept { tail_.fetch_or(kClosedBit, std::memory_order_seq_cst); }
  [[nodiscard]] bool closed() const noexcept { return (tail_.load(std::memory_order_acquire) & kClosedBit) != 0; }
  // Total pushes ever accepted.
  [[nodiscard]] std::uint64_t pushed() const noexcept { return tail_.load(std::memory_order_acquire) & ~kClosedBit; }
  [[nodiscard]] std::uint64_t popped() const noexcept { return head_.load(std::memory_order_acquire); }
  // Accepted and not yet popped (including pushes still being written).
  [[nodiscard]] std::size_t size() const noexcept {
    const std::uint64_t head = popped();
    const std::uint64_t tail = pushed();
    return tail > head ? static_cast<std::size_t>(tail - head) : 0;
  }
  [[nodiscard]] bool empty() const noexcept { return size() == 0; }
  [[nodiscard]] bool full() const noexcept { return size() > mask_; }
  [[nodiscard]] std::size_t capacity() const noexcept { return mask_ + 1; }

 private:
  static constexpr std::uint64_t kClosedBit = std::uint64_t{1} << 63;

  struct alignas(kCacheLine) Cell {
    std::atomic<std::uint64_t> seq{0};
    alignas(T) unsigned char storage[sizeof(T)];
  };

  const std::size_t mask_;
  std::unique_ptr<Cell[]> cells_;
  alignas(kCacheLine) std::atomic<std::uint64_t> tail_{0};
  alignas(kCacheLine) std::atomic<std::uint64_t> head_{0};
};

}  // namespace amsg::detail

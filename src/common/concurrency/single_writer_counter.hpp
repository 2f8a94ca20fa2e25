#pragma once

#include <atomic>
#include <cstdint>

namespace amsg::detail {

// A counter with one writer at a time: a relaxed load and store, no locked RMW.
class SingleWriterCounter {
 public:
  void add(std::uint64_t n = 1) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }
  void reset() noexcept { v_.store(0, std::memory_order_relaxed); }  // by the writer

 private:
  std::atomic<std::uint64_t> v_{0};
};

}  // namespace amsg::detail

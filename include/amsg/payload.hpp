#pragma once
// amsg::Payload: the bytes a message carries.
//
// A Payload owns one contiguous buffer. It is move-only: moving it through the
// runtime (send -> inbox -> handler) moves a pointer and never copies the bytes.
// Small buffers come from a size-classed pool with per-thread caches, because a
// buffer is usually allocated on the sending thread and freed on a worker thread
// (cross-thread malloc/free was the largest cost in earlier designs).
//
// Thread-safety: a Payload is a value; distinct objects may be used from
// different threads, one object needs external synchronisation.

#include <cstddef>
#include <span>
#include <string_view>

#include "amsg/export.hpp"

namespace amsg {

class AMSG_EXPORT Payload {
 public:
  Payload() noexcept = default;
  // A buffer of `size` bytes, uninitialised.
  explicit Payload(std::size_t size);
  // A buffer holding a copy of `bytes` (the one explicit copy: from user memory in).
  static Payload copy_of(std::span<const std::byte> bytes);
  static Payload copy_of(std::string_view text);

  Payload(Payload&& other) noexcept : data_{other.data_}, size_{other.size_} {
    other.data_ = nullptr;
    other.size_ = 0;
  }
  Payload& operator=(Payload&& other) noexcept {
    if (this != &other) {
      release();
      data_ = other.data_;
      size_ = other.size_;
      other.data_ = nullptr;
      other.size_ = 0;
    }
    return *this;
  }
  Payload(const Payload&) = delete;
  Payload& operator=(const Payload&) = delete;
  ~Payload() { release(); }

  [[nodiscard]] std::byte* data() noexcept { return data_; }
  [[nodiscard]] const std::byte* data() const noexcept { return data_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] std::span<std::byte> bytes() noexcept { return {data_, size_}; }
  [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
  // The bytes viewed as text (no validation; payloads are opaque bytes).
  [[nodiscard]] std::string_view as_string_view() const noexcept {
    return {reinterpret_cast<const char*>(data_), size_};
  }

 private:
  void release() noexcept;

  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace amsg

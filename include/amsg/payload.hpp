#pragma once
/// @file
/// amsg::Payload: the bytes a message carries.
///
/// A Payload owns one contiguous buffer. It is move-only: moving it through the
/// runtime (send -> inbox -> handler) moves a pointer and never copies the bytes.
/// Small buffers come from a size-classed pool with per-thread caches, because a
/// buffer is usually allocated on the sending thread and freed on a worker thread
/// (cross-thread malloc/free was the largest cost in earlier designs). Of large
/// buffers (64 KiB to 8 MiB), the last freed are kept for the next of the same
/// size, at most 64 buffers and 64 MiB per process: memory fresh from the kernel
/// costs a page fault per page on first touch.
///
/// Thread-safety: a Payload is a value; distinct objects may be used from
/// different threads, one object needs external synchronisation.

#include <cstddef>
#include <span>
#include <string_view>

#include "amsg/export.hpp"

namespace amsg {

/// The bytes a message carries: one owned buffer, moved, never copied by the runtime.
class AMSG_EXPORT Payload {
 public:
  /// An empty payload (no buffer).
  Payload() noexcept = default;
  /// A buffer of `size` bytes, uninitialised.
  explicit Payload(std::size_t size);
  /// A buffer holding a copy of `bytes` (the one explicit copy: from user memory in).
  static Payload copy_of(std::span<const std::byte> bytes);
  /// A buffer holding a copy of `text`.
  static Payload copy_of(std::string_view text);

  /// Takes the buffer; `other` is left empty.
  Payload(Payload&& other) noexcept : data_{other.data_}, size_{other.size_} {
    other.data_ = nullptr;
    other.size_ = 0;
  }
  /// Frees this buffer and takes `other`'s; `other` is left empty.
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

  /// The first byte (null when empty).
  [[nodiscard]] std::byte* data() noexcept { return data_; }
  /// The first byte (null when empty).
  [[nodiscard]] const std::byte* data() const noexcept { return data_; }
  /// The number of bytes.
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  /// Whether there are no bytes.
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  /// The bytes, writable.
  [[nodiscard]] std::span<std::byte> bytes() noexcept { return {data_, size_}; }
  /// The bytes.
  [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
  /// The bytes viewed as text (no validation; payloads are opaque bytes).
  [[nodiscard]] std::string_view as_string_view() const noexcept {
    return {reinterpret_cast<const char*>(data_), size_};
  }

 private:
  void release() noexcept;

  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace amsg

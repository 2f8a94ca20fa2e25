#pragma once
// CallTable: the calls a node waits on, by call id.
//
// A call id names a slot and one use of it (the slot's generation in the high
// half), so a lookup is an index and a compare instead of a hash, a freed slot
// is reused without allocating, and a late reply to a call that has ended finds
// nothing: its slot is free or holds a later call with another id.
// Ids are never 0 (0 means "no reply wanted" on the wire). A slot's generation wraps after
// 2^31 uses; a reply would have to arrive that late to be mistaken.
// Single-threaded: the session uses it on its executor only.

#include <cstdint>
#include <utility>
#include <vector>

namespace amsg::net {

template <typename T>
class CallTable {
 public:
  // A new call: its id and its value (default-constructed, to fill in).
  std::pair<std::uint64_t, T&> add() {
    std::uint32_t index = 0;
    if (free_.empty()) {
      index = static_cast<std::uint32_t>(slots_.size());
      slots_.emplace_back();
    } else {
      index = free_.back();
      free_.pop_back();
    }
    Slot& s = slots_[index];
    s.generation = (s.generation + 1U) & kGenerationMask;
    if (s.generation == 0) s.generation = 1;
    s.id = (static_cast<std::uint64_t>(s.generation) << 32U) | index;
    ++live_;
    return {s.id, s.value};
  }

  // The waiting call with this id, or nullptr.
  [[nodiscard]] T* find(std::uint64_t id) noexcept {
    const auto index = static_cast<std::uint32_t>(id & 0xffffffffU);
    if (id == 0 || index >= slots_.size() || slots_[index].id != id) return nullptr;
    return &slots_[index].value;
  }
  [[nodiscard]] bool contains(std::uint64_t id) noexcept { return find(id) != nullptr; }

  // Moves the call's value out and frees its slot. The id must be waiting (find()).
  T take(std::uint64_t id) {
    const auto index = static_cast<std::uint32_t>(id & 0xffffffffU);
    Slot& s = slots_[index];
    T value = std::move(s.value);
    s.value = T{};
    s.id = 0;
    free_.push_back(index);
    --live_;
    return value;
  }

  [[nodiscard]] std::size_t size() const noexcept { return live_; }
  [[nodiscard]] bool empty() const noexcept { return live_ == 0; }

  // The ids of every waiting call (to end them; take() while iterating is not allowed).
  [[nodiscard]] std::vector<std::uint64_t> ids() const {
    std::vector<std::uint64_t> out;
    out.reserve(live_);
    for (const Slot& s : slots_) {
      if (s.id != 0) out.push_back(s.id);
    }
    return out;
  }

 private:
  static constexpr std::uint32_t kGenerationMask = 0x7fffffffU;
  struct Slot {
    std::uint64_t id = 0;  // 0: free
    std::uint32_t generation = 0;
    T value{};
  };
  std::vector<Slot> slots_;
  std::vector<std::uint32_t> free_;
  std::size_t live_ = 0;
};

}  // namespace amsg::net

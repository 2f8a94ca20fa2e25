#pragma once
// CallIndex: the listener's in-flight calls by (client, call id), so that a
// CANCEL finds its call in constant time instead of scanning every slot (a
// client sending CANCELs must not cost this node more than any other frame).
// A fixed open-addressing table, sized once: nothing allocated per call. The
// hash is seeded per table at random, so that a client cannot choose call ids
// that pile up in one run of the table.

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <random>
#include <string_view>
#include <vector>

namespace amsg::net {

class CallIndex {
 public:
  static constexpr std::uint32_t kNotFound = ~std::uint32_t{0};

  // Room for `slots` calls at once, the table at most half full.
  explicit CallIndex(std::size_t slots)
      : entries_(std::bit_ceil(std::max<std::size_t>(2 * slots, 2))),
        mask_{entries_.size() - 1},
        seed_{(std::uint64_t{std::random_device{}()} << 32U) ^ std::random_device{}()} {}

  [[nodiscard]] std::uint64_t hash(std::string_view client, std::uint64_t call_id) const noexcept {
    std::uint64_t h = std::hash<std::string_view>{}(client) ^ seed_ ^ (call_id * 0x9E3779B97F4A7C15ULL);
    h ^= h >> 30U;  // splitmix64's finalizer: every input bit moves the low (index) bits
    h *= 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 27U;
    h *= 0x94D049BB133111EBULL;
    return h ^ (h >> 31U);
  }

  void insert(std::uint64_t h, std::uint32_t slot) noexcept {
    std::size_t i = h & mask_;
    while (entries_[i].slot != kNotFound) i = (i + 1) & mask_;
    entries_[i] = Entry{h, slot};
  }

  // The slot of the call hashed to `h` for which `is_it(slot)` holds, or kNotFound.
  template <class Match>
  [[nodiscard]] std::uint32_t find(std::uint64_t h, Match&& is_it) const {
    for (std::size_t i = h & mask_; entries_[i].slot != kNotFound; i = (i + 1) & mask_) {
      if (entries_[i].hash == h && is_it(entries_[i].slot)) return entries_[i].slot;
    }
    return kNotFound;
  }

  // Removes `slot` (inserted with `h`); later entries of its run move back
  // (no tombstones, so lookups never slow down as calls come and go).
  void erase(std::uint64_t h, std::uint32_t slot) noexcept {
    std::size_t i = h & mask_;
    while (entries_[i].slot != slot) {
      if (entries_[i].slot == kNotFound) return;  // not indexed
      i = (i + 1) & mask_;
    }
    for (std::size_t j = (i + 1) & mask_; entries_[j].slot != kNotFound; j = (j + 1) & mask_) {
      const std::size_t home = entries_[j].hash & mask_;
      // entries_[j] may fill the hole at i when its home is not in (i, j] (cyclically).
      if (((j - home) & mask_) >= ((j - i) & mask_)) {
        entries_[i] = entries_[j];
        i = j;
      }
    }
    entries_[i] = Entry{};
  }

 private:
  struct Entry {
    std::uint64_t hash = 0;
    std::uint32_t slot = kNotFound;
  };
  std::vector<Entry> entries_;
  std::size_t mask_;
  std::uint64_t seed_;
};

}  // namespace amsg::net

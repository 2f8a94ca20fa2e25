#pragma once
// CallIndex: one client's in-flight calls at the listener, by call id, so that
// a CANCEL finds its call without scanning every slot of the node (a client
// sending CANCELs must not cost this node more than any other frame). One per
// client, so that it stays as small as that client's calls in flight: an
// open-addressing table that doubles when half full, and that the listener's
// heartbeat tick compacts to at most 4 entries per call in flight (at most once
// per heartbeat interval, so bursts that come and go do not reallocate it each
// time): it allocates only when calls in flight outgrow it, never per call.
// The hash is seeded at random per process, so that a client cannot choose
// call ids that pile up in one run of the table.

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <new>
#include <random>
#include <vector>

namespace amsg::net {

class CallIndex {
 public:
  static constexpr std::uint32_t kNotFound = ~std::uint32_t{0};
  static constexpr std::size_t kSmallest = 16;  // entries, once a first call came

  // The slot of call `call_id` (one of them, if a misbehaving client sent that
  // id twice), or kNotFound.
  [[nodiscard]] std::uint32_t find(std::uint64_t call_id) const noexcept {
    if (entries_.empty()) return kNotFound;
    for (std::size_t i = home(call_id); entries_[i].slot != kNotFound; i = (i + 1) & mask_) {
      if (entries_[i].call_id == call_id) return entries_[i].slot;
    }
    return kNotFound;
  }

  // May throw std::bad_alloc (growing), and then indexes nothing.
  void insert(std::uint64_t call_id, std::uint32_t slot) {
    if (2 * (count_ + 1) > entries_.size()) rehash(std::vector<Entry>(std::max(kSmallest, 2 * entries_.size())));
    place(Entry{call_id, slot});
    ++count_;
  }

  // Removes `slot` (indexed as call `call_id`); later entries of its run move
  // back (no tombstones, so lookups never slow down as calls come and go).
  void erase(std::uint64_t call_id, std::uint32_t slot) noexcept {
    if (entries_.empty()) return;
    std::size_t i = home(call_id);
    while (entries_[i].slot != slot) {
      if (entries_[i].slot == kNotFound) return;  // not indexed
      i = (i + 1) & mask_;
    }
    for (std::size_t j = (i + 1) & mask_; entries_[j].slot != kNotFound; j = (j + 1) & mask_) {
      // entries_[j] may fill the hole at i when its home is not in (i, j] (cyclically).
      if (((j - home(entries_[j].call_id)) & mask_) >= ((j - i) & mask_)) {
        entries_[i] = entries_[j];
        i = j;
      }
    }
    entries_[i] = Entry{};
    --count_;
  }

  // Shrinks a table that is under an eighth full to at most 4 entries per
  // call (at least kSmallest); one that cannot allocate stays as it is.
  void compact() noexcept {
    if (entries_.size() <= kSmallest || 8 * count_ >= entries_.size()) return;
    std::vector<Entry> smaller;
    try {
      smaller.resize(std::max(kSmallest, std::bit_ceil(4 * count_)));
    } catch (const std::bad_alloc&) {
      return;
    }
    rehash(std::move(smaller));
  }

  [[nodiscard]] std::size_t size() const noexcept { return count_; }
  [[nodiscard]] std::size_t capacity() const noexcept { return entries_.size(); }
  // Where the table's probe for `call_id` starts (for tests: runs are built from it).
  [[nodiscard]] std::size_t home_of(std::uint64_t call_id) const noexcept { return home(call_id); }

 private:
  struct Entry {
    std::uint64_t call_id = 0;
    std::uint32_t slot = kNotFound;
  };

  static std::uint64_t seed() {
    static const std::uint64_t kSeed = [] {
      std::random_device device;
      return (std::uint64_t{device()} << 32U) ^ device();
    }();
    return kSeed;
  }

  // splitmix64's finalizer over the seeded id: every bit of the id moves the
  // low (index) bits, and without the seed the index cannot be predicted.
  [[nodiscard]] std::size_t home(std::uint64_t call_id) const noexcept {
    std::uint64_t h = call_id ^ seed_;
    h ^= h >> 30U;
    h *= 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 27U;
    h *= 0x94D049BB133111EBULL;
    return (h ^ (h >> 31U)) & mask_;
  }

  void place(const Entry& e) noexcept {
    std::size_t i = home(e.call_id);
    while (entries_[i].slot != kNotFound) i = (i + 1) & mask_;
    entries_[i] = e;
  }

  // Moves every entry into `table` (empty, a power of two, more than twice
  // the entries), which becomes the table.
  void rehash(std::vector<Entry>&& table) noexcept {
    table.swap(entries_);
    mask_ = entries_.size() - 1;
    for (const Entry& e : table) {
      if (e.slot != kNotFound) place(e);
    }
  }

  std::vector<Entry> entries_;
  std::size_t mask_ = 0;
  std::size_t count_ = 0;
  std::uint64_t seed_ = seed();
};

}  // namespace amsg::net

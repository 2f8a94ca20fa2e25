// CallTable: the node's table of waiting calls, keyed by call id.

#include "session/call_table.hpp"

#include "session/call_index.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <set>
#include <string>

namespace amsg::net {
namespace {

TEST(CallTable, IdsAreNonZeroUniqueAndKeepBit63Clear) {
  CallTable<std::string> t;
  std::set<std::uint64_t> seen;
  for (int round = 0; round < 3; ++round) {
    std::vector<std::uint64_t> ids;
    for (int i = 0; i < 100; ++i) {
      auto [id, value] = t.add();
      value = std::to_string(i);
      EXPECT_NE(id, 0U);
      EXPECT_EQ(id >> 63U, 0U);
      EXPECT_TRUE(seen.insert(id).second) << "id reused: " << id;
      ids.push_back(id);
    }
    EXPECT_EQ(t.size(), 100U);
    for (const auto id : ids) (void)t.take(id);  // slots are reused next round, ids are not
    EXPECT_TRUE(t.empty());
  }
}

TEST(CallTable, FindAndTakeReturnTheCallsValue) {
  CallTable<std::string> t;
  auto [a, va] = t.add();
  va = "a";
  auto [b, vb] = t.add();
  vb = "b";
  ASSERT_NE(t.find(a), nullptr);
  EXPECT_EQ(*t.find(a), "a");
  EXPECT_EQ(t.take(b), "b");
  EXPECT_EQ(t.find(b), nullptr);
  EXPECT_EQ(t.size(), 1U);
  EXPECT_EQ(t.ids(), std::vector<std::uint64_t>{a});
}

TEST(CallTable, AnEndedCallsIdFindsNothingAfterItsSlotIsReused) {
  CallTable<std::string> t;
  auto [old_id, old_value] = t.add();
  old_value = "old";
  (void)t.take(old_id);
  auto [new_id, new_value] = t.add();  // the same slot, a new use
  new_value = "new";
  EXPECT_EQ(old_id & 0xffffffffU, new_id & 0xffffffffU);
  EXPECT_NE(old_id, new_id);
  EXPECT_EQ(t.find(old_id), nullptr);  // a late reply to the old call is not taken for the new one
  EXPECT_FALSE(t.contains(old_id));
  EXPECT_EQ(*t.find(new_id), "new");
}

TEST(CallTable, UnknownIdsFindNothing) {
  CallTable<int> t;
  EXPECT_EQ(t.find(0), nullptr);
  EXPECT_EQ(t.find(12345), nullptr);
  auto [id, v] = t.add();
  v = 1;
  EXPECT_EQ(t.find(id + 1), nullptr);              // another slot
  EXPECT_EQ(t.find(id + (1ULL << 32U)), nullptr);  // another use of the same slot
}

TEST(CallTable, TakeLeavesTheSlotEmptyForItsNextUse) {
  CallTable<std::string> t;
  auto [id, v] = t.add();
  v = std::string(100, 'x');
  (void)t.take(id);
  auto [id2, v2] = t.add();
  EXPECT_TRUE(v2.empty());  // a new call starts from a default value
  (void)id2;
}

// CallIndex against a list of what is indexed, through random inserts and
// erases from empty (so the table grows), with the same call id twice, as a
// misbehaving client may send it (a lookup then finds one of the two).
TEST(CallIndex, FindsEveryIndexedCallAndNoOtherThroughRandomInsertsAndErases) {
  constexpr std::uint32_t kSlots = 64;
  CallIndex index;
  struct Entry {
    std::uint64_t call_id = 0;
    bool used = false;
  };
  std::vector<Entry> slots(kSlots);
  std::uint64_t rng = 12345;
  auto next = [&rng] {
    rng ^= rng << 13U;
    rng ^= rng >> 7U;
    rng ^= rng << 17U;
    return rng;
  };
  auto check = [&](std::uint64_t call_id, int step) {
    const std::uint32_t found = index.find(call_id);
    const bool indexed =
        std::any_of(slots.begin(), slots.end(), [&](const Entry& e) { return e.used && e.call_id == call_id; });
    if (!indexed) {
      EXPECT_EQ(found, CallIndex::kNotFound) << "step " << step;
      return;
    }
    ASSERT_NE(found, CallIndex::kNotFound) << "step " << step;
    EXPECT_TRUE(slots[found].used && slots[found].call_id == call_id) << "step " << step;
  };
  for (int step = 0; step < 20000; ++step) {
    const std::uint32_t slot = next() % kSlots;
    Entry& e = slots[slot];
    if (e.used) {
      index.erase(e.call_id, slot);
      e.used = false;
      check(e.call_id, step);
    } else {
      e.call_id = 1 + next() % 96;  // few ids: now and then the same one twice
      index.insert(e.call_id, slot);
      e.used = true;
    }
    ASSERT_EQ(index.size(), static_cast<std::size_t>(
                                std::count_if(slots.begin(), slots.end(), [](const Entry& x) { return x.used; })));
    ASSERT_LE(2 * index.size(), index.capacity());
    if (step % 50 == 0) {  // as the listener's tick does
      index.compact();
      ASSERT_LE(index.capacity(), std::max<std::size_t>(CallIndex::kSmallest, 8 * index.size()));
    }
    for (std::uint32_t s = 0; s < kSlots; ++s) {
      if (slots[s].used) check(slots[s].call_id, step);
    }
    if (::testing::Test::HasFailure()) return;
  }
}

// A table that grew for a burst is compacted once the burst is over, and
// what is still in it is found.
TEST(CallIndex, CompactShrinksATableThatGrewForABurst) {
  CallIndex index;
  for (std::uint32_t slot = 0; slot < 100; ++slot) index.insert(5000 + slot, slot);
  EXPECT_EQ(index.capacity(), 256U);
  index.compact();
  EXPECT_EQ(index.capacity(), 256U) << "over an eighth full: kept";
  for (std::uint32_t slot = 0; slot < 97; ++slot) index.erase(5000 + slot, slot);
  EXPECT_EQ(index.capacity(), 256U) << "erasing never reallocates";
  index.compact();
  EXPECT_EQ(index.capacity(), CallIndex::kSmallest);
  for (std::uint32_t slot = 97; slot < 100; ++slot) EXPECT_EQ(index.find(5000 + slot), slot);
  EXPECT_EQ(index.find(5000), CallIndex::kNotFound);
}

// Runs that wrap from the table's last entry to its first, and erasing from
// them: call ids are picked by where their probe starts (the hash is seeded
// at random), in a table of 16 entries.
TEST(CallIndex, RunsThatWrapAroundTheTableEndSurviveErases) {
  for (int scenario = 0; scenario < 2; ++scenario) {
    CallIndex index;
    index.insert(0, 0);  // allocates the first 16 entries
    index.erase(0, 0);
    ASSERT_EQ(index.capacity(), 16U);
    std::uint64_t next_id = 1;
    auto id_at = [&](std::size_t home) {
      while (index.home_of(next_id) != home) ++next_id;
      return next_id++;
    };
    // Scenario 0: homes 14, 15, 15, 14, 0 (at 14, 15, 0, 1, 2); 1: homes 14, 15, 0, 15 (at 14, 15, 0, 1).
    const std::vector<std::size_t> homes =
        scenario == 0 ? std::vector<std::size_t>{14, 15, 15, 14, 0} : std::vector<std::size_t>{14, 15, 0, 15};
    std::vector<std::uint64_t> ids;
    for (std::uint32_t slot = 0; slot < homes.size(); ++slot) {
      ids.push_back(id_at(homes[slot]));
      index.insert(ids.back(), slot);
    }
    // The entry at 15 goes: those behind it, across the end, move back only
    // where their home allows (in scenario 1 the one at its home 0 stays).
    index.erase(ids[1], 1);
    EXPECT_EQ(index.find(ids[1]), CallIndex::kNotFound);
    for (std::uint32_t slot = 0; slot < ids.size(); ++slot) {
      if (slot != 1) {
        EXPECT_EQ(index.find(ids[slot]), slot) << scenario << ": " << slot;
      }
    }
    // Then the rest, one by one, first to last.
    for (std::uint32_t gone = 0; gone < ids.size(); ++gone) {
      if (gone == 1) continue;
      index.erase(ids[gone], gone);
      for (std::uint32_t slot = gone + 1; slot < ids.size(); ++slot) {
        if (slot != 1) {
          EXPECT_EQ(index.find(ids[slot]), slot) << scenario << ": " << gone << ", " << slot;
        }
      }
    }
    EXPECT_EQ(index.size(), 0U);
    // The run again, then enough calls to grow the table: all are found after the rehash.
    for (std::uint32_t slot = 0; slot < ids.size(); ++slot) index.insert(ids[slot], slot);
    for (auto slot = static_cast<std::uint32_t>(ids.size()); slot < 40; ++slot) {
      ids.push_back(1000000 + slot);  // beyond the ids picked above
      index.insert(ids.back(), slot);
    }
    EXPECT_EQ(index.capacity(), 128U);
    for (std::uint32_t slot = 0; slot < ids.size(); ++slot) EXPECT_EQ(index.find(ids[slot]), slot) << slot;
  }
}

}  // namespace
}  // namespace amsg::net

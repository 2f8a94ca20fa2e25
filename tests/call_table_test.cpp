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
// erases: equal call ids from different clients, and the same (client, call
// id) twice, as a misbehaving client may send it (a lookup then finds one of them).
TEST(CallIndex, FindsEveryIndexedCallAndNoOtherThroughRandomInsertsAndErases) {
  constexpr std::uint32_t kSlots = 64;
  CallIndex index{kSlots};
  struct Entry {
    std::string client;
    std::uint64_t call_id = 0;
    std::uint64_t hash = 0;
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
  const std::array<std::string, 3> clients{"Aa", "Ab", "Ba"};  // link byte, client name
  auto matches = [&](std::uint32_t s, const std::string& client, std::uint64_t call_id) {
    return slots[s].used && slots[s].call_id == call_id && slots[s].client == client;
  };
  auto lookup = [&](const std::string& client, std::uint64_t call_id) {
    return index.find(index.hash(client, call_id), [&](std::uint32_t s) { return matches(s, client, call_id); });
  };
  auto indexed = [&](const std::string& client, std::uint64_t call_id) {
    return std::any_of(slots.begin(), slots.end(),
                       [&](const Entry& e) { return e.used && e.client == client && e.call_id == call_id; });
  };
  for (int step = 0; step < 20000; ++step) {
    const std::uint32_t slot = next() % kSlots;
    Entry& e = slots[slot];
    if (e.used) {
      index.erase(e.hash, slot);
      e.used = false;
      const std::uint32_t found = lookup(e.client, e.call_id);
      if (indexed(e.client, e.call_id)) {
        ASSERT_NE(found, CallIndex::kNotFound) << "step " << step;
        ASSERT_TRUE(matches(found, e.client, e.call_id)) << "step " << step;
      } else {
        ASSERT_EQ(found, CallIndex::kNotFound) << "step " << step;
      }
    } else {
      e.client = clients[next() % clients.size()];
      e.call_id = 1 + next() % 24;  // few ids: the same id from several clients, sometimes twice from one
      e.hash = index.hash(e.client, e.call_id);
      index.insert(e.hash, slot);
      e.used = true;
    }
    for (std::uint32_t s = 0; s < kSlots; ++s) {
      if (!slots[s].used) continue;
      const std::uint32_t found = lookup(slots[s].client, slots[s].call_id);
      ASSERT_NE(found, CallIndex::kNotFound) << "step " << step;
      ASSERT_TRUE(matches(found, slots[s].client, slots[s].call_id)) << "step " << step;
    }
  }
}

// Runs that wrap from the table's last entry to its first, and erasing from
// them (hashes chosen so: a table for 4 calls has 8 entries).
TEST(CallIndex, RunsThatWrapAroundTheTableEndSurviveErases) {
  CallIndex index{4};
  // Entry i: hash, slot. Homes 6, 7, 7, 6, 0: they fill 6, 7, 0, 1, 2.
  const std::array<std::pair<std::uint64_t, std::uint32_t>, 5> calls{
      {{6, 0}, {7 + 8, 1}, {7 + 16, 2}, {6 + 8, 3}, {0 + 8, 4}}};
  for (const auto& [h, slot] : calls) index.insert(h, slot);
  auto find = [&](std::uint64_t h, std::uint32_t slot) {
    return index.find(h, [slot](std::uint32_t s) { return s == slot; });
  };
  for (const auto& [h, slot] : calls) ASSERT_EQ(find(h, slot), slot);
  // Erase the entry at 7 (slot 1): those behind it, across the end, move back
  // only where their home allows.
  index.erase(calls[1].first, 1);
  EXPECT_EQ(find(calls[1].first, 1), CallIndex::kNotFound);
  for (const std::size_t i : {0U, 2U, 3U, 4U}) EXPECT_EQ(find(calls[i].first, calls[i].second), calls[i].second) << i;
  // The first of the run (at 6), then the one whose home is 0.
  index.erase(calls[0].first, 0);
  index.erase(calls[4].first, 4);
  for (const std::size_t i : {2U, 3U}) EXPECT_EQ(find(calls[i].first, calls[i].second), calls[i].second) << i;
  EXPECT_EQ(find(calls[0].first, 0), CallIndex::kNotFound);
  EXPECT_EQ(find(calls[4].first, 4), CallIndex::kNotFound);
  index.erase(calls[2].first, 2);
  index.erase(calls[3].first, 3);
  for (const auto& [h, slot] : calls) EXPECT_EQ(find(h, slot), CallIndex::kNotFound);
  index.insert(5, 7);  // and the table is usable again
  EXPECT_EQ(find(5, 7), 7U);
}

// An entry already at its home just past the table's end stays there when a
// hole opens before the end; the one behind it moves into the hole.
TEST(CallIndex, AnEntryAtItsHomePastTheEndStaysWhenAHoleOpensBeforeIt) {
  CallIndex index{4};
  // Homes 6, 7, 0, 7: at 6, 7, 0 and 1.
  const std::array<std::pair<std::uint64_t, std::uint32_t>, 4> calls{{{6, 0}, {7, 1}, {0 + 8, 2}, {7 + 8, 3}}};
  for (const auto& [h, slot] : calls) index.insert(h, slot);
  auto find = [&](std::uint64_t h, std::uint32_t slot) {
    return index.find(h, [slot](std::uint32_t s) { return s == slot; });
  };
  index.erase(calls[1].first, 1);
  EXPECT_EQ(find(calls[1].first, 1), CallIndex::kNotFound);
  for (const std::size_t i : {0U, 2U, 3U}) EXPECT_EQ(find(calls[i].first, calls[i].second), calls[i].second) << i;
}

}  // namespace
}  // namespace amsg::net

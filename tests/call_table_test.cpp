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

// CallIndex against a plain map, through random inserts and erases that fill
// the table to its limit (long runs, wrap-around, equal call ids from
// different clients, and ids that collide in their hash's low bits).
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
  auto lookup = [&](const std::string& client, std::uint64_t call_id) {
    return index.find(CallIndex::hash(client, call_id), [&](std::uint32_t s) {
      return slots[s].used && slots[s].call_id == call_id && slots[s].client == client;
    });
  };
  for (int step = 0; step < 20000; ++step) {
    const std::uint32_t slot = next() % kSlots;
    Entry& e = slots[slot];
    if (e.used) {
      ASSERT_EQ(lookup(e.client, e.call_id), slot) << "step " << step;
      index.erase(e.hash, slot);
      e.used = false;
      ASSERT_EQ(lookup(e.client, e.call_id), CallIndex::kNotFound) << "step " << step;
    } else {
      e.client = clients[next() % clients.size()];
      e.call_id = 1 + next() % 40;  // few ids: the same id from several clients
      bool taken = false;
      for (const Entry& o : slots) taken |= o.used && o.client == e.client && o.call_id == e.call_id;
      if (taken) continue;  // a client's call ids are unique among its calls in flight
      e.hash = CallIndex::hash(e.client, e.call_id);
      index.insert(e.hash, slot);
      e.used = true;
    }
    if (step % 97 == 0) {
      for (std::uint32_t s = 0; s < kSlots; ++s) {
        if (slots[s].used) {
          ASSERT_EQ(lookup(slots[s].client, slots[s].call_id), s) << "step " << step;
        }
      }
    }
  }
}

}  // namespace
}  // namespace amsg::net

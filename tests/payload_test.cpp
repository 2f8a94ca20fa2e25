#include "amsg/payload.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <thread>
#include <vector>

#include "amsg/message.hpp"
#include "concurrency/sanitizers.hpp"

namespace amsg {
namespace {

TEST(Payload, EmptyByDefault) {
  Payload p;
  EXPECT_TRUE(p.empty());
  EXPECT_EQ(p.size(), 0u);
  EXPECT_EQ(p.data(), nullptr);
}

TEST(Payload, CopyOfHoldsTheBytes) {
  auto p = Payload::copy_of(std::string_view{"hello"});
  ASSERT_EQ(p.size(), 5u);
  EXPECT_EQ(p.as_string_view(), "hello");
}

TEST(Payload, MoveTransfersTheBufferWithoutCopying) {
  auto p = Payload::copy_of(std::string_view{"0123456789"});
  const std::byte* before = p.data();
  Payload q{std::move(p)};
  EXPECT_EQ(q.data(), before);
  EXPECT_TRUE(p.empty());  // NOLINT(bugprone-use-after-move): moved-from state is specified
  Message m{"t", std::move(q)};
  Message n{std::move(m)};
  EXPECT_EQ(n.payload.data(), before);
  EXPECT_EQ(n.payload.as_string_view(), "0123456789");
}

TEST(Payload, MoveAssignReleasesTheOldBuffer) {
  auto a = Payload::copy_of(std::string_view{"aaaa"});
  auto b = Payload::copy_of(std::string_view{"bbbbbbbb"});
  a = std::move(b);
  EXPECT_EQ(a.as_string_view(), "bbbbbbbb");
}

TEST(Payload, SizesAcrossEveryClassAndBeyond) {
  for (std::size_t size : {1u, 63u, 64u, 65u, 1000u, 4096u, 4097u, 1u << 20}) {
    Payload p{size};
    ASSERT_EQ(p.size(), size);
    std::memset(p.data(), 0xab, size);
    EXPECT_EQ(p.data()[size - 1], std::byte{0xab});
  }
}

// A large buffer freed is kept for the next of its size (no fresh pages to
// fault in), within a bound: many large buffers freed at once mostly go back
// to malloc, and every one still holds what is written to it.
TEST(Payload, LargeBuffersAreReusedForTheNextOfTheirSize) {
  constexpr std::size_t kMiB = std::size_t{1} << 20;
  Payload first{kMiB};
  const std::byte* where = first.data();
  first = Payload{};
  Payload again{kMiB};
#if !AMSG_UNDER_ASAN  // the pool is bypassed there, so that use-after-free stays detectable
  EXPECT_EQ(again.data(), where);
#else
  (void)where;
#endif
  again = Payload{};
  std::vector<Payload> many;
  for (int i = 0; i < 200; ++i) many.emplace_back(kMiB + static_cast<std::size_t>(i % 3));  // 200 MiB live
  for (std::size_t i = 0; i < many.size(); ++i) std::memset(many[i].data(), static_cast<int>(i), many[i].size());
  for (std::size_t i = 0; i < many.size(); ++i) {
    ASSERT_EQ(many[i].data()[many[i].size() - 1], std::byte(static_cast<unsigned char>(i)));
  }
  many.clear();                         // the cache keeps at most 64 of them; the rest are freed
  Payload huge{std::size_t{16} << 20};  // over the largest size kept: plain malloc and free
  std::memset(huge.data(), 1, huge.size());
}

// Buffers allocated on one thread and freed on another, as senders and workers do.
TEST(Payload, CrossThreadAllocateAndFree) {
  constexpr int kRounds = 20000;
  std::vector<Payload> batch;
  for (int round = 0; round < 4; ++round) {
    std::vector<Payload> made;
    made.reserve(kRounds);
    std::thread producer{[&] {
      for (int i = 0; i < kRounds; ++i) {
        Payload p{64};
        std::memcpy(p.data(), &i, sizeof i);
        made.push_back(std::move(p));
      }
    }};
    producer.join();
    std::thread consumer{[&] {
      for (int i = 0; i < kRounds; ++i) {
        int v = 0;
        std::memcpy(&v, made[static_cast<std::size_t>(i)].data(), sizeof v);
        ASSERT_EQ(v, i);
      }
      made.clear();
    }};
    consumer.join();
  }
}

}  // namespace
}  // namespace amsg

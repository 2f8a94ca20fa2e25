#include "concurrency/bounded_queue.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

namespace amsg::detail {
namespace {

TEST(BoundedQueue, FifoAndCapacityRoundedToPowerOfTwo) {
  BoundedQueue<int> q{3};
  EXPECT_EQ(q.capacity(), 4u);
  for (int i = 0; i < 4; ++i) {
    int v = i;
    ASSERT_EQ(q.try_push(v), PushResult::ok);
  }
  int extra = 99;
  EXPECT_EQ(q.try_push(extra), PushResult::full);
  EXPECT_EQ(extra, 99);
  for (int i = 0; i < 4; ++i) {
    int v = -1;
    ASSERT_TRUE(q.try_pop(v));
    EXPECT_EQ(v, i);
  }
  int v = 0;
  EXPECT_FALSE(q.try_pop(v));
}

TEST(BoundedQueue, CloseRefusesPushesButKeepsItems) {
  BoundedQueue<std::unique_ptr<int>> q{4};
  auto a = std::make_unique<int>(1);
  ASSERT_EQ(q.try_push(a), PushResult::ok);
  q.close();
  auto b = std::make_unique<int>(2);
  EXPECT_EQ(q.try_push(b), PushResult::closed);
  ASSERT_TRUE(b);  // not moved from
  std::unique_ptr<int> out;
  ASSERT_TRUE(q.try_pop(out));
  EXPECT_EQ(*out, 1);
  EXPECT_TRUE(q.closed());
  EXPECT_EQ(q.pushed(), 1u);
}

TEST(BoundedQueue, DestroysRemainingItems) {
  auto counter = std::make_shared<int>(0);
  {
    BoundedQueue<std::shared_ptr<int>> q{8};
    for (int i = 0; i < 5; ++i) {
      auto c = counter;
      ASSERT_EQ(q.try_push(c), PushResult::ok);
    }
    EXPECT_EQ(counter.use_count(), 6);
  }
  EXPECT_EQ(counter.use_count(), 1);
}

TEST(BoundedQueue, ManyProducersManyConsumersLoseNothing) {
  constexpr int kProducers = 4;
  constexpr int kPerProducer = 50000;
  BoundedQueue<int> q{64};
  std::atomic<long long> sum{0};
  std::atomic<int> popped{0};
  std::vector<std::thread> threads;
  threads.reserve(kProducers + 2);
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        int v = p * kPerProducer + i;
        while (q.try_push(v) != PushResult::ok) std::this_thread::yield();
      }
    });
  }
  for (int c = 0; c < 2; ++c) {
    threads.emplace_back([&] {
      while (popped.load() < kProducers * kPerProducer) {
        int v = 0;
        if (q.try_pop(v)) {
          sum += v;
          ++popped;
        } else {
          std::this_thread::yield();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const long long n = static_cast<long long>(kProducers) * kPerProducer;
  EXPECT_EQ(sum.load(), n * (n - 1) / 2);
  EXPECT_TRUE(q.empty());
}

}  // namespace
}  // namespace amsg::detail

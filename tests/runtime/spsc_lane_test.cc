#include "wharf/runtime/internal/spsc_lane.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/watchdog.h"

namespace wharf::runtime_internal {
namespace {

using testing::Watchdog;

// Lanes live on the heap, as inside a port's inbox: the type is 64-byte
// aligned, which ASan's fake stack frames do not honour.
TEST(SpscLaneTest, EmptyUntilPushedThenFifoAcrossSegments) {
  auto lane_ptr = std::make_unique<SpscLane<int64_t>>();
  auto& lane = *lane_ptr;
  int64_t v = -1;
  EXPECT_FALSE(lane.Ready());
  EXPECT_FALSE(lane.Pop(v));
  constexpr int kN = SpscLane<int64_t>::kSlots * 5 + 7;  // several segments
  for (int64_t i = 0; i < kN; ++i) {
    int64_t x = i;
    ASSERT_TRUE(lane.Push(std::move(x)));
  }
  for (int64_t i = 0; i < kN; ++i) {
    ASSERT_TRUE(lane.Ready());
    ASSERT_TRUE(lane.Pop(v));
    EXPECT_EQ(v, i);
  }
  EXPECT_FALSE(lane.Pop(v));
  // Segments come back through the spare and are reused.
  for (int round = 0; round < 10; ++round) {
    for (int64_t i = 0; i < kN; ++i) {
      int64_t x = i;
      ASSERT_TRUE(lane.Push(std::move(x)));
    }
    for (int64_t i = 0; i < kN; ++i) {
      ASSERT_TRUE(lane.Pop(v));
      ASSERT_EQ(v, i);
    }
  }
}

// Elements still queued are destroyed with the lane (ASan: no leak).
TEST(SpscLaneTest, DestroysQueuedElements) {
  auto counter = std::make_shared<int>(0);
  {
    auto lane_ptr = std::make_unique<SpscLane<std::shared_ptr<int>>>();
    auto& lane = *lane_ptr;
    for (int i = 0; i < 100; ++i) {
      auto p = counter;
      ASSERT_TRUE(lane.Push(std::move(p)));
    }
    std::shared_ptr<int> out;
    ASSERT_TRUE(lane.Pop(out));
    EXPECT_EQ(counter.use_count(), 101);
  }
  EXPECT_EQ(counter.use_count(), 1);
}

// One producer, one consumer, 10^6 strings (non-trivial elements): every
// element arrives once, in order, intact (TSan: the release/acquire pairs).
// Finished segments go back to the producer: a lane that keeps being drained
// allocates only what its largest backlog needed, and keeps at most
// kMaxSpares spare segments.
TEST(SpscLaneTest, FinishedSegmentsAreReusedAndSparesBounded) {
  constexpr int kSlots = SpscLane<int>::kSlots;
  SpscLane<int> lane;
  int next = 0, expected = 0;
  auto push = [&](int n) {
    for (int i = 0; i < n; ++i) ASSERT_TRUE(lane.Push(int(next++)));
  };
  auto pop_all = [&] {
    int v;
    while (lane.Pop(v)) ASSERT_EQ(v, expected++);
  };
  push(10 * kSlots);
  pop_all();
  const int allocated = lane.allocated_for_testing();
  EXPECT_EQ(allocated, 10);
  EXPECT_GE(lane.spares_for_testing(), 8);  // the finished ones (not the current)
  for (int round = 0; round < 50; ++round) {  // the same backlog, again and again
    push(8 * kSlots);
    pop_all();
  }
  EXPECT_EQ(lane.allocated_for_testing(), allocated);  // reused, never allocated
  // A huge backlog: spares beyond the bound are freed when drained.
  push((SpscLane<int>::kMaxSpares + 100) * kSlots);
  pop_all();
  EXPECT_LE(lane.spares_for_testing(), SpscLane<int>::kMaxSpares);
}

TEST(SpscLaneTest, StressProducerConsumer) {
  Watchdog dog("SpscLane stress", absl::Seconds(120));
  constexpr int64_t kN = 1000000;
  auto lane_ptr = std::make_unique<SpscLane<std::string>>();
  auto& lane = *lane_ptr;
  std::thread producer([&] {
    for (int64_t i = 0; i < kN; ++i) {
      std::string s = "message-" + std::to_string(i);
      while (!lane.Push(std::move(s))) {
      }
    }
  });
  std::string v;
  for (int64_t i = 0; i < kN; ++i) {
    while (!lane.Pop(v)) std::this_thread::yield();
    ASSERT_EQ(v, "message-" + std::to_string(i));
  }
  producer.join();
  EXPECT_FALSE(lane.Pop(v));
}

}  // namespace
}  // namespace wharf::runtime_internal

#include "wharf/runtime/internal/in_flight_senders.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/watchdog.h"
#include "wharf/sync/internal/asymmetric_fence.h"
#include "wharf/sync/internal/spin.h"

namespace wharf::runtime_internal {
namespace {

using sync_internal::HeavyFence;
using testing::Watchdog;

TEST(InFlightSendersTest, EnterLeaveAndAnyIn) {
  int queue_a = 0, queue_b = 0;
  EXPECT_FALSE(InFlightSenders::AnyIn(&queue_a));
  InFlightSenders::Enter(&queue_a);
  EXPECT_TRUE(InFlightSenders::AnyIn(&queue_a));
  EXPECT_FALSE(InFlightSenders::AnyIn(&queue_b));
  InFlightSenders::Leave();
  EXPECT_FALSE(InFlightSenders::AnyIn(&queue_a));
}

TEST(InFlightSendersTest, SeenFromOtherThreadsAndRecycledAfterExit) {
  int queue = 0;
  std::atomic<bool> entered{false}, leave{false};
  std::thread t([&] {
    InFlightSenders::Enter(&queue);
    entered = true;
    while (!leave) sync_internal::CpuRelax();
    InFlightSenders::Leave();
  });
  while (!entered) sync_internal::CpuRelax();
  EXPECT_TRUE(InFlightSenders::AnyIn(&queue));
  leave = true;
  t.join();
  EXPECT_FALSE(InFlightSenders::AnyIn(&queue));
  // Threads that come and go reuse records: thousands of short-lived
  // senders, one at a time, never see another's mark.
  for (int i = 0; i < 2000; ++i) {
    std::thread([&] {
      EXPECT_FALSE(InFlightSenders::AnyIn(&queue));
      InFlightSenders::Enter(&queue);
      InFlightSenders::Leave();
    }).join();
  }
  EXPECT_FALSE(InFlightSenders::AnyIn(&queue));
}

// The closing protocol of message_port.cc in miniature: senders that did not
// see `closing` increment `landed` before leaving; once the closer has set
// closing, fenced, and then sees no sender in flight, `landed` is final.
TEST(InFlightSendersTest, CloserSeesEverySenderThatMissedTheFlag) {
  Watchdog dog("CloserSeesEverySender", absl::Seconds(120));
  int queue = 0;
  for (int round = 0; round < 300; ++round) {
    std::atomic<bool> closing{false};
    std::atomic<int> landed{0};
    std::atomic<bool> start{false};
    std::thread senders[2];
    for (auto& s : senders) {
      s = std::thread([&] {
        while (!start.load(std::memory_order_acquire)) sync_internal::CpuRelax();
        for (;;) {
          InFlightSenders::Enter(&queue);
          if (closing.load(std::memory_order_relaxed)) {
            InFlightSenders::Leave();
            return;
          }
          landed.fetch_add(1, std::memory_order_relaxed);
          InFlightSenders::Leave();
        }
      });
    }
    start.store(true, std::memory_order_release);
    for (int i = 0; i < round % 50; ++i) sync_internal::CpuRelax();
    closing.store(true, std::memory_order_relaxed);
    HeavyFence();
    while (InFlightSenders::AnyIn(&queue)) sync_internal::CpuRelax();
    const int seen = landed.load(std::memory_order_relaxed);
    for (auto& s : senders) s.join();
    ASSERT_EQ(landed.load(), seen) << "a sender landed after the closer saw none in flight";
  }
}

}  // namespace
}  // namespace wharf::runtime_internal

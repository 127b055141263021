// InProcessChannel's own protocol corners (the rest runs through
// message_port_test's suites).
#include "wharf/runtime/internal/in_process_channel.h"

#include <memory>
#include <thread>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/watchdog.h"
#include "wharf/runtime/value.h"

namespace wharf::runtime_internal {
namespace {

using ::wharf::testing::Watchdog;

// A receiver that starts to wait on the channel after it was sealed for a
// move to another process (and after the move's WakeAll) must not sleep:
// nothing rings this channel any more. Before the fix it slept until its
// deadline (seen once as a 60 s Receive in the three-producers test).
TEST(InProcessChannelTest, WaitAfterTheSealReturnsAtOnce) {
  Watchdog dog("sealed wait", absl::Seconds(60));
  // On the heap: the channel is 64-byte aligned (a sanitizer's fake stack
  // frames are not), as it is inside a PortCore.
  auto channel = std::make_unique<InProcessChannel>(0);
  channel->SealForMigration();
  channel->WakeAll();
  const absl::Time start = absl::Now();
  EXPECT_TRUE(channel->WaitReadable(0, absl::Now() + absl::Seconds(30)));
  EXPECT_TRUE(channel->WaitReadable(1, absl::Now() + absl::Seconds(30)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(20)) << "slept towards the deadline";
  // And a sender is told to go to the new transport.
  Value v(1);
  EXPECT_EQ(channel->TrySend(1, v), SendResult::kMoved);
}

// The same race with a real waiter: a thread asleep in WaitReadable when
// the seal and WakeAll come is woken.
TEST(InProcessChannelTest, WaiterAsleepAtTheSealIsWoken) {
  Watchdog dog("sealed wake", absl::Seconds(60));
  for (int round = 0; round < 200; ++round) {
    auto channel = std::make_unique<InProcessChannel>(0);
    std::thread waiter([&] {
      while (!channel->WaitReadable(0, absl::Now() + absl::Seconds(30))) {
      }
    });
    if (round % 2 == 0) absl::SleepFor(absl::Microseconds(50));
    channel->SealForMigration();
    channel->WakeAll();
    waiter.join();
  }
}

}  // namespace
}  // namespace wharf::runtime_internal

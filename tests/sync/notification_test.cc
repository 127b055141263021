#include "wharf/sync/notification.h"

#include <atomic>
#include <barrier>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/sync/lock_shared_state.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/unique_name.h"
#include "tests/testing/watchdog.h"
#include "wharf/sync/atomics.h"
#include "wharf/sync/latch.h"
#include "wharf/sync/shared_buffer.h"

namespace wharf {
namespace {

using testing::HelperPath;
using testing::Subprocess;
using testing::UniqueName;
using testing::Watchdog;

TEST(NotificationTest, StartsUnnotified) {
  Notification n;
  EXPECT_FALSE(n.HasBeenNotified());
  EXPECT_EQ(n.RawWordForTesting(), 0u);
}

TEST(NotificationTest, PrenotifiedConstructor) {
  Notification n(true);
  EXPECT_TRUE(n.HasBeenNotified());
  n.WaitForNotification();  // returns at once
  EXPECT_TRUE(n.WaitForNotificationWithTimeout(absl::ZeroDuration()));
}

TEST(NotificationTest, NotifyThenWaitReturnsAtOnce) {
  Notification n;
  n.Notify();
  EXPECT_TRUE(n.HasBeenNotified());
  n.WaitForNotification();
  EXPECT_TRUE(n.WaitForNotificationWithDeadline(absl::InfinitePast()));
  // Nobody ever waited: no waiter bit, so Notify made no syscall.
  EXPECT_EQ(n.RawWordForTesting(), Notification::kNotified);
}

TEST(NotificationTest, TimeoutWhenNeverNotified) {
  Watchdog dog("TimeoutWhenNeverNotified", absl::Seconds(30));
  Notification n;
  const absl::Time start = absl::Now();
  EXPECT_FALSE(n.WaitForNotificationWithTimeout(absl::Milliseconds(20)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(20));
  EXPECT_FALSE(n.WaitForNotificationWithDeadline(absl::Now() - absl::Seconds(1)));
  EXPECT_FALSE(n.HasBeenNotified());
}

TEST(NotificationTest, WakesASleepingWaiter) {
  Watchdog dog("WakesASleepingWaiter", absl::Seconds(30));
  Notification n;
  std::atomic<bool> woke{false};
  std::thread waiter([&] {
    n.WaitForNotification();
    woke = true;
  });
  // Wait until the waiter has announced that it sleeps.
  while ((n.RawWordForTesting() & Notification::kWaiters) == 0) std::this_thread::yield();
  EXPECT_FALSE(woke.load());
  n.Notify();
  waiter.join();
  EXPECT_TRUE(woke.load());
}

// Everything written before Notify() is visible after the wait (TSan checks
// the plain writes below).
TEST(NotificationTest, PublishesWritesBeforeNotify) {
  Watchdog dog("PublishesWritesBeforeNotify", absl::Seconds(60));
  constexpr int kRounds = 200;
  constexpr int kWaiters = 3;
  for (int round = 0; round < kRounds; ++round) {
    Notification n;
    std::vector<int> data(16, 0);  // plain memory
    std::vector<std::thread> waiters;
    std::atomic<int> ok{0};
    for (int w = 0; w < kWaiters; ++w) {
      waiters.emplace_back([&, w] {
        if (w == 0) {
          n.WaitForNotification();
        } else {
          while (!n.WaitForNotificationWithTimeout(absl::Milliseconds(1))) {
          }
        }
        int sum = 0;
        for (int v : data) sum += v;
        if (sum == 16 * round) ok.fetch_add(1);
      });
    }
    for (int& v : data) v = round;
    n.Notify();
    for (auto& t : waiters) t.join();
    EXPECT_EQ(ok.load(), kWaiters) << "round " << round;
  }
}

// Many waiters, one notifier, started together on a barrier: every waiter
// returns, none misses the wake-up.
TEST(NotificationTest, StressManyWaitersNoneLost) {
  Watchdog dog("StressManyWaitersNoneLost", absl::Seconds(60));
  constexpr int kRounds = 300;
  constexpr int kWaiters = 4;
  for (int round = 0; round < kRounds; ++round) {
    Notification n;
    std::barrier start(kWaiters + 1);
    std::atomic<int> returned{0};
    std::vector<std::thread> threads;
    for (int w = 0; w < kWaiters; ++w) {
      threads.emplace_back([&] {
        start.arrive_and_wait();
        n.WaitForNotification();
        returned.fetch_add(1);
      });
    }
    start.arrive_and_wait();
    n.Notify();
    for (auto& t : threads) t.join();
    ASSERT_EQ(returned.load(), kWaiters) << "round " << round;
  }
}

TEST(NotificationDeathTest, SecondNotifyAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Notification n;
  n.Notify();
  EXPECT_DEATH(n.Notify(), "Notify\\(\\) called more than once");
}

TEST(NotificationTest, SharedMemoryLayout) {
  static_assert(sizeof(Notification) == 4);
  alignas(Notification) unsigned char raw[sizeof(Notification)] = {};
  auto* n = new (raw) Notification;  // zero-filled memory is a fresh one
  EXPECT_FALSE(n->HasBeenNotified());
  n->Notify();
  EXPECT_TRUE(n->HasBeenNotified());
}

// ---- Cross-process: children wait on a Notification in a named buffer ----

using ::wharf::testing::EventShared;  // tests/sync/lock_shared_state.h

TEST(NotificationProcessTest, ChildrenSeeNotifyAndPayload) {
  Watchdog dog("ChildrenSeeNotifyAndPayload", absl::Seconds(60));
  constexpr int kChildren = 3;
  const std::string name = UniqueName("notification");
  auto buffer = SharedBuffer::CreateNamed(name, 4096);
  ASSERT_TRUE(buffer.ok()) << buffer.status();
  auto* s = new (buffer->data()) EventShared{Latch(kChildren), Notification(), 0, 0};
  std::vector<Subprocess> children;
  for (int i = 0; i < kChildren; ++i) {
    auto child = Subprocess::Spawn(HelperPath("tests/sync/sync_process_helper"),
                                   {"event_arrive_wait", name});
    ASSERT_TRUE(child.ok()) << child.status();
    children.push_back(*std::move(child));
  }
  ASSERT_TRUE(s->arrived.WaitFor(absl::Seconds(30)));
  // Give the children a moment to go to sleep on the futex, so the wake
  // crosses processes (correct either way).
  absl::SleepFor(absl::Milliseconds(20));
  s->payload = 42;
  s->go.Notify();
  for (auto& child : children) {
    auto code = child.Wait(absl::Seconds(30));
    ASSERT_TRUE(code.ok()) << code.status();
    EXPECT_EQ(*code, 0);
  }
  EXPECT_EQ(atomics::Load(s->counted), static_cast<uint32_t>(kChildren));
  buffer = SharedBuffer();  // the creator's last handle removes the name
  EXPECT_FALSE(SharedBuffer::OpenNamed(name).ok());
}

}  // namespace
}  // namespace wharf

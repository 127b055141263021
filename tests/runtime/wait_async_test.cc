#include "wharf/runtime/wait_async.h"

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/watchdog.h"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/future.h"
#include "wharf/sync/atomics.h"

namespace wharf {
namespace {

using ::wharf::testing::Watchdog;

// Notifies `cell` until a waiter was actually woken (the helper thread may
// not be asleep yet when the test first notifies).
template <class T>
void NotifyUntilWoken(T& cell) {
  while (atomics::Notify(cell, 1) == 0) absl::SleepFor(absl::Microseconds(200));
}

TEST(WaitAsyncTest, NotEqualIsReadyAtOnce) {
  EventLoop loop;
  int32_t cell = 5;
  auto f = WaitAsync(loop, cell, 4, absl::Seconds(10));
  ASSERT_TRUE(f.IsReady());
  EXPECT_EQ(*f.Get(), WaitResult::kNotEqual);
  EXPECT_EQ(loop.RefCountForTesting(), 0);
}

TEST(WaitAsyncTest, NotifyCompletesWithOkOnTheLoopThread) {
  EventLoop loop;
  int32_t cell = 0;
  Watchdog dog("WaitAsync ok", absl::Seconds(30));
  auto f = WaitAsync(loop, cell, 0);        // no timeout
  EXPECT_EQ(loop.RefCountForTesting(), 1);  // the pending wait refs the loop
  bool ran_on_loop = false;
  Future<void> done = std::move(f).Then(loop, [&](absl::StatusOr<WaitResult>&& r) {
    ran_on_loop = EventLoop::Current() == &loop;
    EXPECT_EQ(*r, WaitResult::kOk);
  });
  std::thread notifier([&] { NotifyUntilWoken(cell); });  // no store: JS allows it
  loop.Run();                                             // returns only after the completion
  notifier.join();
  EXPECT_TRUE(ran_on_loop);
  EXPECT_TRUE(done.Get().ok());
  EXPECT_EQ(loop.RefCountForTesting(), 0);
}

TEST(WaitAsyncTest, StoreThenOneNotifyIsNeverLost) {
  Watchdog dog("WaitAsync store+notify", absl::Seconds(60));
  for (int i = 0; i < 50; ++i) {
    EventLoop loop;
    int32_t cell = 0;
    auto f = WaitAsync(loop, cell, 0);
    atomics::Store(cell, 1);
    atomics::Notify(cell, 1);  // the helper may or may not be asleep yet
    loop.Run();
    EXPECT_EQ(*f.Get(), WaitResult::kOk);
  }
}

TEST(WaitAsyncTest, TimesOut) {
  EventLoop loop;
  int32_t cell = 0;
  Watchdog dog("WaitAsync timeout", absl::Seconds(30));
  const absl::Time start = absl::Now();
  auto f = WaitAsync(loop, cell, 0, absl::Milliseconds(20));
  loop.Run();
  ASSERT_TRUE(f.IsReady());
  EXPECT_EQ(*f.Get(), WaitResult::kTimedOut);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(20));
}

TEST(WaitAsyncTest, Int64Cell) {
  EventLoop loop;
  int64_t cell = int64_t{1} << 40;
  Watchdog dog("WaitAsync int64", absl::Seconds(30));
  EXPECT_EQ(*WaitAsync(loop, cell, int64_t{0}).Get(), WaitResult::kNotEqual);
  auto f = WaitAsync(loop, cell, int64_t{1} << 40, absl::Seconds(20));
  std::thread notifier([&] { NotifyUntilWoken(cell); });
  loop.Run();
  notifier.join();
  EXPECT_EQ(*f.Get(), WaitResult::kOk);
}

TEST(WaitAsyncTest, GetFromAnotherThreadWhileTheLoopRuns) {
  EventLoop loop;
  int32_t cell = 0;
  Watchdog dog("WaitAsync Get", absl::Seconds(30));
  auto f = WaitAsync(loop, cell, 0, absl::Milliseconds(10));
  std::thread runner([&] { loop.Run(); });
  EXPECT_EQ(*f.Get(), WaitResult::kTimedOut);
  runner.join();
}

// Many concurrent waits on distinct cells, woken in a random-ish order, plus
// some that time out: each completes exactly once with the right result.
TEST(WaitAsyncTest, StressManyPendingWaits) {
  constexpr int kWaits = 32;
  EventLoop loop;
  Watchdog dog("WaitAsync stress", absl::Seconds(120));
  std::vector<int32_t> cells(kWaits, 0);
  std::vector<Future<WaitResult>> fs;
  for (int i = 0; i < kWaits; ++i) {
    fs.push_back(
        WaitAsync(loop, cells[i], 0, i % 4 == 3 ? absl::Milliseconds(5) : absl::Seconds(60)));
  }
  int completed = 0;
  std::vector<Future<void>> dones;
  for (auto& f : fs) {
    dones.push_back(std::move(f).Then(loop, [&](absl::StatusOr<WaitResult>&&) { ++completed; }));
  }
  std::thread notifier([&] {
    for (int i = kWaits - 1; i >= 0; --i) {
      if (i % 4 == 3) continue;
      NotifyUntilWoken(cells[i]);
    }
  });
  loop.Run();
  notifier.join();
  EXPECT_EQ(completed, kWaits);
  auto all = WhenAll(std::move(dones));
  EXPECT_EQ(all.Get()->size(), static_cast<size_t>(kWaits));
}

}  // namespace
}  // namespace wharf

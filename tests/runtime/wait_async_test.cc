#include "wharf/runtime/wait_async.h"

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <memory>
#include <string>
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
#include "wharf/sync/futex.h"
#include "wharf/sync/internal/async_waiters.h"

namespace wharf {
namespace {

using ::wharf::testing::Watchdog;

// Notifies `cell` until a waiter was actually woken. (Since the wait is
// registered before WaitAsync returns, the first Notify always finds it; the
// loop is kept for tests that notify from before the wait starts.)
template <class T>
void NotifyUntilWoken(T& cell) {
  while (atomics::Notify(cell, 1) == 0) absl::SleepFor(absl::Microseconds(200));
}

// The number of threads of this process (/proc/self/status).
int ThreadCount() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  }
  return -1;
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

// JS resolves a zero-timeout waitAsync synchronously ({async: false,
// value: "timed-out"}).
TEST(WaitAsyncTest, ZeroTimeoutIsReadyAtOnce) {
  EventLoop loop;
  int32_t cell = 0;
  auto f = WaitAsync(loop, cell, 0, absl::ZeroDuration());
  ASSERT_TRUE(f.IsReady());
  EXPECT_EQ(*f.Get(), WaitResult::kTimedOut);
  EXPECT_EQ(loop.RefCountForTesting(), 0);
  EXPECT_EQ(sync_internal::AsyncWaiters::CountForTesting(&cell), 0);
}

// The wait is registered before WaitAsync returns: a Notify without a store,
// issued right after, always finds it (before: a helper thread had to be
// asleep first, and such a Notify was lost).
TEST(WaitAsyncTest, NotifyRightAfterWaitAsyncIsNeverLost) {
  Watchdog dog("WaitAsync race", absl::Seconds(60));
  EventLoop loop;
  constexpr int kRounds = 2000;
  std::vector<int32_t> cells(kRounds, 0);
  int ok = 0;
  std::thread waiter_side([&] {
    for (int i = 0; i < kRounds; ++i) {
      auto f = WaitAsync(loop, cells[i], 0);
      // Notified from here, with no store: counted, and completes the wait.
      EXPECT_EQ(atomics::Notify(cells[i], 1), 1) << i;
      std::move(f).OnReady([&loop, &ok](absl::StatusOr<WaitResult> r) {
        loop.Post([&ok, r] { ok += r.ok() && *r == WaitResult::kOk; });
      });
    }
  });
  loop.AddRef();
  std::thread releaser([&] {
    waiter_side.join();
    loop.Post([&loop] { loop.Release(); });
  });
  loop.Run();
  releaser.join();
  EXPECT_EQ(ok, kRounds);
}

TEST(WaitAsyncTest, NotifyCountsAndTakesAsyncWaitersOldestFirst) {
  EventLoop loop;
  int32_t cell = 0;
  std::vector<int> order;
  std::vector<Future<void>> done;
  for (int i = 0; i < 3; ++i) {
    done.push_back(WaitAsync(loop, cell, 0).Then(loop, [&order, i](absl::StatusOr<WaitResult> r) {
      EXPECT_EQ(*r, WaitResult::kOk);
      order.push_back(i);
    }));
  }
  EXPECT_EQ(sync_internal::AsyncWaiters::CountForTesting(&cell), 3);
  EXPECT_EQ(atomics::Notify(cell, 2), 2);
  EXPECT_EQ(sync_internal::AsyncWaiters::CountForTesting(&cell), 1);
  while (order.size() < 2) loop.RunOnce();
  EXPECT_EQ(order, (std::vector<int>{0, 1}));
  EXPECT_EQ(atomics::Notify(cell), 1);
  EXPECT_EQ(atomics::Notify(cell), 0);
  loop.Run();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2}));
}

// The test: 10^4 pending waits on one loop, each completed exactly
// once by its Notify or its timeout, and not one thread more. The cells are
// private-scoped (only this process touches them), so the loop does not
// watch them and each Notify counts exactly the wait it completed. (With the
// default shared scope the loop also completes a wait whose cell it sees
// changed, for notifiers in other processes; a store-then-Notify from this
// process can then find the wait already done and count 0 — still exactly
// one completion: ChangedSharedCellCompletesOnce below.)
TEST(WaitAsyncTest, TenThousandPendingWaitsNeedNoThreads) {
  Watchdog dog("WaitAsync 10^4", absl::Seconds(120));
  constexpr int kWaits = 10000;
  EventLoop loop;
  std::vector<int32_t> cells(kWaits, 0);
  std::vector<int> completions(kWaits, 0);
  std::vector<WaitResult> results(kWaits, WaitResult::kNotEqual);
  const int threads_before = ThreadCount();
  int threads_while_pending = -1;
  for (int i = 0; i < kWaits; ++i) {
    // Even cells are notified; odd ones time out (spread over 20-120 ms).
    const absl::Duration timeout =
        i % 2 == 0 ? absl::Seconds(60) : absl::Milliseconds(20 + i % 100);
    std::move(WaitAsync(loop, cells[i], 0, timeout, WaitOptions{.scope = FutexScope::kPrivate}))
        .OnReady([&, i](absl::StatusOr<WaitResult> r) {
          ++completions[i];
          results[i] = r.ok() ? *r : WaitResult::kNotEqual;
        });
  }
  threads_while_pending = ThreadCount();
  std::thread notifier([&] {
    for (int i = 0; i < kWaits; i += 2) {
      atomics::Store(cells[i], 1);
      EXPECT_EQ(atomics::Notify(cells[i], 1, FutexScope::kPrivate), 1) << i;
    }
  });
  loop.Run();  // the pending waits keep it alive until each completed
  notifier.join();
  EXPECT_EQ(threads_while_pending, threads_before);
  for (int i = 0; i < kWaits; ++i) {
    ASSERT_EQ(completions[i], 1) << i;
    ASSERT_EQ(results[i], i % 2 == 0 ? WaitResult::kOk : WaitResult::kTimedOut) << i;
  }
  EXPECT_EQ(loop.RefCountForTesting(), 0);
}

// Shared scope (the default), store then Notify from this process while the
// loop runs: the loop may see the changed cell first and complete the wait
// itself (Notify then counts 0), or the Notify takes it (counts 1). Either
// way each wait completes exactly once, with kOk.
TEST(WaitAsyncTest, ChangedSharedCellCompletesOnce) {
  Watchdog dog("WaitAsync changed shared cell", absl::Seconds(60));
  constexpr int kWaits = 2000;
  EventLoop loop;
  std::vector<int32_t> cells(kWaits, 0);
  std::vector<int> completions(kWaits, 0);
  std::vector<WaitResult> results(kWaits, WaitResult::kNotEqual);
  for (int i = 0; i < kWaits; ++i) {
    std::move(WaitAsync(loop, cells[i], 0)).OnReady([&, i](absl::StatusOr<WaitResult> r) {
      ++completions[i];
      results[i] = r.ok() ? *r : WaitResult::kNotEqual;
    });
  }
  int counted = 0;
  std::thread notifier([&] {
    for (int i = 0; i < kWaits; ++i) {
      atomics::Store(cells[i], 1);
      const int n = atomics::Notify(cells[i], 1);
      EXPECT_TRUE(n == 0 || n == 1) << i << ": " << n;
      counted += n;
    }
  });
  loop.Run();
  notifier.join();
  EXPECT_LE(counted, kWaits);
  for (int i = 0; i < kWaits; ++i) {
    ASSERT_EQ(completions[i], 1) << i;
    ASSERT_EQ(results[i], WaitResult::kOk) << i;
  }
}

// Notifiers in another process: the loop watches the cells while it sleeps.
// Store-then-notify completes the wait however busy the loop is (here the
// child notifies once, at a random moment); a notify without a store is
// seen while the loop sleeps in the futex.
TEST(WaitAsyncTest, NotifyFromAnotherProcess) {
  Watchdog dog("WaitAsync cross-process", absl::Seconds(60));
  auto* cells = static_cast<int32_t*>(
      mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(cells, MAP_FAILED);
  for (int round = 0; round < 20; ++round) {
    cells[0] = 0;  // store + one notify
    cells[1] = 0;  // notify only, while the loop sleeps
    EventLoop loop;
    std::vector<WaitResult> got;
    for (int i = 0; i < 2; ++i) {
      std::move(WaitAsync(loop, cells[i], 0)).OnReady([&](absl::StatusOr<WaitResult> r) {
        loop.Post([&got, r] { got.push_back(r.ok() ? *r : WaitResult::kNotEqual); });
      });
    }
    // Keep the loop busy for a while, sometimes (the store must still count).
    if (round % 2 == 0) {
      loop.Post([] { absl::SleepFor(absl::Milliseconds(3)); });
    }
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      // Async-signal-safe calls only: this process has other threads.
      usleep((round % 4) * 1000);
      __atomic_store_n(&cells[0], 1, __ATOMIC_SEQ_CST);
      (void)FutexWake(&cells[0], 1, FutexScope::kShared);  // once: may find no sleeper
      usleep(50 * 1000);
      for (int i = 0; i < 400 && FutexWake(&cells[1], 1, FutexScope::kShared) == 0; ++i) {
        usleep(5 * 1000);  // the parent's loop is not asleep in the futex yet
      }
      _exit(0);
    }
    loop.Run();
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status));
    ASSERT_EQ(got.size(), 2u) << round;
    EXPECT_EQ(got[0], WaitResult::kOk);
    EXPECT_EQ(got[1], WaitResult::kOk);
  }
  munmap(cells, 4096);
}

TEST(WaitAsyncTest, LoopDestroyedWithAPendingWaitBreaksItsPromise) {
  int32_t cell = 0;
  Future<WaitResult> f;
  {
    EventLoop loop;
    f = WaitAsync(loop, cell, 0);
  }
  ASSERT_TRUE(f.IsReady());
  EXPECT_TRUE(absl::IsAborted(f.Get().status())) << f.Get().status();
  EXPECT_EQ(sync_internal::AsyncWaiters::CountForTesting(&cell), 0);
  EXPECT_EQ(atomics::Notify(cell), 0);  // nothing left to wake
}

}  // namespace
}  // namespace wharf

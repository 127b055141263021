#include "wharf/sync/interrupt.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <fstream>
#include <functional>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/watchdog.h"
#include "wharf/sync/atomics.h"
#include "wharf/sync/barrier.h"
#include "wharf/sync/cond_var.h"
#include "wharf/sync/futex.h"
#include "wharf/sync/internal/str_cat.h"
#include "wharf/sync/latch.h"
#include "wharf/sync/mutex.h"
#include "wharf/sync/notification.h"
#include "wharf/sync/rw_lock.h"
#include "wharf/sync/semaphore.h"

namespace wharf {
namespace {

using testing::Watchdog;

pid_t CurrentTid() { return static_cast<pid_t>(::syscall(SYS_gettid)); }

// The scheduler state of thread `tid` of this process ('S': asleep).
char TaskState(pid_t tid) {
  std::ifstream in(sync_internal::Cat("/proc/self/task/", tid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return '?';
  return stat[paren + 2];
}

// Waits until thread `tid` sleeps (in the wait under test: the caller knows
// it has nothing else to sleep in). Correctness never depends on it: a
// request that comes before the sleep makes the wait throw at once.
void AwaitAsleep(const std::atomic<pid_t>& tid) {
  while (tid.load() == 0) std::this_thread::yield();
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (TaskState(tid.load()) != 'S' && absl::Now() < give_up) {
    absl::SleepFor(absl::Microseconds(200));
  }
  // Let it get from the first 'S' (maybe a spin's yield) into the futex.
  absl::SleepFor(absl::Milliseconds(5));
}

// Runs `wait` on a thread in the scope of an Interrupter, requests it once the
// thread sleeps, and returns whether `wait` threw Interrupted. `after_catch`
// runs on that thread in the catch block.
bool InterruptedWhileBlocked(const std::function<void()>& wait,
                             const std::function<void()>& after_catch = [] {}) {
  Interrupter interrupter;
  std::atomic<pid_t> tid{0};
  bool interrupted = false;
  std::thread t([&] {
    InterruptibleScope scope(interrupter);
    tid = CurrentTid();
    try {
      wait();
    } catch (const Interrupted&) {
      interrupted = true;
      after_catch();
    }
  });
  AwaitAsleep(tid);
  interrupter.Request();
  t.join();
  return interrupted;
}

TEST(InterruptTest, InterruptedIsNotAStdException) {
  static_assert(!std::is_base_of_v<std::exception, Interrupted>);
  EXPECT_NE(std::string(Interrupted().what()).find("Interrupted"), std::string::npos);
}

TEST(InterruptTest, RequestIsStickyAndVisible) {
  Interrupter i;
  EXPECT_FALSE(i.requested());
  i.Request();
  i.Request();  // idempotent
  EXPECT_TRUE(i.requested());
}

TEST(InterruptTest, InterruptionPointThrowsOnlyInScopeWhenRequested) {
  Interrupter i;
  EXPECT_NO_THROW(InterruptionPoint());  // no scope
  InterruptibleScope scope(i);
  EXPECT_NO_THROW(InterruptionPoint());  // not requested
  EXPECT_FALSE(InterruptionRequested());
  i.Request();
  EXPECT_TRUE(InterruptionRequested());
  EXPECT_THROW(InterruptionPoint(), Interrupted);
  EXPECT_THROW(InterruptionPoint(), Interrupted);  // sticky
  {
    UninterruptibleScope off;
    EXPECT_NO_THROW(InterruptionPoint());
    {
      UninterruptibleScope nested;
      EXPECT_NO_THROW(InterruptionPoint());
    }
    EXPECT_NO_THROW(InterruptionPoint());
  }
  EXPECT_THROW(InterruptionPoint(), Interrupted);
}

// ---- Each primitive, interrupted while asleep in it ----

TEST(InterruptTest, AtomicsWait32) {
  Watchdog dog("AtomicsWait32", absl::Seconds(60));
  int32_t cell = 0;
  EXPECT_TRUE(InterruptedWhileBlocked([&] { (void)atomics::Wait(cell, 0); }));
  EXPECT_EQ(atomics::Notify(cell), 0);  // nobody left asleep on it
  // Private scope: the waiter table entry was withdrawn.
  EXPECT_TRUE(InterruptedWhileBlocked([&] {
    (void)atomics::Wait(cell, 0, absl::InfiniteDuration(), {.scope = FutexScope::kPrivate});
  }));
  EXPECT_EQ(sync_internal::PrivateWaiters(&cell).load(), 0u);
}

TEST(InterruptTest, AtomicsWait64) {
  Watchdog dog("AtomicsWait64", absl::Seconds(60));
  alignas(8) int64_t cell = int64_t{1} << 40;
  EXPECT_TRUE(InterruptedWhileBlocked([&] { (void)atomics::Wait(cell, int64_t{1} << 40); }));
  EXPECT_EQ(atomics::Notify(cell), 0);
}

TEST(InterruptTest, TimedAtomicsWait) {
  Watchdog dog("TimedAtomicsWait", absl::Seconds(60));
  int32_t cell = 0;
  EXPECT_TRUE(InterruptedWhileBlocked([&] { (void)atomics::Wait(cell, 0, absl::Seconds(600)); }));
}

TEST(InterruptTest, MutexLock) {
  Watchdog dog("MutexLock", absl::Seconds(60));
  Mutex mu;
  mu.lock();
  bool held_after = true;
  EXPECT_TRUE(InterruptedWhileBlocked([&] { (void)mu.Lock(); },
                                      [&] { held_after = mu.HeldByCurrentThread(); }));
  EXPECT_FALSE(held_after);
  EXPECT_TRUE(mu.HeldByCurrentThread());
  // std names and timed variants too.
  EXPECT_TRUE(InterruptedWhileBlocked([&] { mu.lock(); }));
  EXPECT_TRUE(InterruptedWhileBlocked([&] { (void)mu.try_lock_for(std::chrono::seconds(600)); }));
  EXPECT_TRUE(InterruptedWhileBlocked([&] { (void)mu.LockFor(absl::Seconds(600)); }));
  mu.unlock();
  // Still a working mutex for everybody else.
  std::thread other([&] {
    EXPECT_EQ(mu.Lock(), LockResult::kOk);
    mu.Unlock();
  });
  other.join();
  EXPECT_EQ(mu.RawWordForTesting() & ~Mutex::kWaitersBit, 0u);
}

TEST(InterruptTest, CondVarWaitReturnsHoldingTheMutex) {
  Watchdog dog("CondVarWait", absl::Seconds(60));
  Mutex mu;
  CondVar cv;
  bool held_in_catch = false;
  bool owns_in_catch = false;
  Interrupter interrupter;
  std::atomic<pid_t> tid{0};
  std::thread t([&] {
    InterruptibleScope scope(interrupter);
    std::unique_lock<Mutex> lock(mu);
    tid = CurrentTid();
    try {
      cv.wait(lock, [] { return false; });
    } catch (const Interrupted&) {
      held_in_catch = mu.HeldByCurrentThread();
      owns_in_catch = lock.owns_lock();
    }
  });
  AwaitAsleep(tid);
  interrupter.Request();
  t.join();
  EXPECT_TRUE(held_in_catch);
  EXPECT_TRUE(owns_in_catch);
  EXPECT_EQ(cv.WaitersForTesting(), 0u);
  EXPECT_TRUE(mu.try_lock());  // the unique_lock released it
  mu.unlock();

  // The Wait(Mutex&) form: the exception leaves with the mutex held.
  bool held = false;
  EXPECT_TRUE(InterruptedWhileBlocked(
      [&] {
        mu.lock();
        (void)cv.WaitFor(mu, absl::Seconds(600));
      },
      [&] {
        held = mu.HeldByCurrentThread();
        mu.unlock();
      }));
  EXPECT_TRUE(held);
}

TEST(InterruptTest, SemaphoreCountUnchanged) {
  Watchdog dog("Semaphore", absl::Seconds(60));
  Semaphore sem(0);
  EXPECT_TRUE(InterruptedWhileBlocked([&] { sem.acquire(); }));
  EXPECT_TRUE(InterruptedWhileBlocked([&] { (void)sem.AcquireFor(absl::Seconds(600)); }));
  EXPECT_EQ(sem.Count(), 0u);
  EXPECT_EQ(sem.RawWordForTesting(), 0u);  // no waiter left announced
  sem.release();
  EXPECT_TRUE(sem.try_acquire());
}

TEST(InterruptTest, RwLockReaderBehindWriter) {
  Watchdog dog("RwLockReader", absl::Seconds(60));
  RwLock rw;
  ASSERT_EQ(rw.Lock(), LockResult::kOk);
  EXPECT_TRUE(InterruptedWhileBlocked([&] { rw.lock_shared(); }));
  EXPECT_TRUE(InterruptedWhileBlocked([&] { (void)rw.LockSharedFor(absl::Seconds(600)); }));
  // A writer queued behind the writer (on its internal mutex).
  EXPECT_TRUE(InterruptedWhileBlocked([&] { rw.lock(); }));
  rw.Unlock();
  std::thread other([&] {
    EXPECT_EQ(rw.LockShared(), LockResult::kOk);
    rw.UnlockShared();
    EXPECT_EQ(rw.Lock(), LockResult::kOk);
    rw.Unlock();
  });
  other.join();
}

TEST(InterruptTest, RwLockWriterDrainingReaders) {
  Watchdog dog("RwLockWriter", absl::Seconds(60));
  RwLock rw;
  ASSERT_EQ(rw.LockShared(), LockResult::kOk);
  EXPECT_TRUE(InterruptedWhileBlocked([&] { rw.lock(); }));
  // The interrupted writer let the readers in again and released its mutex.
  EXPECT_EQ(rw.RawStateForTesting() & RwLock::kWriter, 0u);
  std::thread other([&] {
    EXPECT_EQ(rw.TryLockShared(), LockResult::kOk);
    rw.UnlockShared();
  });
  other.join();
  rw.UnlockShared();
  std::thread writer([&] {
    EXPECT_EQ(rw.Lock(), LockResult::kOk);
    rw.Unlock();
  });
  writer.join();
}

TEST(InterruptTest, LatchNotificationBarrier) {
  Watchdog dog("LatchNotificationBarrier", absl::Seconds(60));
  Latch latch(1);
  EXPECT_TRUE(InterruptedWhileBlocked([&] { latch.wait(); }));
  latch.count_down();
  EXPECT_TRUE(latch.try_wait());

  Notification n;
  EXPECT_TRUE(InterruptedWhileBlocked([&] { n.WaitForNotification(); }));
  EXPECT_TRUE(
      InterruptedWhileBlocked([&] { (void)n.WaitForNotificationWithTimeout(absl::Seconds(600)); }));
  n.Notify();
  EXPECT_TRUE(n.HasBeenNotified());

  // The interrupted participant's arrival still counts.
  Barrier barrier(2);
  EXPECT_TRUE(InterruptedWhileBlocked([&] { (void)barrier.ArriveAndWait(); }));
  EXPECT_EQ(barrier.Phase(), 0u);
  EXPECT_TRUE(barrier.ArriveAndWait());  // the last arrival: completes phase 0
  EXPECT_EQ(barrier.Phase(), 1u);
}

// ---- When interruption does not happen ----

TEST(InterruptTest, RequestBeforeWaitThrowsAtOnce) {
  Interrupter i;
  i.Request();
  InterruptibleScope scope(i);
  int32_t cell = 0;
  EXPECT_THROW((void)atomics::Wait(cell, 0), Interrupted);
  // A wait that need not sleep does not throw.
  EXPECT_EQ(atomics::Wait(cell, 1), WaitResult::kNotEqual);
  Mutex mu;
  EXPECT_EQ(mu.Lock(), LockResult::kOk);  // uncontended: the fast path
  mu.Unlock();
  Semaphore sem(1);
  sem.acquire();  // a permit is there
  EXPECT_THROW(sem.acquire(), Interrupted);
  EXPECT_EQ(sem.RawWordForTesting(), 0u);
}

TEST(InterruptTest, NotInterruptedWithoutScope) {
  Interrupter i;
  i.Request();
  int32_t cell = 0;
  EXPECT_EQ(atomics::Wait(cell, 0, absl::Milliseconds(20)), WaitResult::kTimedOut);
}

TEST(InterruptTest, NotInterruptedInUninterruptibleScope) {
  Watchdog dog("Uninterruptible", absl::Seconds(60));
  Interrupter i;
  i.Request();
  InterruptibleScope scope(i);
  int32_t cell = 0;
  {
    UninterruptibleScope off;
    EXPECT_EQ(atomics::Wait(cell, 0, absl::Milliseconds(20)), WaitResult::kTimedOut);
  }
  // MutexLock (UninterruptibleLock<Mutex>): the acquisition sleeps without throwing; the
  // critical section after it is interruptible again.
  Mutex mu;
  Notification locked;
  std::thread owner([&] {
    mu.lock();
    locked.Notify();
    absl::SleepFor(absl::Milliseconds(20));
    mu.unlock();
  });
  {
    UninterruptibleScope off;
    locked.WaitForNotification();
  }
  static_assert(std::is_same_v<MutexLock, UninterruptibleLock<Mutex>>);
  {
    MutexLock lock(mu);
    EXPECT_TRUE(mu.HeldByCurrentThread());
    EXPECT_THROW((void)atomics::Wait(cell, 0), Interrupted);
  }
  owner.join();
  EXPECT_THROW((void)atomics::Wait(cell, 0, absl::Milliseconds(20)), Interrupted);
}

TEST(InterruptTest, NotInterruptedDuringUnwinding) {
  Interrupter i;
  i.Request();
  InterruptibleScope scope(i);
  int32_t cell = 0;
  WaitResult in_destructor = WaitResult::kOk;
  struct WaitsInDestructor {
    int32_t& cell;
    WaitResult& result;
    ~WaitsInDestructor() { result = atomics::Wait(cell, 0, absl::Milliseconds(20)); }
  };
  try {
    WaitsInDestructor w{cell, in_destructor};
    throw 42;
  } catch (int) {
  }
  EXPECT_EQ(in_destructor, WaitResult::kTimedOut);
}

TEST(InterruptTest, InnermostScopeWins) {
  Interrupter outer;
  Interrupter inner;
  int32_t cell = 0;
  InterruptibleScope a(outer);
  outer.Request();
  {
    InterruptibleScope b(inner);
    EXPECT_EQ(atomics::Wait(cell, 0, absl::Milliseconds(20)), WaitResult::kTimedOut);
    inner.Request();
    EXPECT_THROW((void)atomics::Wait(cell, 0), Interrupted);
  }
  EXPECT_THROW((void)atomics::Wait(cell, 0), Interrupted);  // outer restored
}

TEST(InterruptTest, CatchAllAndWaitAgainThrowsAgain) {
  Watchdog dog("Sticky", absl::Seconds(60));
  int32_t cell = 0;
  int throws = 0;
  EXPECT_TRUE(InterruptedWhileBlocked([&] {
    try {
      (void)atomics::Wait(cell, 0);
    } catch (...) {
      ++throws;
    }
    (void)atomics::Wait(cell, 0);  // the request is sticky
  }));
  EXPECT_EQ(throws, 1);
}

TEST(InterruptTest, FutexWaitOrInterruptReportsTheInterruptWord) {
  std::atomic<uint32_t> word{0};
  std::atomic<uint32_t> interrupt{0};
  EXPECT_EQ(FutexWaitOrInterrupt(&word, 0, FutexScope::kPrivate, &interrupt,
                                 absl::Now() + absl::Milliseconds(5)),
            FutexWaitResult::kTimedOut);
  EXPECT_EQ(FutexWaitOrInterrupt(&word, 1, FutexScope::kPrivate, &interrupt),
            FutexWaitResult::kNotEqual);
  std::thread t([&] {
    absl::SleepFor(absl::Milliseconds(10));
    interrupt.store(1, std::memory_order_release);
    FutexWake(&interrupt, INT32_MAX, FutexScope::kPrivate);
  });
  EXPECT_EQ(FutexWaitOrInterrupt(&word, 0, FutexScope::kShared, &interrupt),
            FutexWaitResult::kInterrupted);
  t.join();
  alignas(8) std::atomic<uint64_t> wide{0};
  EXPECT_EQ(FutexWait64OrInterrupt(&wide, 0, FutexScope::kShared, &interrupt),
            FutexWaitResult::kInterrupted);
  // Null interrupt word: plain FutexWait.
  EXPECT_EQ(FutexWaitOrInterrupt(&word, 0, FutexScope::kPrivate, nullptr,
                                 absl::Now() + absl::Milliseconds(5)),
            FutexWaitResult::kTimedOut);
}

// Kernels without futex_waitv: the waits sleep in slices and notice the
// request between them.
TEST(InterruptTest, FallbackWithoutFutexWaitv) {
  Watchdog dog("FallbackWithoutFutexWaitv", absl::Seconds(60));
  SetFutexWaitvUnsupportedForTesting(true);
  int32_t cell = 0;
  EXPECT_TRUE(InterruptedWhileBlocked([&] { (void)atomics::Wait(cell, 0); }));
  alignas(8) int64_t wide = 0;
  EXPECT_TRUE(InterruptedWhileBlocked([&] { (void)atomics::Wait(wide, int64_t{0}); }));
  Mutex mu;
  mu.lock();
  EXPECT_TRUE(InterruptedWhileBlocked([&] { mu.lock(); }));
  mu.unlock();
  // Wakes and timeouts still work in the fallback.
  std::atomic<uint32_t> interrupt{0};
  EXPECT_EQ(FutexWaitOrInterrupt(&cell, 0, FutexScope::kShared, &interrupt,
                                 absl::Now() + absl::Milliseconds(7)),
            FutexWaitResult::kTimedOut);
  std::thread waker([&] {
    absl::SleepFor(absl::Milliseconds(10));
    atomics::Store(wide, int64_t{1} << 40);  // a change of the high half only
    atomics::Notify(wide);
  });
  EXPECT_EQ(atomics::Wait(wide, int64_t{0}, absl::Seconds(30)), WaitResult::kOk);
  waker.join();
  SetFutexWaitvUnsupportedForTesting(false);
}

// ---- Stress: requests racing waits that are just starting ----

// Each round a thread enters a wait while the main thread requests its
// Interrupter at a random moment. Invariant: every round ends (the watchdog
// catches a lost request) and the waiter either threw or was let through.
TEST(InterruptStressTest, RequestRacesWaitStart) {
  Watchdog dog("RequestRacesWaitStart", absl::Seconds(240));
  std::mt19937 rng(12345);
  const int rounds = 400;
  int interrupted = 0;
  for (int round = 0; round < rounds; ++round) {
    Interrupter interrupter;
    Mutex mu;
    mu.lock();
    std::atomic<bool> started{false};
    bool threw = false;
    const int kind = round % 4;
    int32_t cell = 0;
    Semaphore sem(0);
    Notification never;
    std::thread t([&] {
      InterruptibleScope scope(interrupter);
      started = true;
      try {
        switch (kind) {
          case 0: (void)atomics::Wait(cell, 0); break;
          case 1: (void)mu.Lock(); break;
          case 2: sem.acquire(); break;
          default: never.WaitForNotification(); break;
        }
      } catch (const Interrupted&) {
        threw = true;
      }
    });
    while (!started) std::this_thread::yield();
    const int delay_us = static_cast<int>(rng() % 200);
    if (delay_us > 100) absl::SleepFor(absl::Microseconds(delay_us - 100));
    interrupter.Request();
    t.join();
    mu.unlock();
    EXPECT_TRUE(threw) << "round " << round << " kind " << kind;
    interrupted += threw;
    EXPECT_EQ(sem.Count(), 0u);
  }
  EXPECT_EQ(interrupted, rounds);
}

// An interrupted waiter must not consume a wake-up meant for another: with
// two sleepers and one Signal()/release(1) racing the interruption of one,
// if the interrupted one threw, the other must still be woken.
TEST(InterruptStressTest, InterruptedWaiterConsumesNoWakeUp) {
  Watchdog dog("InterruptedWaiterConsumesNoWakeUp", absl::Seconds(240));
  std::mt19937 rng(777);
  for (int round = 0; round < 1000; ++round) {
    const bool use_cv = round % 2 == 0;
    Interrupter interrupter;
    Mutex mu;
    CondVar cv;
    int items = 0;  // guarded by mu
    Semaphore sem(0);
    std::atomic<int> asleep{0};
    std::atomic<bool> a_threw{false};
    std::atomic<bool> a_got{false};
    std::atomic<bool> b_got{false};
    auto consume = [&](std::atomic<bool>& got) {
      if (use_cv) {
        std::unique_lock<Mutex> lock(mu);
        ++asleep;
        cv.wait(lock, [&] { return items > 0; });
        --items;
      } else {
        ++asleep;
        sem.acquire();
      }
      got = true;
    };
    std::thread a([&] {
      InterruptibleScope scope(interrupter);
      try {
        consume(a_got);
      } catch (const Interrupted&) {
        a_threw = true;
      }
    });
    std::thread b([&] { consume(b_got); });
    while (asleep.load() < 2) std::this_thread::yield();
    absl::SleepFor(absl::Microseconds(rng() % 300));
    std::thread requester([&] { interrupter.Request(); });
    if (use_cv) {
      {
        std::lock_guard<Mutex> lock(mu);
        ++items;
      }
      cv.notify_one();
    } else {
      sem.release(1);
    }
    requester.join();
    a.join();
    if (a_got) {
      // A took the one item/permit before it saw the request: B needs another.
      if (use_cv) {
        {
          std::lock_guard<Mutex> lock(mu);
          ++items;
        }
        cv.notify_all();
      } else {
        sem.release(1);
      }
    }
    b.join();  // hangs (watchdog) if A consumed B's wake-up and threw
    EXPECT_TRUE(b_got);
    EXPECT_NE(a_got.load(), a_threw.load());
    EXPECT_EQ(sem.Count(), 0u);
  }
}

}  // namespace
}  // namespace wharf

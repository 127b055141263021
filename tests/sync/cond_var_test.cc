#include "wharf/sync/cond_var.h"

#include <atomic>
#include <barrier>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <new>
#include <random>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/sync/lock_shared_state.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/unique_name.h"
#include "tests/testing/watchdog.h"
#include "wharf/sync/mutex.h"
#include "wharf/sync/shared_buffer.h"

namespace wharf {
namespace {

using testing::HelperPath;
using testing::Subprocess;
using testing::UniqueName;
using testing::Watchdog;

TEST(CondVarTest, SignalWithNoWaitersIsANoOp) {
  CondVar cv;
  cv.Signal();
  cv.SignalAll();
  cv.notify_one();
  cv.notify_all();
  // Nobody waited: no sequence bump, so no futex syscall was made.
  EXPECT_EQ(cv.SequenceForTesting(), 0u);
  EXPECT_EQ(cv.WaitersForTesting(), 0u);
}

TEST(CondVarTest, SignalIsNotRemembered) {
  Watchdog dog("SignalIsNotRemembered", absl::Seconds(30));
  Mutex mu;
  CondVar cv;
  cv.Signal();  // before anyone waits: lost, by definition
  ASSERT_EQ(mu.Lock(), LockResult::kOk);
  const CondVarWaitResult r = cv.WaitFor(mu, absl::Milliseconds(20));
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.lock, LockResult::kOk);
  EXPECT_TRUE(mu.HeldByCurrentThread());  // re-acquired after the timeout
  mu.Unlock();
}

TEST(CondVarTest, TimedWaitRelocksAndReportsTimeout) {
  Watchdog dog("TimedWaitRelocksAndReportsTimeout", absl::Seconds(30));
  Mutex mu;
  CondVar cv;
  ASSERT_EQ(mu.Lock(), LockResult::kOk);
  const absl::Time start = absl::Now();
  const CondVarWaitResult r = cv.WaitUntil(mu, start + absl::Milliseconds(20));
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.lock, LockResult::kOk);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(20));
  const CondVarWaitResult past = cv.WaitUntil(mu, absl::InfinitePast());
  EXPECT_TRUE(past.timed_out);
  EXPECT_TRUE(mu.HeldByCurrentThread());
  mu.Unlock();
  EXPECT_EQ(cv.WaitersForTesting(), 0u);
}

TEST(CondVarTest, SignalWakesAWaiter) {
  Watchdog dog("SignalWakesAWaiter", absl::Seconds(30));
  Mutex mu;
  CondVar cv;
  bool ready = false;  // guarded by mu
  std::thread waiter([&] {
    ASSERT_EQ(mu.Lock(), LockResult::kOk);
    while (!ready) ASSERT_EQ(cv.Wait(mu), LockResult::kOk);
    mu.Unlock();
  });
  while (cv.WaitersForTesting() == 0) std::this_thread::yield();
  ASSERT_EQ(mu.Lock(), LockResult::kOk);
  ready = true;
  mu.Unlock();
  cv.Signal();  // outside the lock: allowed
  waiter.join();
  EXPECT_EQ(cv.WaitersForTesting(), 0u);
}

TEST(CondVarTest, SignalAllWakesEveryWaiter) {
  Watchdog dog("SignalAllWakesEveryWaiter", absl::Seconds(30));
  constexpr int kWaiters = 4;
  Mutex mu;
  CondVar cv;
  bool go = false;
  int woken = 0;
  std::vector<std::thread> waiters;
  for (int i = 0; i < kWaiters; ++i) {
    waiters.emplace_back([&] {
      std::unique_lock<Mutex> lock(mu);
      cv.wait(lock, [&] { return go; });
      ++woken;
    });
  }
  while (cv.WaitersForTesting() != kWaiters) std::this_thread::yield();
  {
    std::lock_guard<Mutex> lock(mu);
    go = true;
    cv.SignalAll();
  }
  for (auto& t : waiters) t.join();
  EXPECT_EQ(woken, kWaiters);
}

TEST(CondVarTest, StdInterface) {
  Watchdog dog("StdInterface", absl::Seconds(30));
  Mutex mu;
  CondVar cv;
  int value = 0;
  std::unique_lock<Mutex> lock(mu);
  EXPECT_EQ(cv.wait_for(lock, std::chrono::milliseconds(5)), std::cv_status::timeout);
  EXPECT_TRUE(lock.owns_lock());
  EXPECT_EQ(cv.wait_until(lock, std::chrono::steady_clock::now() + std::chrono::milliseconds(5)),
            std::cv_status::timeout);
  EXPECT_FALSE(cv.wait_for(lock, std::chrono::milliseconds(5), [&] { return value == 1; }));
  EXPECT_FALSE(cv.wait_until(lock, std::chrono::system_clock::now() + std::chrono::milliseconds(5),
                             [&] { return value == 1; }));
  std::thread setter([&] {
    std::lock_guard<Mutex> l(mu);
    value = 1;
    cv.notify_one();
  });
  EXPECT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return value == 1; }));
  lock.unlock();
  setter.join();
  // std::condition_variable_any works over the Mutex too (Lockable).
  std::condition_variable_any any;
  std::unique_lock<Mutex> l2(mu);
  EXPECT_EQ(any.wait_for(l2, std::chrono::milliseconds(1)), std::cv_status::timeout);
}

// Producers and consumers over a bounded ring guarded by one Mutex, with two
// CondVars and Signal() only (no SignalAll safety net): a lost wake-up
// deadlocks (the watchdog names it); every item arrives exactly once.
TEST(CondVarTest, StressProducerConsumerNoLostWakeups) {
  Watchdog dog("StressProducerConsumerNoLostWakeups", absl::Seconds(60));
  constexpr int kProducers = 3;
  constexpr int kConsumers = 3;
  constexpr int kPerProducer = 4000;
  constexpr int kCapacity = 4;
  Mutex mu;
  CondVar not_empty;
  CondVar not_full;
  int ring[kCapacity];
  int head = 0, size = 0;  // guarded by mu
  std::barrier start(kProducers + kConsumers);
  std::atomic<int64_t> sum{0};
  std::atomic<int> received{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      start.arrive_and_wait();
      for (int i = 1; i <= kPerProducer; ++i) {
        if (mu.Lock() != LockResult::kOk) errors.fetch_add(1);
        while (size == kCapacity) {
          if (not_full.Wait(mu) != LockResult::kOk) errors.fetch_add(1);
        }
        ring[(head + size) % kCapacity] = p * kPerProducer + i;
        ++size;
        mu.Unlock();
        not_empty.Signal();
      }
    });
  }
  constexpr int kTotal = kProducers * kPerProducer;
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&, c] {
      start.arrive_and_wait();
      // Consumers split the items evenly, so each knows when it is done.
      for (int i = 0; i < kTotal / kConsumers; ++i) {
        if (mu.Lock() != LockResult::kOk) errors.fetch_add(1);
        while (size == 0) {
          // Mix plain and timed waits.
          if (c == 0) {
            if (not_empty.Wait(mu) != LockResult::kOk) errors.fetch_add(1);
          } else {
            if (not_empty.WaitFor(mu, absl::Milliseconds(1)).lock != LockResult::kOk) {
              errors.fetch_add(1);
            }
          }
        }
        const int item = ring[head];
        head = (head + 1) % kCapacity;
        --size;
        // Signal under the lock here (the producer signals outside it).
        not_full.Signal();
        mu.Unlock();
        sum.fetch_add(item);
        received.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(received.load(), kTotal);
  EXPECT_EQ(sum.load(), int64_t{kTotal} * (kTotal + 1) / 2);
  EXPECT_EQ(size, 0);
  EXPECT_EQ(not_empty.WaitersForTesting(), 0u);
  EXPECT_EQ(not_full.WaitersForTesting(), 0u);
}

// Two threads alternate turns 20000 times under one Mutex/CondVar.
TEST(CondVarTest, StressPingPong) {
  Watchdog dog("StressPingPong", absl::Seconds(60));
  constexpr int kRounds = 20000;
  Mutex mu;
  CondVar cv;
  int turn = 0;
  int64_t value = 0;
  auto player = [&](int me) {
    for (int i = 0; i < kRounds; ++i) {
      std::unique_lock<Mutex> lock(mu);
      cv.wait(lock, [&] { return turn == me; });
      ++value;
      turn = 1 - me;
      cv.notify_one();
    }
  };
  std::thread other(player, 1);
  player(0);
  other.join();
  EXPECT_EQ(value, 2 * kRounds);
}

// A thread that signals and then exits holding the mutex: the waiter's
// relock reports kOwnerDied, with the mutex held.
TEST(CondVarTest, RelockAfterOwnerDeathReportsOwnerDied) {
  Watchdog dog("RelockAfterOwnerDeathReportsOwnerDied", absl::Seconds(30));
  Mutex mu;
  CondVar cv;
  // Atomic: a dead owner's writes are not ordered before the survivor's
  // takeover (the owner never released), so TSan would rightly flag a plain
  // bool.
  std::atomic<bool> ready{false};
  LockResult relock = LockResult::kBusy;
  std::thread waiter([&] {
    ASSERT_EQ(mu.Lock(), LockResult::kOk);
    while (!ready) {
      relock = cv.Wait(mu);
      if (relock != LockResult::kOk) break;
    }
    if (Acquired(relock)) {
      EXPECT_TRUE(mu.HeldByCurrentThread());
      if (relock == LockResult::kOwnerDied) {
        EXPECT_TRUE(mu.MarkConsistent().ok());
      }
      mu.Unlock();
    }
  });
  while (cv.WaitersForTesting() == 0) std::this_thread::yield();
  std::thread dying([&] {
    ASSERT_EQ(mu.Lock(), LockResult::kOk);
    ready = true;
    cv.Signal();
    // exits holding mu
  });
  dying.join();
  waiter.join();
  EXPECT_EQ(relock, LockResult::kOwnerDied);
  ASSERT_EQ(mu.Lock(), LockResult::kOk);  // repaired
  mu.Unlock();
}

// The mutex becomes not recoverable while a thread waits: Wait() returns
// kNotRecoverable without the mutex; std wait() throws and releases the
// unique_lock.
TEST(CondVarTest, RelockOfNotRecoverableMutex) {
  Watchdog dog("RelockOfNotRecoverableMutex", absl::Seconds(30));
  Mutex mu;
  CondVar cv;
  LockResult plain = LockResult::kBusy;
  bool threw = false, owns_after_throw = true;
  std::thread plain_waiter([&] {
    ASSERT_EQ(mu.Lock(), LockResult::kOk);
    plain = cv.Wait(mu);
    if (Acquired(plain)) mu.Unlock();
  });
  while (cv.WaitersForTesting() != 1) std::this_thread::yield();
  std::thread std_waiter([&] {
    std::unique_lock<Mutex> lock(mu);
    try {
      cv.wait(lock);
    } catch (const std::system_error& e) {
      threw = e.code() == std::errc::state_not_recoverable;
      owns_after_throw = lock.owns_lock();
    }
  });
  while (cv.WaitersForTesting() != 2) std::this_thread::yield();
  std::thread dying([&] { ASSERT_EQ(mu.Lock(), LockResult::kOk); });  // exits holding mu
  dying.join();
  ASSERT_EQ(mu.Lock(), LockResult::kOwnerDied);
  cv.SignalAll();
  mu.Unlock();  // without MarkConsistent: not recoverable
  plain_waiter.join();
  std_waiter.join();
  EXPECT_EQ(plain, LockResult::kNotRecoverable);
  EXPECT_TRUE(threw);
  EXPECT_FALSE(owns_after_throw);
  EXPECT_TRUE(mu.IsNotRecoverable());
}

TEST(CondVarTest, SharedMemoryLayout) {
  static_assert(sizeof(CondVar) == 8);
  static_assert(std::is_trivially_destructible_v<CondVar>);
  alignas(CondVar) unsigned char raw[sizeof(CondVar)] = {};
  auto* cv = new (raw) CondVar;  // all-zero bytes are a valid CondVar
  cv->SignalAll();
  EXPECT_EQ(cv->SequenceForTesting(), 0u);
}

TEST(CondVarDeathTest, WaitWithoutTheMutexAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Mutex mu;
  CondVar cv;
  EXPECT_DEATH((void)cv.WaitFor(mu, absl::Milliseconds(1)), "does not hold the mutex");
}

// ---- Cross-process: a Mutex + CondVar in a named SharedBuffer ----

using ::wharf::testing::CondVarShared;  // tests/sync/lock_shared_state.h

TEST(CondVarProcessTest, PingPongAcrossProcesses) {
  Watchdog dog("PingPongAcrossProcesses", absl::Seconds(60));
  constexpr int kRounds = 5000;
  const std::string name = UniqueName("cond_var");
  auto buffer = SharedBuffer::CreateNamed(name, 4096);
  ASSERT_TRUE(buffer.ok()) << buffer.status();
  auto* s = new (buffer->data()) CondVarShared{};
  auto child = Subprocess::Spawn(HelperPath("tests/sync/sync_process_helper"),
                                 {"condvar_pingpong", name, std::to_string(kRounds), "1"});
  ASSERT_TRUE(child.ok()) << child.status();
  for (int i = 0; i < kRounds; ++i) {
    ASSERT_EQ(s->mu.Lock(), LockResult::kOk);
    while (s->turn != 0) {
      // Bounded waits: a dead child fails the test instead of hanging it.
      const CondVarWaitResult r = s->cv.WaitFor(s->mu, absl::Seconds(30));
      ASSERT_EQ(r.lock, LockResult::kOk);
      ASSERT_FALSE(r.timed_out) << "round " << i;
    }
    ++s->value;
    s->turn = 1;
    s->cv.Signal();
    s->mu.Unlock();
  }
  auto code = child->Wait(absl::Seconds(30));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
  EXPECT_EQ(s->value, 2 * kRounds);
  buffer = SharedBuffer();
  EXPECT_FALSE(SharedBuffer::OpenNamed(name).ok());
}

}  // namespace
}  // namespace wharf

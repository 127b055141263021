#include "wharf/sync/atomics.h"

#include <time.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/unique_name.h"
#include "tests/testing/watchdog.h"
#include "wharf/sync/internal/str_cat.h"
#include "wharf/sync/shared_buffer.h"

namespace wharf {
namespace {

using testing::Watchdog;

template <class T>
class AtomicsTypedTest : public ::testing::Test {};
using CellTypes = ::testing::Types<int32_t, uint32_t, int64_t, uint64_t>;
TYPED_TEST_SUITE(AtomicsTypedTest, CellTypes);

TYPED_TEST(AtomicsTypedTest, ReadModifyWriteReturnsTheOldValue) {
  using T = TypeParam;
  T cell = 10;
  EXPECT_EQ(atomics::Load(cell), T{10});
  EXPECT_EQ(atomics::Store(cell, T{12}), T{12});
  EXPECT_EQ(atomics::Add(cell, T{5}), T{12});
  EXPECT_EQ(atomics::Sub(cell, T{7}), T{17});
  EXPECT_EQ(atomics::And(cell, T{0b1100}), T{10});
  EXPECT_EQ(atomics::Or(cell, T{0b0011}), T{0b1000});
  EXPECT_EQ(atomics::Xor(cell, T{0b1111}), T{0b1011});
  EXPECT_EQ(atomics::Exchange(cell, T{42}), T{0b0100});
  EXPECT_EQ(atomics::CompareExchange(cell, T{41}, T{1}), T{42});  // not replaced
  EXPECT_EQ(cell, T{42});
  EXPECT_EQ(atomics::CompareExchange(cell, T{42}, T{1}), T{42});  // replaced
  EXPECT_EQ(cell, T{1});
}

TYPED_TEST(AtomicsTypedTest, ArithmeticWrapsLikeTheCellType) {
  using T = TypeParam;
  T cell = std::numeric_limits<T>::max();
  atomics::Add(cell, T{1});
  EXPECT_EQ(cell, std::numeric_limits<T>::min());
}

TYPED_TEST(AtomicsTypedTest, WaitReturnsNotEqualAndTimedOut) {
  using T = TypeParam;
  T cell = 3;
  EXPECT_EQ(atomics::Wait(cell, T{4}), WaitResult::kNotEqual);
  EXPECT_EQ(atomics::Wait(cell, T{3}, absl::Milliseconds(5)), WaitResult::kTimedOut);
  EXPECT_EQ(atomics::Wait(cell, T{3}, absl::ZeroDuration()), WaitResult::kTimedOut);
  WaitOptions spin;
  spin.spin = absl::Microseconds(20);
  EXPECT_EQ(atomics::Wait(cell, T{3}, absl::Milliseconds(5), spin), WaitResult::kTimedOut);
}

TYPED_TEST(AtomicsTypedTest, NotifyWithNoWaiterWakesNone) {
  TypeParam cell = 0;
  EXPECT_EQ(atomics::Notify(cell), 0);
  EXPECT_EQ(atomics::Notify(cell, 0), 0);
}

TEST(AtomicsTest, IsLockFree) {
  EXPECT_TRUE(atomics::IsLockFree(1));
  EXPECT_TRUE(atomics::IsLockFree(2));
  EXPECT_TRUE(atomics::IsLockFree(4));
  EXPECT_TRUE(atomics::IsLockFree(8));
  EXPECT_FALSE(atomics::IsLockFree(3));
  EXPECT_FALSE(atomics::IsLockFree(16));
  EXPECT_FALSE(atomics::IsLockFree(0));
}

// True when thread `tid` of this process is blocked in a futex syscall
// (futex = 202, futex_waitv = 449 on x86-64).
bool BlockedInFutex(pid_t tid) {
  std::ifstream in(sync_internal::Cat("/proc/self/task/", tid, "/syscall"));
  std::string nr;
  in >> nr;
#if defined(__x86_64__)
  return nr == "202" || nr == "449";
#else
  return nr != "running" && !nr.empty();
#endif
}

template <class T>
void ExpectNotifyCountsExactly(FutexScope scope = FutexScope::kShared) {
  WaitOptions options;
  options.scope = scope;
  Watchdog dog("NotifyCountsExactly", absl::Seconds(60));
  T cell = 0;
  constexpr int kWaiters = 3;
  std::atomic<int> woken{0};
  std::vector<std::atomic<pid_t>> tids(kWaiters);
  std::vector<std::thread> waiters;
  for (int i = 0; i < kWaiters; ++i) {
    waiters.emplace_back([&, i] {
      tids[i] = static_cast<pid_t>(::gettid());
      EXPECT_EQ(atomics::Wait(cell, T{0}, absl::InfiniteDuration(), options), WaitResult::kOk);
      woken.fetch_add(1);
    });
  }
  for (int i = 0; i < kWaiters; ++i) {
    while (tids[i].load() == 0 || !BlockedInFutex(tids[i].load())) std::this_thread::yield();
  }
  EXPECT_EQ(atomics::Notify(cell, 0, scope), 0);   // count 0 wakes none
  atomics::Store(cell, T{1});                      // a store alone wakes no one
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(woken.load(), 0);
  EXPECT_EQ(atomics::Notify(cell, 2, scope), 2);   // exactly the number woken
  EXPECT_EQ(atomics::Notify(cell, INT_MAX, scope), 1);
  EXPECT_EQ(atomics::Notify(cell, INT_MAX, scope), 0);
  for (auto& t : waiters) t.join();
  EXPECT_EQ(woken.load(), kWaiters);
}

TEST(AtomicsTest, NotifyCountsExactly32) { ExpectNotifyCountsExactly<int32_t>(); }
TEST(AtomicsTest, NotifyCountsExactly64) { ExpectNotifyCountsExactly<int64_t>(); }
TEST(AtomicsTest, NotifyCountsExactlyPrivate32) {
  ExpectNotifyCountsExactly<uint32_t>(FutexScope::kPrivate);
}
TEST(AtomicsTest, NotifyCountsExactlyPrivate64) {
  ExpectNotifyCountsExactly<uint64_t>(FutexScope::kPrivate);
}

TEST(AtomicsTest, SixtyFourBitWaitSeesAHighHalfOnlyChange) {
  Watchdog dog("SixtyFourBitHighHalf", absl::Seconds(30));
  uint64_t cell = 7;
  EXPECT_EQ(atomics::Wait(cell, uint64_t{7} + (uint64_t{1} << 32)), WaitResult::kNotEqual);
  std::atomic<pid_t> tid{0};
  std::thread waiter([&] {
    tid = static_cast<pid_t>(::gettid());
    EXPECT_EQ(atomics::Wait(cell, uint64_t{7}), WaitResult::kOk);
  });
  while (tid.load() == 0 || !BlockedInFutex(tid.load())) std::this_thread::yield();
  atomics::Store(cell, uint64_t{7} + (uint64_t{1} << 32));  // low half unchanged
  EXPECT_EQ(atomics::Notify(cell), 1);
  waiter.join();
}

// Two threads hand a token back and forth 10^5 times: a lost wake-up would
// hang (the watchdog turns that into a failure with a message).
template <class T>
void PingPong(WaitOptions options, int rounds) {
  Watchdog dog("Atomics ping-pong", absl::Seconds(240));
  T turn = 0;  // even: ping's turn; odd: pong's
  auto player = [&](T parity) {
    for (int i = 0; i < rounds; ++i) {
      for (;;) {
        const T seen = atomics::Load(turn);
        if ((seen & 1) == parity) break;
        atomics::Wait(turn, seen, absl::InfiniteDuration(), options);
      }
      atomics::Add(turn, T{1});
      atomics::Notify(turn, 1);
    }
  };
  std::thread pong(player, T{1});
  player(T{0});
  pong.join();
  EXPECT_EQ(turn, static_cast<T>(2 * rounds));
}

TEST(AtomicsStressTest, PingPong32NoLostWakeups) { PingPong<int32_t>({}, 100000); }
TEST(AtomicsStressTest, PingPong64NoLostWakeups) { PingPong<uint64_t>({}, 100000); }
TEST(AtomicsStressTest, PingPongWithSpinNoLostWakeups) {
  WaitOptions options;
  options.spin = absl::Microseconds(5);
  PingPong<int32_t>(options, 100000);
}
// Private scope skips Notify's syscall when nobody sleeps: the waiter-table
// protocol must still lose no wake-up, with and without a spin.
class AtomicsPrivatePingPongTest : public ::testing::TestWithParam<int> {};
INSTANTIATE_TEST_SUITE_P(SpinMicros, AtomicsPrivatePingPongTest, ::testing::Values(0, 5));

TEST_P(AtomicsPrivatePingPongTest, NoLostWakeups) {
  WaitOptions options;
  options.scope = FutexScope::kPrivate;
  options.spin = absl::Microseconds(GetParam());
  Watchdog dog("private ping-pong", absl::Seconds(120));
  int32_t turn = 0;
  auto player = [&](int32_t parity) {
    for (int i = 0; i < 50000; ++i) {
      for (;;) {
        const int32_t seen = atomics::Load(turn);
        if ((seen & 1) == parity) break;
        atomics::Wait(turn, seen, absl::InfiniteDuration(), options);
      }
      atomics::Add(turn, 1);
      atomics::Notify(turn, 1, FutexScope::kPrivate);
    }
  };
  std::thread pong(player, 1);
  player(0);
  pong.join();
  EXPECT_EQ(turn, 100000);
}

// An idle waiter with a spin option spins once, then sleeps: over 200 ms of
// waiting it uses far less CPU than the wall time (an upper bound only).
TEST(AtomicsTest, IdleSpinningWaiterSleepsAfterItsSpin) {
  int32_t cell = 0;
  WaitOptions options;
  options.spin = absl::Microseconds(50);
  timespec cpu_start, cpu_end;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu_start);
  EXPECT_EQ(atomics::Wait(cell, 0, absl::Milliseconds(200), options), WaitResult::kTimedOut);
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu_end);
  const absl::Duration cpu = absl::DurationFromTimespec(cpu_end) - absl::DurationFromTimespec(cpu_start);
  EXPECT_LT(cpu, absl::Milliseconds(50)) << "the waiter kept spinning";
}

// Wait/Notify between processes on a cell of a named SharedBuffer.
TEST(AtomicsProcessTest, PingPongBetweenProcesses) {
  Watchdog dog("Atomics process ping-pong", absl::Seconds(120));
  const std::string name = testing::UniqueName("atomics");
  auto buffer = SharedBuffer::CreateNamed(name, 4096);
  ASSERT_TRUE(buffer.ok()) << buffer.status();
  auto cells = buffer->View<int32_t>();
  ASSERT_TRUE(cells.ok()) << cells.status();
  constexpr int kRounds = 10000;
  auto child = testing::Subprocess::Spawn(
      testing::HelperPath("tests/sync/sync_process_helper"),
      {"atomics_pong", name, std::to_string(kRounds)});
  ASSERT_TRUE(child.ok()) << child.status();
  int32_t& turn = (*cells)[0];
  for (int i = 0; i < kRounds; ++i) {
    for (;;) {
      const int32_t seen = atomics::Load(turn);
      if ((seen & 1) == 0) break;
      atomics::Wait(turn, seen);
    }
    atomics::Add(turn, 1);
    atomics::Notify(turn, 1);
  }
  auto code = child->Wait(absl::Seconds(60));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
  EXPECT_EQ(atomics::Load(turn), 2 * kRounds);
  buffer = SharedBuffer();
  (void)SharedBuffer::Unlink(name);
}

}  // namespace
}  // namespace wharf

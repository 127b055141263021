#include "wharf/sync/barrier.h"

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
#include "wharf/sync/shared_buffer.h"

namespace wharf {
namespace {

using testing::HelperPath;
using testing::Subprocess;
using testing::UniqueName;
using testing::Watchdog;

TEST(BarrierTest, SingleParticipantIsAlwaysSerial) {
  Barrier barrier(1);
  for (uint32_t p = 0; p < 5; ++p) {
    EXPECT_EQ(barrier.Phase(), p);
    EXPECT_TRUE(barrier.ArriveAndWait());
  }
  EXPECT_EQ(barrier.Participants(), 1u);
}

TEST(BarrierTest, ArriveTokenAndWait) {
  Barrier barrier(2);
  Barrier::ArrivalToken first = barrier.arrive();
  EXPECT_FALSE(first.completed_phase());
  EXPECT_EQ(first.phase(), 0u);
  EXPECT_FALSE(barrier.WaitFor(first, absl::Milliseconds(5)));  // one missing
  Barrier::ArrivalToken second = barrier.arrive();
  EXPECT_TRUE(second.completed_phase());
  barrier.wait(first);   // phase 0 is over: returns at once
  barrier.wait(second);
  EXPECT_EQ(barrier.Phase(), 1u);
}

TEST(BarrierTest, ArriveWithCount) {
  Barrier barrier(3);
  auto token = barrier.arrive(2);
  EXPECT_FALSE(token.completed_phase());
  EXPECT_TRUE(barrier.arrive(1).completed_phase());
  EXPECT_TRUE(barrier.WaitUntil(token, absl::InfinitePast()));
}

TEST(BarrierTest, WaitUntilTimesOutThenCompletes) {
  Watchdog dog("WaitUntilTimesOutThenCompletes", absl::Seconds(30));
  Barrier barrier(2);
  const absl::Time start = absl::Now();
  auto token = barrier.arrive();
  EXPECT_FALSE(barrier.WaitUntil(token, absl::Now() + absl::Milliseconds(20)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(20));
  // The arrival still counts: the other participant completes the phase.
  std::thread other([&] { EXPECT_TRUE(barrier.ArriveAndWait()); });
  other.join();
  EXPECT_TRUE(barrier.WaitFor(token, absl::Seconds(10)));
}

TEST(BarrierTest, DropReducesLaterPhases) {
  Watchdog dog("DropReducesLaterPhases", absl::Seconds(30));
  Barrier barrier(3);
  std::thread dropper([&] { barrier.arrive_and_drop(); });
  std::thread stayer([&] { barrier.arrive_and_wait(); });
  barrier.arrive_and_wait();  // phase 0 needs all three
  dropper.join();
  stayer.join();
  EXPECT_EQ(barrier.Participants(), 2u);
  EXPECT_EQ(barrier.Phase(), 1u);
  // Phase 1: two participants complete it.
  std::thread other([&] { barrier.arrive_and_wait(); });
  barrier.arrive_and_wait();
  other.join();
  EXPECT_EQ(barrier.Phase(), 2u);
  // The last two drop too: the barrier ends with no participants.
  barrier.ArriveAndDrop();
  barrier.ArriveAndDrop();
  EXPECT_EQ(barrier.Participants(), 0u);
  EXPECT_EQ(barrier.Phase(), 3u);
}

TEST(BarrierTest, CompletionRunsBeforeRelease) {
  Watchdog dog("CompletionRunsBeforeRelease", absl::Seconds(60));
  constexpr int kThreads = 4;
  constexpr int kPhases = 200;
  Barrier barrier(kThreads);
  int completed_phases = 0;  // plain: written only by the completion step
  std::atomic<int> completions{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int p = 0; p < kPhases; ++p) {
        barrier.ArriveAndWait([&] {
          ++completed_phases;
          completions.fetch_add(1);
        });
        // Every participant sees this phase's completion.
        if (completed_phases != p + 1) errors.fetch_add(1);
        // Keep the next completion from racing the read above.
        barrier.arrive_and_wait();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(completions.load(), kPhases);
  EXPECT_EQ(completed_phases, kPhases);
}

// N threads start on a std::barrier, then run many phases of our barrier:
// exactly one serial participant per phase, and every participant sees the
// writes all others made before arriving.
TEST(BarrierTest, StressReuseExactlyOneSerialPerPhase) {
  Watchdog dog("StressReuseExactlyOneSerialPerPhase", absl::Seconds(60));
  constexpr int kThreads = 4;
  constexpr int kPhases = 3000;
  Barrier barrier(kThreads);
  std::barrier start(kThreads);
  std::vector<std::atomic<int>> serials(kPhases);
  // slots[p % 2][t]: written by t in phase p, read by all after the barrier.
  int slots[2][kThreads] = {};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int p = 0; p < kPhases; ++p) {
        slots[p % 2][t] = p;
        if (barrier.ArriveAndWait()) serials[p].fetch_add(1);
        for (int o = 0; o < kThreads; ++o) {
          if (slots[p % 2][o] != p) errors.fetch_add(1);
        }
        // slots[p % 2] is written again in phase p + 2, after everyone
        // passed phase p + 1's barrier: no race with the reads above.
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  for (int p = 0; p < kPhases; ++p) ASSERT_EQ(serials[p].load(), 1) << "phase " << p;
  EXPECT_EQ(barrier.Phase(), static_cast<uint32_t>(kPhases));
}

TEST(BarrierTest, SharedMemoryLayout) {
  static_assert(sizeof(Barrier) == 16);
  static_assert(std::is_trivially_destructible_v<Barrier>);
  alignas(Barrier) unsigned char raw[sizeof(Barrier)];
  auto* b = new (raw) Barrier(1);
  EXPECT_TRUE(b->ArriveAndWait());
}

TEST(BarrierDeathTest, NoParticipantsAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Barrier empty(0);
  EXPECT_DEATH((void)empty.ArriveAndWait(), "no participants");
  Barrier one(1);
  one.ArriveAndDrop();
  EXPECT_DEATH((void)one.arrive(), "no participants");
}

TEST(BarrierDeathTest, TooManyArrivalsAbort) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Barrier barrier(2);
  EXPECT_DEATH((void)barrier.arrive(3), "more arrivals than participants");
  EXPECT_DEATH((void)barrier.arrive(0), "n < 1");
  EXPECT_DEATH((void)Barrier(0x80000000u), "larger than Barrier::kMax");
}

// ---- Cross-process: parent and children run phases of one Barrier ----

using ::wharf::testing::BarrierShared;  // tests/sync/lock_shared_state.h

TEST(BarrierProcessTest, PhasesAcrossProcesses) {
  Watchdog dog("PhasesAcrossProcesses", absl::Seconds(60));
  constexpr int kChildren = 2;
  constexpr int kPhases = 300;
  const std::string name = UniqueName("barrier");
  auto buffer = SharedBuffer::CreateNamed(name, 4096);
  ASSERT_TRUE(buffer.ok()) << buffer.status();
  auto* s = new (buffer->data()) BarrierShared{Barrier(kChildren + 1), 0, 0};
  std::vector<Subprocess> children;
  for (int i = 0; i < kChildren; ++i) {
    auto child = Subprocess::Spawn(HelperPath("tests/sync/sync_process_helper"),
                                   {"barrier_phases", name, std::to_string(kPhases)});
    ASSERT_TRUE(child.ok()) << child.status();
    children.push_back(*std::move(child));
  }
  uint32_t serial_here = 0;
  for (int p = 0; p < kPhases; ++p) {
    auto token = s->barrier.arrive();
    if (token.completed_phase()) ++serial_here;
    ASSERT_TRUE(s->barrier.WaitFor(token, absl::Seconds(30))) << "phase " << p;
  }
  for (auto& child : children) {
    auto code = child.Wait(absl::Seconds(30));
    ASSERT_TRUE(code.ok()) << code.status();
    EXPECT_EQ(*code, 0);
  }
  EXPECT_EQ(atomics::Load(s->serials) + serial_here, static_cast<uint32_t>(kPhases));
  EXPECT_EQ(atomics::Load(s->errors), 0u);
  EXPECT_EQ(s->barrier.Phase(), static_cast<uint32_t>(kPhases));
  buffer = SharedBuffer();
  EXPECT_FALSE(SharedBuffer::OpenNamed(name).ok());
}

}  // namespace
}  // namespace wharf

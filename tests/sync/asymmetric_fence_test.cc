#include "wharf/sync/internal/asymmetric_fence.h"

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/watchdog.h"
#include "wharf/sync/internal/spin.h"

namespace wharf::sync_internal {
namespace {

using testing::Watchdog;

// The store-buffering litmus test (Dekker): with plain stores and loads on
// x86 both loads return 0 in a good share of rounds (the stores wait in the
// store buffers). With LightFence on one side and HeavyFence on the other,
// never.
struct alignas(64) Cell {
  std::atomic<int> v{0};
};

// Waits for the other thread of a round: pauses, and yields every 4096 of
// them (~0.1 ms), because on a loaded machine the other thread may be waiting
// for this very CPU (pure spinning made a round cost up to a scheduler time
// slice: 20000 rounds under TSan with two busy loops beside them ran past
// Bazel's 60 s). The spin before a yield is long enough that a running peer
// is met spinning, as the litmus needs (without the fences, yielding every
// 256 pauses no longer showed violations; every 4096 shows them as often as
// pure spinning: 0-3 in 20000 rounds on the 2-core VM).
template <class Ready>
void AwaitOther(Ready ready) {
  for (int spins = 1; !ready(); ++spins) {
    if (spins % 4096 == 0) {
      std::this_thread::yield();
    } else {
      CpuRelax();
    }
  }
}

struct LitmusResult {
  int rounds = 0;
  int violations = 0;  // rounds in which both loads missed the other store
};

// Up to `max_rounds` rounds, and no more once `budget` is spent (at least
// one): a stress bounded by count or time, whichever comes first. The
// verdict (no violation) does not depend on how many rounds ran.
LitmusResult StoreBuffering(int max_rounds, absl::Duration budget) {
  Cell x, y;
  alignas(64) std::atomic<int> go{0};  // the round to play; -1: stop
  alignas(64) std::atomic<int> done{0};
  int r_heavy = 0;
  std::thread heavy([&] {
    for (int round = 1;; ++round) {
      int g = 0;
      AwaitOther([&] {
        g = go.load(std::memory_order_acquire);
        return g == round || g < 0;
      });
      if (g < 0) return;
      y.v.store(1, std::memory_order_relaxed);
      HeavyFence();
      r_heavy = x.v.load(std::memory_order_relaxed);
      done.store(round, std::memory_order_release);
    }
  });
  LitmusResult result;
  const absl::Time end = absl::Now() + budget;
  for (int round = 1; round <= max_rounds && (round == 1 || absl::Now() < end); ++round) {
    x.v.store(0, std::memory_order_relaxed);
    y.v.store(0, std::memory_order_relaxed);
    go.store(round, std::memory_order_release);
    x.v.store(1, std::memory_order_relaxed);
    LightFence();
    const int r_light = y.v.load(std::memory_order_relaxed);
    AwaitOther([&] { return done.load(std::memory_order_acquire) == round; });
    if (r_light == 0 && r_heavy == 0) ++result.violations;
    result.rounds = round;
  }
  go.store(-1, std::memory_order_release);
  heavy.join();
  return result;
}

TEST(AsymmetricFenceTest, StoreBufferingNeverLosesBothStores) {
  Watchdog dog("StoreBuffering", absl::Seconds(50));
  const LitmusResult r = StoreBuffering(20000, absl::Seconds(5));
  EXPECT_EQ(r.violations, 0) << "in " << r.rounds << " rounds";
  std::fprintf(stderr, "store buffering: %d rounds\n", r.rounds);
}

TEST(AsymmetricFenceTest, HeavyFenceWorksInAForkedChild) {
  HeavyFence();  // registered in the parent
  const pid_t pid = fork();  // single-threaded here: TSan allows threads in the child
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    alarm(50);  // a hung child dies (SIGALRM) rather than outlive the test
    // The child inherits the probed mode; HeavyFence must still work
    // (re-register or fall back) and the litmus test must still hold.
    HeavyFence();
    _exit(StoreBuffering(2000, absl::Seconds(2)).violations == 0 ? 0 : 1);
  }
  Watchdog dog("HeavyFenceWorksInAForkedChild", absl::Seconds(50));  // after fork
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// The cross-process pair: the cells in a MAP_SHARED mapping, the light side
// (LightFenceShared) in this process and the heavy side (HeavyFenceShared)
// in a forked child — two address spaces, as a ring's writer and its
// sleeping reader are.
struct SharedLitmus {
  Cell x, y;
  alignas(64) std::atomic<int> go{0};  // the round to play; -1: stop
  alignas(64) std::atomic<int> done{0};
  alignas(64) std::atomic<int> r_heavy{0};
  std::atomic<int> heavy_refused{0};  // HeavyFenceShared returned false
};
static_assert(std::atomic<int>::is_always_lock_free);

LitmusResult SharedStoreBuffering(int max_rounds, absl::Duration budget, bool* child_ok) {
  void* mem = mmap(nullptr, sizeof(SharedLitmus), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    ADD_FAILURE() << "mmap failed";
    return {};
  }
  auto* m = new (mem) SharedLitmus;
  const pid_t pid = fork();
  if (pid < 0) {
    ADD_FAILURE() << "fork failed";
    return {};
  }
  if (pid == 0) {
    alarm(50);  // a hung child dies (SIGALRM) rather than outlive the test
    for (int round = 1;; ++round) {
      int g = 0;
      AwaitOther([&] {
        g = m->go.load(std::memory_order_acquire);
        return g == round || g < 0;
      });
      if (g < 0) _exit(0);
      m->y.v.store(1, std::memory_order_relaxed);
      if (!HeavyFenceShared()) m->heavy_refused.store(1, std::memory_order_relaxed);
      m->r_heavy.store(m->x.v.load(std::memory_order_relaxed), std::memory_order_relaxed);
      m->done.store(round, std::memory_order_release);
    }
  }
  LitmusResult result;
  const absl::Time end = absl::Now() + budget;
  for (int round = 1; round <= max_rounds && (round == 1 || absl::Now() < end); ++round) {
    m->x.v.store(0, std::memory_order_relaxed);
    m->y.v.store(0, std::memory_order_relaxed);
    m->go.store(round, std::memory_order_release);
    m->x.v.store(1, std::memory_order_relaxed);
    LightFenceShared();
    const int r_light = m->y.v.load(std::memory_order_relaxed);
    AwaitOther([&] { return m->done.load(std::memory_order_acquire) == round; });
    if (r_light == 0 && m->r_heavy.load(std::memory_order_relaxed) == 0) ++result.violations;
    result.rounds = round;
  }
  m->go.store(-1, std::memory_order_release);
  int status = 0;
  *child_ok = waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
              m->heavy_refused.load() == 0;
  munmap(mem, sizeof(SharedLitmus));
  return result;
}

TEST(AsymmetricFenceTest, SharedStoreBufferingAcrossProcessesNeverLosesBothStores) {
  Watchdog dog("SharedStoreBuffering", absl::Seconds(50));
  bool child_ok = false;
  const LitmusResult r = SharedStoreBuffering(20000, absl::Seconds(5), &child_ok);
  EXPECT_TRUE(child_ok) << "the heavy side's process failed, or the kernel refused it the fence";
  EXPECT_EQ(r.violations, 0) << "in " << r.rounds << " rounds";
  std::fprintf(stderr, "shared store buffering: %d rounds, light side %s\n", r.rounds,
               asymmetric_fence_internal::shared_mode.load() == 1 ? "a compiler barrier"
                                                                  : "a real fence");
}

// A forked child re-probes (and re-registers) before its light side drops
// its fence: the pair holds with the light side in the child.
TEST(AsymmetricFenceTest, LightFenceSharedIsSafeInAForkedChild) {
  LightFenceShared();  // probed (and registered) in the parent
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    alarm(50);
    if (asymmetric_fence_internal::shared_mode.load() != 0) _exit(2);  // not reset at fork
    bool child_ok = false;
    const LitmusResult r = SharedStoreBuffering(2000, absl::Seconds(2), &child_ok);
    _exit(r.violations == 0 && child_ok ? 0 : 1);
  }
  Watchdog dog("LightFenceSharedIsSafeInAForkedChild", absl::Seconds(50));  // after fork
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace wharf::sync_internal

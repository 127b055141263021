#include "wharf/sync/internal/asymmetric_fence.h"

#include <unistd.h>
#include <sys/wait.h>

#include <atomic>
#include <thread>

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

int StoreBufferingViolations(int rounds) {
  Cell x, y;
  alignas(64) std::atomic<int> go{0};
  alignas(64) std::atomic<int> done{0};
  int r_heavy = 0;
  std::thread heavy([&] {
    for (int round = 1; round <= rounds; ++round) {
      while (go.load(std::memory_order_acquire) != round) CpuRelax();
      y.v.store(1, std::memory_order_relaxed);
      HeavyFence();
      r_heavy = x.v.load(std::memory_order_relaxed);
      done.store(round, std::memory_order_release);
    }
  });
  int violations = 0;
  for (int round = 1; round <= rounds; ++round) {
    x.v.store(0, std::memory_order_relaxed);
    y.v.store(0, std::memory_order_relaxed);
    go.store(round, std::memory_order_release);
    x.v.store(1, std::memory_order_relaxed);
    LightFence();
    const int r_light = y.v.load(std::memory_order_relaxed);
    while (done.load(std::memory_order_acquire) != round) CpuRelax();
    if (r_light == 0 && r_heavy == 0) ++violations;
  }
  heavy.join();
  return violations;
}

TEST(AsymmetricFenceTest, StoreBufferingNeverLosesBothStores) {
  Watchdog dog("StoreBuffering", absl::Seconds(120));
  EXPECT_EQ(StoreBufferingViolations(20000), 0);
}

TEST(AsymmetricFenceTest, HeavyFenceWorksInAForkedChild) {
  HeavyFence();  // registered in the parent
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The child inherits the probed mode; HeavyFence must still work
    // (re-register or fall back) and the litmus test must still hold.
    HeavyFence();
    _exit(StoreBufferingViolations(2000) == 0 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace wharf::sync_internal

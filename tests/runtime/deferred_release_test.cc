#include "wharf/runtime/internal/deferred_release.h"

#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/watchdog.h"
#include "wharf/runtime/buffer.h"

namespace wharf::runtime_internal {
namespace {

using ::wharf::testing::Watchdog;

constexpr size_t kLarge = kDeferReleaseAbove * 2;  // released on the background thread

int OpenFds() {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    (void)e;
    ++n;
  }
  return n;
}

// True once at most `limit` descriptors are open (the background thread has
// caught up), waiting up to `patience`.
bool FdsFallTo(int limit, absl::Duration patience) {
  const absl::Time until = absl::Now() + patience;
  while (OpenFds() > limit) {
    if (absl::Now() >= until) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

// Releases `n` large shared Buffers.
void ReleaseMany(int n) {
  for (int i = 0; i < n; ++i) {
    Buffer b = Buffer::AllocateShared(kLarge).value();
    b.data()[0] = std::byte{1};
    DeferRelease(std::move(b));
    EXPECT_EQ(b.size(), 0u) << "the caller's Buffer is left empty";
  }
}

TEST(DeferredReleaseTest, LargeSharedBuffersAreReleasedSoon) {
  Watchdog dog("deferred release", absl::Seconds(30));
  const int before = OpenFds();
  ReleaseMany(200);
  EXPECT_TRUE(FdsFallTo(before, absl::Seconds(10)))
      << OpenFds() - before << " descriptors still held";
}

TEST(DeferredReleaseTest, SmallAndHeapBuffersAreReleasedAtOnce) {
  const int before = OpenFds();
  Buffer small = Buffer::AllocateShared(4096).value();
  EXPECT_EQ(OpenFds(), before + 1);
  DeferRelease(std::move(small));
  EXPECT_EQ(OpenFds(), before);  // no thread hop
  Buffer heap = Buffer::Allocate(kLarge).value();
  DeferRelease(std::move(heap));
  EXPECT_EQ(heap.size(), 0u);
}

// A child of fork() (without exec) has none of its parent's threads: it must
// not queue onto the parent's releaser, whose thread is not there (it kept
// every mapping and descriptor it transferred until it ran out of them).
TEST(DeferredReleaseTest, AForkedChildReleasesOnItsOwnThread) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "TSan does not support fork() of a multithreaded process";
#endif
  Watchdog dog("deferred release after fork", absl::Seconds(60));
  ReleaseMany(1);  // the parent's releaser thread exists
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const int before = OpenFds();
    for (int i = 0; i < 200; ++i) {
      Buffer b = Buffer::AllocateShared(kLarge).value();
      b.data()[0] = std::byte{1};
      DeferRelease(std::move(b));
    }
    ::_exit(FdsFallTo(before, absl::Seconds(20)) ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "child status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the forked child's transferred Buffers were never released";
}

}  // namespace
}  // namespace wharf::runtime_internal

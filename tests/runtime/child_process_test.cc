#include "wharf/runtime/internal/child_process.h"

#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "wharf/runtime/event_loop.h"
#include "tests/testing/watchdog.h"

namespace wharf::runtime_internal {
namespace {

using ::wharf::testing::Watchdog;

ChildProcess Sh(const std::string& script) {
  auto child = ChildProcess::Spawn({.path = "/bin/sh", .argv = {"sh", "-c", script}});
  EXPECT_TRUE(child.ok()) << child.status();
  return std::move(child).value();
}

TEST(ChildProcessTest, ExitCodeIsReported) {
  Watchdog dog("exit code", absl::Seconds(30));
  ChildProcess child = Sh("exit 3");
  absl::StatusOr<ExitStatus> end = child.Wait(absl::Now() + absl::Seconds(20));
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(end->code, 3);
  EXPECT_EQ(end->signal, 0);
  EXPECT_FALSE(end->ok());
  EXPECT_EQ(end->ToString(), "exited with code 3");
  // Reaped once; the status stays.
  EXPECT_EQ((*child.TryReap())->code, 3);
}

TEST(ChildProcessTest, SignalDeathNamesTheSignal) {
  Watchdog dog("signal", absl::Seconds(30));
  ChildProcess child = Sh("sleep 30");
  EXPECT_FALSE(child.TryReap()->has_value());  // running
  ASSERT_TRUE(child.Kill(SIGKILL).ok());
  absl::StatusOr<ExitStatus> end = child.Wait(absl::Now() + absl::Seconds(20));
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(end->signal, SIGKILL);
  EXPECT_EQ(end->ToString(), "killed by signal 9 (SIGKILL)");
  EXPECT_TRUE(child.Kill(SIGTERM).ok());  // reaped: a no-op, never another process
}

TEST(ChildProcessTest, PidfdBecomesReadableWhenTheChildEnds) {
  Watchdog dog("pidfd", absl::Seconds(30));
  ChildProcess child = Sh("exit 0");
  pollfd p{child.pidfd(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 20000), 1);
  EXPECT_TRUE((*child.TryReap())->ok());
}

TEST(ChildProcessTest, EnvironmentIsPassedWhenGiven) {
  Watchdog dog("env", absl::Seconds(30));
  auto child = ChildProcess::Spawn({.path = "/bin/sh",
                                    .argv = {"sh", "-c", "test \"$WHARF_X\" = yes && test -z \"$HOME\""},
                                    .env = std::vector<std::string>{"WHARF_X=yes"}});
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_TRUE(child->Wait(absl::Now() + absl::Seconds(20))->ok());
}

TEST(ChildProcessTest, WaitTimesOutAndTheDestructorKillsAndReaps) {
  Watchdog dog("destructor", absl::Seconds(30));
  pid_t pid = -1;
  {
    ChildProcess child = Sh("sleep 30");
    pid = child.pid();
    absl::StatusOr<ExitStatus> end = child.Wait(absl::Now() + absl::Milliseconds(20));
    EXPECT_EQ(end.status().code(), absl::StatusCode::kDeadlineExceeded);
  }
  // Killed and reaped: not our child any more (no zombie left).
  EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

// What a process Worker's owner does: its loop watches the pidfd and learns
// of the end (and how) without a thread or SIGCHLD; the watch keeps the loop
// alive until then.
TEST(ChildProcessTest, AnEventLoopLearnsOfTheEndThroughThePidfd) {
  Watchdog dog("pidfd on a loop", absl::Seconds(30));
  EventLoop loop;
  ChildProcess child = Sh("sleep 0.05; kill -SEGV $$");
  std::optional<ExitStatus> seen;
  std::optional<FdWatchId> watch;
  absl::StatusOr<FdWatchId> id = loop.WatchFd(child.pidfd(), [&] {
    absl::StatusOr<std::optional<ExitStatus>> end = child.TryReap();
    ASSERT_TRUE(end.ok()) << end.status();
    if (!end->has_value()) return;  // not yet: watched again
    seen = **end;
    loop.UnwatchFd(*watch);
  });
  ASSERT_TRUE(id.ok()) << id.status();
  watch = *id;
  loop.Run();
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->signal, SIGSEGV);
  EXPECT_EQ(seen->ToString().rfind("killed by signal 11 (SIGSEGV)", 0), 0u) << seen->ToString();
}

TEST(ChildProcessTest, BadExecutableIsAClearError) {
  absl::StatusOr<ChildProcess> missing = ChildProcess::Spawn({.path = "/no/such/wharf-binary"});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("/no/such/wharf-binary"), std::string::npos)
      << missing.status();
  EXPECT_EQ(ChildProcess::Spawn({}).status().code(), absl::StatusCode::kInvalidArgument);
  // A file without execute permission, and an "executable" that is not a
  // program.
  const std::string dir = std::getenv("TEST_TMPDIR") != nullptr ? std::getenv("TEST_TMPDIR") : "/tmp";
  const std::string plain = dir + "/wharf_child_plain";
  const std::string garbage = dir + "/wharf_child_garbage";
  for (const std::string& path : {plain, garbage}) {
    std::ofstream(path) << "\x01\x02 not a program\n";
  }
  ASSERT_EQ(::chmod(plain.c_str(), 0644), 0);
  ASSERT_EQ(::chmod(garbage.c_str(), 0755), 0);
  absl::StatusOr<ChildProcess> no_x = ChildProcess::Spawn({.path = plain});
  EXPECT_EQ(no_x.status().code(), absl::StatusCode::kPermissionDenied) << no_x.status();
  absl::StatusOr<ChildProcess> bad = ChildProcess::Spawn({.path = garbage});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kFailedPrecondition) << bad.status();
  std::remove(plain.c_str());
  std::remove(garbage.c_str());
}

TEST(ChildProcessTest, MovedFromIsEmpty) {
  ChildProcess a = Sh("exit 0");
  ChildProcess b = std::move(a);
  EXPECT_EQ(a.pidfd(), -1);  // NOLINT(bugprone-use-after-move): checked on purpose
  EXPECT_EQ(a.TryReap().status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(b.Wait(absl::Now() + absl::Seconds(20))->ok());
}

}  // namespace
}  // namespace wharf::runtime_internal

// Subprocess: start a helper binary (posix_spawn: never a bare fork() of a
// threaded test), wait for it with a bound, kill it.
//
//   auto child = Subprocess::Spawn(HelperPath("tests/sync/sync_process_helper"),
//                                  {"mutex-contend", name, "1000"});
//   ASSERT_OK(child.status());
//   EXPECT_EQ(child->Wait(absl::Seconds(30)).value(), 0);
#ifndef WHARF_TESTS_TESTING_SUBPROCESS_H_
#define WHARF_TESTS_TESTING_SUBPROCESS_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace wharf::testing {

// A path to a binary built by Bazel in this repository, given as its
// workspace-relative path ("tests/sync/sync_process_helper"). Tests run in the
// runfiles tree, so this resolves it against $TEST_SRCDIR/$TEST_WORKSPACE when
// set, else the current directory.
std::string HelperPath(const std::string& workspace_relative);

class Subprocess {
 public:
  static absl::StatusOr<Subprocess> Spawn(const std::string& path,
                                          const std::vector<std::string>& args);
  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&& other) noexcept;
  ~Subprocess();  // kills (SIGKILL) and reaps a child still running

  pid_t pid() const { return pid_; }

  // Waits for exit. Returns the exit code, or 128+signal for a signal death.
  // DeadlineExceeded (and the child is killed) if it runs past `timeout`.
  absl::StatusOr<int> Wait(absl::Duration timeout);

  // Never blocks: the exit code (128+signal for a signal death) once the
  // child has exited (reaping it), nullopt while it runs.
  std::optional<int> TryWait();

  // Sends SIGKILL (no-op if already reaped).
  void Kill();

 private:
  explicit Subprocess(pid_t pid) : pid_(pid) {}
  pid_t pid_ = -1;
  std::optional<int> exit_code_;  // once reaped
};

}  // namespace wharf::testing

#endif  // WHARF_TESTS_TESTING_SUBPROCESS_H_

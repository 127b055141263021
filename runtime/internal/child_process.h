// ChildProcess: a child process started with posix_spawn (never a bare
// fork() of a threaded parent) and watched through a pidfd — what a process
// Worker's owner side holds for its child.
//
//   auto child = ChildProcess::Spawn({.path = "/proc/self/exe", .argv = {...}});
//   loop.WatchFd(child->pidfd(), ...);        // readable once the child ended
//   ExitStatus end = child->TryReap()->value();
//   end.ToString();                           // "killed by signal 9 (SIGKILL)"
//
// The pidfd names this child and no other: Kill() uses pidfd_send_signal, so
// a child that was already reaped is never confused with a later process
// that got its pid. Destroying a ChildProcess whose child still runs kills
// it (SIGKILL) and reaps it: no zombie is left behind.
//
// Thread-safety: one thread at a time per object (move-only). Blocking: only
// Wait(). Errors: absl::Status naming the path and the failing call (NotFound
// for a missing executable, PermissionDenied for one that may not be run,
// FailedPrecondition for a file that is not a program).

#ifndef WHARF_RUNTIME_INTERNAL_CHILD_PROCESS_H_
#define WHARF_RUNTIME_INTERNAL_CHILD_PROCESS_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace wharf::runtime_internal {

// How a child ended: an exit code, or the signal that killed it.
struct ExitStatus {
  int code = 0;     // the exit code when signal == 0
  int signal = 0;   // the terminating signal, or 0 for a normal exit
  bool core_dumped = false;

  bool ok() const { return signal == 0 && code == 0; }
  // "exited with code 3", "killed by signal 9 (SIGKILL)", with ", core
  // dumped" when the kernel wrote one.
  std::string ToString() const;
};

class ChildProcess {
 public:
  struct Options {
    std::string path;               // the executable (no PATH search)
    std::vector<std::string> argv;  // argv[0] included; empty: {path}
    // The child's environment; nullopt: this process's (environ).
    std::optional<std::vector<std::string>> env;
    // Descriptors the child inherits: {fd here, fd number in the child}.
    // Every other descriptor of this process is closed in the child as far
    // as it is close-on-exec (Wharf opens all of its own that way).
    std::vector<std::pair<int, int>> inherit_fds;
  };

  // Starts the child. NotFound / PermissionDenied / Internal from
  // posix_spawn or pidfd_open, with the path in the message.
  static absl::StatusOr<ChildProcess> Spawn(const Options& options);

  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  // Readable (poll/epoll) once the child has ended; -1 after reaping.
  int pidfd() const { return pidfd_; }

  // Never blocks: the exit status once the child has ended (reaping it; the
  // same status on later calls), nullopt while it runs.
  absl::StatusOr<std::optional<ExitStatus>> TryReap();
  // Waits until the child ends or `deadline` (DeadlineExceeded; the child
  // keeps running).
  absl::StatusOr<ExitStatus> Wait(absl::Time deadline);
  // Sends `signal` to this child (no-op once it was reaped).
  absl::Status Kill(int signal);

 private:
  ChildProcess(pid_t pid, int pidfd) : pid_(pid), pidfd_(pidfd) {}
  void Release();

  pid_t pid_ = -1;
  int pidfd_ = -1;
  std::optional<ExitStatus> status_;  // once reaped
};

}  // namespace wharf::runtime_internal

#endif  // WHARF_RUNTIME_INTERNAL_CHILD_PROCESS_H_

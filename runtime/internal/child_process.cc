#include "wharf/runtime/internal/child_process.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "wharf/sync/internal/errno_status.h"

extern char** environ;

namespace wharf::runtime_internal {
namespace {

// Raw syscalls: Debian 12's <sys/pidfd.h> (glibc 2.36) declares these
// without C linkage, so C++ code cannot link against them.
int PidfdOpen(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }
int PidfdSendSignal(int pidfd, int signal) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0));
}

}  // namespace

std::string ExitStatus::ToString() const {
  if (signal == 0) return absl::StrCat("exited with code ", code);
  const char* name = sigabbrev_np(signal);
  return absl::StrCat("killed by signal ", signal, name != nullptr ? " (SIG" : "",
                      name != nullptr ? name : "", name != nullptr ? ")" : "",
                      core_dumped ? ", core dumped" : "");
}

namespace {

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

absl::StatusOr<ChildProcess> ChildProcess::Spawn(const Options& options) {
  if (options.path.empty()) {
    return absl::InvalidArgumentError("ChildProcess::Spawn: no executable path given");
  }
  std::vector<std::string> argv = options.argv.empty() ? std::vector<std::string>{options.path}
                                                       : options.argv;
  std::vector<char*> c_argv = CStrings(argv);
  std::vector<std::string> env;
  std::vector<char*> c_env;
  if (options.env.has_value()) {
    env = *options.env;
    c_env = CStrings(env);
  }
  // Inherited descriptors: first duplicated above every target number (so
  // that one dup2 cannot overwrite another's source), then dup2'ed to their
  // targets in the child (dup2 clears close-on-exec there).
  std::vector<int> staged;
  struct CloseStaged {
    std::vector<int>& fds;
    ~CloseStaged() {
      for (int fd : fds) ::close(fd);
    }
  } close_staged{staged};
  int highest_target = 2;
  for (const auto& [from, to] : options.inherit_fds) highest_target = std::max(highest_target, to);
  for (const auto& [from, to] : options.inherit_fds) {
    if (to < 3) {
      return absl::InvalidArgumentError(absl::StrCat(
          "ChildProcess::Spawn: cannot hand fd ", from, " to the child as fd ", to,
          " (0-2 are its standard streams)"));
    }
    const int fd = ::fcntl(from, F_DUPFD_CLOEXEC, highest_target + 1);
    if (fd < 0) {
      return sync_internal::ErrnoStatus(absl::StrCat("ChildProcess::Spawn: fcntl(", from,
                                                     ", F_DUPFD_CLOEXEC)"),
                                        errno);
    }
    staged.push_back(fd);
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  for (size_t i = 0; i < staged.size(); ++i) {
    posix_spawn_file_actions_adddup2(&actions, staged[i], options.inherit_fds[i].second);
  }
  pid_t pid = -1;
  // posix_spawn: glibc uses clone(CLONE_VM | CLONE_VFORK) and exec, so no
  // other thread's locks are copied into a child that would run our code.
  const int rc = ::posix_spawn(&pid, options.path.c_str(), &actions, nullptr, c_argv.data(),
                               options.env.has_value() ? c_env.data() : environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc == ENOEXEC) {
    return absl::FailedPreconditionError(absl::StrCat(
        "posix_spawn(", options.path, "): not a program this system can run (bad format)"));
  }
  if (rc != 0) {
    return sync_internal::ErrnoStatus(absl::StrCat("posix_spawn(", options.path, ")"), rc);
  }
  const int fd = PidfdOpen(pid);
  if (fd < 0) {
    const int err = errno;
    ::kill(pid, SIGKILL);  // no pidfd yet, but unreaped: the pid is still ours
    ::waitpid(pid, nullptr, 0);
    return sync_internal::ErrnoStatus(absl::StrCat("pidfd_open(", pid, ") for ", options.path),
                                      err);
  }
  return ChildProcess(pid, fd);
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      pidfd_(std::exchange(other.pidfd_, -1)),
      status_(std::move(other.status_)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    Release();
    pid_ = std::exchange(other.pid_, -1);
    pidfd_ = std::exchange(other.pidfd_, -1);
    status_ = std::move(other.status_);
  }
  return *this;
}

ChildProcess::~ChildProcess() { Release(); }

void ChildProcess::Release() {
  if (pidfd_ >= 0) {
    if (!status_.has_value()) {
      (void)PidfdSendSignal(pidfd_, SIGKILL);
      siginfo_t info;
      while (::waitid(P_PIDFD, pidfd_, &info, WEXITED) < 0 && errno == EINTR) {
      }
    }
    ::close(pidfd_);
  }
  pidfd_ = -1;
  pid_ = -1;
}

absl::StatusOr<std::optional<ExitStatus>> ChildProcess::TryReap() {
  if (status_.has_value()) return status_;
  if (pidfd_ < 0) return absl::FailedPreconditionError("ChildProcess: no child (moved from)");
  siginfo_t info;
  std::memset(&info, 0, sizeof(info));
  for (;;) {
    if (::waitid(P_PIDFD, pidfd_, &info, WEXITED | WNOHANG) == 0) break;
    if (errno != EINTR) {
      return sync_internal::ErrnoStatus(absl::StrCat("waitid(pidfd of ", pid_, ")"), errno);
    }
  }
  if (info.si_pid == 0) return std::optional<ExitStatus>();  // still running
  ExitStatus s;
  if (info.si_code == CLD_EXITED) {
    s.code = info.si_status;
  } else {  // CLD_KILLED or CLD_DUMPED
    s.signal = info.si_status;
    s.core_dumped = info.si_code == CLD_DUMPED;
  }
  status_ = s;
  return status_;
}

absl::StatusOr<ExitStatus> ChildProcess::Wait(absl::Time deadline) {
  for (;;) {
    absl::StatusOr<std::optional<ExitStatus>> s = TryReap();
    if (!s.ok()) return s.status();
    if (s->has_value()) return **s;
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(
          absl::StrCat("child ", pid_, " still running at the deadline"));
    }
    pollfd p{pidfd_, POLLIN, 0};
    const int64_t ms = left == absl::InfiniteDuration() ? -1 : absl::ToInt64Milliseconds(left) + 1;
    (void)::poll(&p, 1, static_cast<int>(std::min<int64_t>(ms, 1 << 30)));
  }
}

absl::Status ChildProcess::Kill(int signal) {
  if (status_.has_value() || pidfd_ < 0) return absl::OkStatus();
  if (PidfdSendSignal(pidfd_, signal) != 0 && errno != ESRCH) {
    return sync_internal::ErrnoStatus(absl::StrCat("pidfd_send_signal(", pid_, ", ", signal, ")"),
                                      errno);
  }
  return absl::OkStatus();
}

}  // namespace wharf::runtime_internal

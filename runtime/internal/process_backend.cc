#include "wharf/runtime/internal/process_backend.h"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "wharf/runtime/internal/broadcast_relay.h"
#include "wharf/runtime/internal/port_access.h"
#include "wharf/runtime/internal/shm_channel.h"
#include "wharf/runtime/wait_async.h"
#include "wharf/sync/atomics.h"

namespace wharf::runtime_internal {
namespace {

bool ParseU64(std::string_view s, uint64_t& out) {
  if (s.empty()) return false;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

int32_t& Cell(std::atomic<uint32_t>& a) { return *reinterpret_cast<int32_t*>(&a); }

}  // namespace

std::vector<std::string> ProcessWorkerArgs::ToArgv(const std::string& argv0) const {
  std::vector<std::string> argv = {
      argv0,
      kArgTag,
      entry,
      name,
      absl::StrCat(id),
      absl::StrCat(parent_pid),
      absl::StrCat(limits.max_memory_bytes, ",",
                   limits.max_cpu_time > absl::ZeroDuration()
                       ? static_cast<uint64_t>(absl::ToInt64Seconds(absl::Ceil(
                             limits.max_cpu_time, absl::Seconds(1))))
                       : 0,
                   ",", limits.max_open_files, ",", limits.stack_bytes),
  };
  argv.insert(argv.end(), user_args.begin(), user_args.end());
  return argv;
}

absl::StatusOr<std::optional<ProcessWorkerArgs>> ProcessWorkerArgs::Parse(int argc, char** argv) {
  if (argc < 2 || argv[1] == nullptr || std::strcmp(argv[1], kArgTag) != 0) {
    return std::optional<ProcessWorkerArgs>();
  }
  if (argc < 7) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a Wharf process worker's command line has ", argc, " arguments, at least 7 expected"));
  }
  ProcessWorkerArgs a;
  a.entry = argv[2];
  a.name = argv[3];
  uint64_t pid = 0;
  if (!ParseU64(argv[4], a.id) || !ParseU64(argv[5], pid)) {
    return absl::InvalidArgumentError("a Wharf process worker's id or parent pid is not a number");
  }
  a.parent_pid = static_cast<pid_t>(pid);
  uint64_t v[4];
  std::string_view limits = argv[6];
  for (int i = 0; i < 4; ++i) {
    const size_t comma = limits.find(',');
    if (!ParseU64(limits.substr(0, comma), v[i]) || (i < 3) == (comma == std::string_view::npos)) {
      return absl::InvalidArgumentError(
          absl::StrCat("a Wharf process worker's limits '", argv[6], "' are malformed"));
    }
    if (comma != std::string_view::npos) limits.remove_prefix(comma + 1);
  }
  a.limits.max_memory_bytes = v[0];
  a.limits.max_cpu_time = absl::Seconds(static_cast<int64_t>(v[1]));
  a.limits.max_open_files = static_cast<int>(v[2]);
  a.limits.stack_bytes = v[3];
  for (int i = 7; i < argc; ++i) a.user_args.emplace_back(argv[i]);
  return std::optional<ProcessWorkerArgs>(std::move(a));
}

WorkerExitRecord ExitRecordOf(const ExitStatus& status, const ShmLinkHeader* header,
                              const ResourceLimits& limits) {
  WorkerExitRecord r;
  if (status.signal != 0) {
    r.code = 128 + status.signal;
    r.signal = status.signal;
    std::string message = absl::StrCat("worker ", status.ToString());
    if (status.signal == SIGXCPU && limits.max_cpu_time > absl::ZeroDuration()) {
      absl::StrAppend(&message, ": it used up its CPU time limit (resource_limits.max_cpu_time = ",
                      absl::FormatDuration(limits.max_cpu_time), ")");
    } else if (status.signal == SIGSEGV && limits.stack_bytes != 0) {
      absl::StrAppend(&message, " (resource_limits.stack_bytes = ", limits.stack_bytes,
                      ": a stack overflow?)");
    }
    r.error = ErrorRecord{"wharf::WorkerKilled", std::move(message)};
    return r;
  }
  r.code = status.code;
  // The record is the child's only if it wrote it (`exit_written` last,
  // release). Lengths are clamped: the child may have written anything.
  if (header != nullptr && header->exit_written.load(std::memory_order_acquire) == 1) {
    r.code = header->exit_code;
    if (header->has_error != 0) {
      const size_t tl = std::min<size_t>(header->error_type_len, sizeof header->error_type);
      const size_t ml = std::min<size_t>(header->error_message_len, sizeof header->error_message);
      r.error = ErrorRecord{std::string(header->error_type, tl),
                            std::string(header->error_message, ml)};
    }
  }
  return r;
}

ProcessBackend::~ProcessBackend() {
  *alive_ = false;
  if (watching_) loop_->UnwatchFd(watch_);
  if (child_.has_value() && !reported_) (void)child_->Kill(SIGKILL);
  StopTerminator();  // before child_ (and its pidfd) goes
  LeaveBroadcastTree(absl::CancelledError("port closed"));
  // child_'s destructor kills and reaps a child still running.
}

absl::StatusOr<MessagePort> ProcessBackend::Prepare() {
  absl::StatusOr<std::shared_ptr<ShmLink>> link = ShmLink::Create();
  if (!link.ok()) return link.status();
  link_ = *std::move(link);
  absl::StatusOr<ShmChannelEnd> end = ShmChannelEnd::Open(link_, 0);
  if (!end.ok()) return end.status();
  end->watch_peer = false;  // the child's pidfd is watched (Start)
  return PortAccess::OverLink(*std::move(end), PortOptions{});
}

absl::Status ProcessBackend::JoinBroadcastTree(MessagePort& owner_port) {
  auto [mine, theirs] = MessageChannel::Create();
  // Sent to a process: the channel moves to a link of its own here.
  if (absl::Status s = owner_port.PostMessage(Value(std::move(theirs))); !s.ok()) return s;
  PortAccess::UnwatchPeer(mine);  // LeaveBroadcastTree closes it when the child ends
  broadcast_link_ = BroadcastRelay::Get().Add(std::move(mine));
  return absl::OkStatus();
}

void ProcessBackend::LeaveBroadcastTree(absl::Status cause) {
  if (broadcast_link_ == 0) return;
  BroadcastRelay::Get().Remove(std::exchange(broadcast_link_, 0), std::move(cause));
}

absl::Status ProcessBackend::Start(const WorkerOptions& options, const std::string& entry,
                                   uint64_t id, EventLoop& loop,
                                   absl::AnyInvocable<void()> on_online,
                                   absl::AnyInvocable<void(WorkerExitRecord)> on_end,
                                   absl::AnyInvocable<void(int)> on_terminated) {
  ProcessWorkerArgs args;
  args.entry = entry;
  args.name = options.name;
  args.id = id;
  args.parent_pid = ::getpid();
  args.limits = options.resource_limits;
  args.user_args = options.argv;
  ChildProcess::Options spawn;
  spawn.path = options.executable.empty() ? "/proc/self/exe" : options.executable;
  spawn.argv = args.ToArgv(options.name.empty() ? spawn.path : options.name);
  spawn.env = options.env;
  spawn.inherit_fds = {{link_->memfd(), ProcessWorkerArgs::kLinkFd},
                       {link_->socket(1), ProcessWorkerArgs::kSocketFd}};
  absl::StatusOr<ChildProcess> child = ChildProcess::Spawn(spawn);
  if (!child.ok()) {
    return absl::Status(child.status().code(),
                        absl::StrCat("Worker::Start (kProcess): ", child.status().message()));
  }
  link_->CloseSocket(1);  // the child's end is the child's now
  child_ = *std::move(child);
  loop_ = &loop;
  limits_ = options.resource_limits;
  grace_ = options.terminate_grace;
  on_end_ = std::move(on_end);
  on_terminated_ = std::move(on_terminated);
  std::shared_ptr<std::atomic<bool>> alive = alive_;
  absl::StatusOr<FdWatchId> watch = loop.WatchFd(child_->pidfd(), [this, alive] {
    if (*alive) OnChildReadable();
  });
  if (!watch.ok()) {
    (void)child_->Kill(SIGKILL);
    (void)child_->Wait(absl::InfiniteFuture());
    return watch.status();
  }
  watch_ = *watch;
  watching_ = true;
  // OnOnline: the child sets the online word and notifies it when its entry
  // starts; the loop sleeps on the word with the rest (a shared-scope
  // WaitAsync). At the child's end the word is notified from here, so the
  // wait never outlives the child.
  std::shared_ptr<ShmLink> link = link_;
  WaitAsync(loop, Cell(link->header().online), 0)
      .OnReady([alive, link, on_online = std::move(on_online)](auto&&) mutable {
        if (*alive && link->header().online.load(std::memory_order_acquire) == 1) on_online();
      });
  return absl::OkStatus();
}

void ProcessBackend::RequestTerminate() {
  if (link_ == nullptr || terminate_requested_.exchange(true)) return;
  std::atomic<uint32_t>& word = link_->header().terminate;
  word.store(1, std::memory_order_release);
  (void)atomics::Notify(Cell(word));  // the child's watcher thread
  if (!child_.has_value()) return;
  // The grace period and the exit code are watched on a thread of their own,
  // not on the owner's loop: Terminate().Get() may block the owner's thread
  // (as it may for a thread worker). The thread only looks (WNOWAIT): the
  // loop still reaps the child and reports its end.
  const int pidfd = child_->pidfd();
  MutexLock lock(terminator_mu_);
  terminator_ = std::thread([this, pidfd] {
    pollfd p{pidfd, POLLIN, 0};
    const int64_t ms = std::min<int64_t>(absl::ToInt64Milliseconds(grace_), 1 << 30);
    int rc;
    while ((rc = ::poll(&p, 1, static_cast<int>(ms))) < 0 && errno == EINTR) {
    }
    if (rc == 0) {  // the grace period ran out
      killed_by_terminate_.store(true, std::memory_order_release);
      (void)::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
    }
    siginfo_t info{};
    while (::waitid(P_PIDFD, pidfd, &info, WEXITED | WNOWAIT) != 0) {
      if (errno != EINTR) return;  // reaped by the loop already: it reports
    }
    ExitStatus status;
    if (info.si_code == CLD_EXITED) {
      status.code = info.si_status;
    } else {
      status.signal = info.si_status;
    }
    if (on_terminated_) on_terminated_(RecordOf(status).code);
  });
}

WorkerExitRecord ProcessBackend::RecordOf(const ExitStatus& status) const {
  if (killed_by_terminate_.load(std::memory_order_acquire) && status.signal == SIGKILL) {
    // Terminate() ran out of patience: that is a termination, not a crash.
    WorkerExitRecord r;
    r.code = 1;
    r.signal = SIGKILL;
    return r;
  }
  return ExitRecordOf(status, &link_->header(), limits_);
}

void ProcessBackend::StopTerminator() {
  std::thread t;
  {
    MutexLock lock(terminator_mu_);
    t = std::move(terminator_);
  }
  if (t.joinable()) t.join();
}

void ProcessBackend::OnChildReadable() {
  if (reported_ || !child_.has_value()) return;
  absl::StatusOr<std::optional<ExitStatus>> s = child_->TryReap();
  if (!s.ok()) {
    Reap(ExitStatus{.code = 1});  // cannot happen for our own child; end it anyway
    return;
  }
  if (!s->has_value()) return;  // spurious
  Reap(**s);
}

void ProcessBackend::Reap(const ExitStatus& status) {
  reported_ = true;
  if (watching_) {
    loop_->UnwatchFd(watch_);
    watching_ = false;
  }
  WorkerExitRecord record = RecordOf(status);
  // The ports: what the child published is delivered, then they close.
  const absl::Status cause =
      status.signal != 0
          ? absl::AbortedError(absl::StrCat("port closed: worker ", status.ToString()))
          : absl::CancelledError("port closed");
  if (owner_port_ != nullptr) {
    if (ShmChannel* shm = PortAccess::Shm(*owner_port_)) shm->PeerGone(cause);
  }
  LeaveBroadcastTree(cause);
  // Completes the online wait if it is still pending.
  (void)atomics::Notify(Cell(link_->header().online));
  if (on_end_) {
    auto on_end = std::move(on_end_);
    on_end(std::move(record));
  }
}

void ProcessBackend::Join() {
  if (reported_ || !child_.has_value()) {
    StopTerminator();
    return;
  }
  RequestTerminate();
  StopTerminator();  // it killed the child if the grace period ran out
  absl::StatusOr<ExitStatus> s = child_->Wait(absl::InfiniteFuture());
  reported_ = true;
  if (watching_) {
    loop_->UnwatchFd(watch_);
    watching_ = false;
  }
  if (ShmChannel* shm = owner_port_ != nullptr ? PortAccess::Shm(*owner_port_) : nullptr) {
    shm->PeerGone(absl::CancelledError("port closed"));
  }
  LeaveBroadcastTree(absl::CancelledError("port closed"));
  (void)atomics::Notify(Cell(link_->header().online));
  on_end_ = nullptr;
}

}  // namespace wharf::runtime_internal

// Internal: the process isolation of a Worker — the owner's side of a child
// process that runs the worker (the child's side is InitProcess,
// init_process.cc). The two sides share:
//   - a ShmLink (shm_link.h): the worker's channel (the parent port's two
//     rings), the terminate word, the online word and the exit record;
//   - the child's link of the BroadcastChannel tree (a MessagePort sent as
//     the second message, after worker_data);
//   - the child's command line (ProcessWorkerArgs): argv[1] is kArgTag,
//     then the entry, the worker's name and id, the parent's pid, the limits,
//     then the user's arguments. The link's memfd and socket are inherited
//     as descriptors kLinkFd and kSocketFd.
//
// Lifecycle, on the owner's loop: the child's pidfd is watched; when it
// becomes readable the child is reaped, its end becomes one WorkerExitRecord
// (its exit record from the link when it wrote one, else the signal that
// killed it: "worker killed by signal 9 (SIGKILL)", code 128 + signal), the
// port is told its peer is gone (what the child published is still
// delivered, then OnClose), and the record is handed to `on_end`.
// Terminate: the terminate word is set and the child's watcher thread wakes
// (it stops the worker as a thread worker is stopped); after the grace
// period the child is sent SIGKILL.
//
// Thread-safety: Start, Join and the destructor on the owner's thread;
// RequestTerminate from any thread.

#ifndef WHARF_RUNTIME_INTERNAL_PROCESS_BACKEND_H_
#define WHARF_RUNTIME_INTERNAL_PROCESS_BACKEND_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/internal/child_process.h"
#include "wharf/runtime/internal/shm_link.h"
#include "wharf/runtime/internal/worker_runner.h"
#include "wharf/runtime/message_port.h"
#include "wharf/runtime/worker.h"
#include "wharf/sync/mutex.h"

namespace wharf::runtime_internal {

// The child's command line, both ways.
struct ProcessWorkerArgs {
  static constexpr const char* kArgTag = "--wharf-process-worker=1";
  static constexpr int kLinkFd = 3;
  static constexpr int kSocketFd = 4;

  std::string entry;
  std::string name;
  uint64_t id = 0;
  pid_t parent_pid = 0;
  ResourceLimits limits;
  std::vector<std::string> user_args;

  std::vector<std::string> ToArgv(const std::string& argv0) const;
  // nullopt when argv is not a worker's command line; InvalidArgument when it
  // is one but malformed.
  static absl::StatusOr<std::optional<ProcessWorkerArgs>> Parse(int argc, char** argv);
};

// What the child's death means to a user ("killed by signal 9 (SIGKILL)",
// with the limit that explains it when one was set).
WorkerExitRecord ExitRecordOf(const ExitStatus& status, const ShmLinkHeader* header,
                              const ResourceLimits& limits);

class ProcessBackend {
 public:
  ProcessBackend() = default;
  ProcessBackend(const ProcessBackend&) = delete;
  ProcessBackend& operator=(const ProcessBackend&) = delete;
  ~ProcessBackend();

  // Makes the link and the owner's port over it (to hand worker_data to
  // before the child starts). Owner thread.
  absl::StatusOr<MessagePort> Prepare();
  // After worker_data is posted on the owner port: sends the child its link
  // of the BroadcastChannel tree (its second bootstrap message;
  // broadcast_relay.h) and adds this end to the process's relay. Owner
  // thread.
  absl::Status JoinBroadcastTree(MessagePort& owner_port);
  // Spawns the child and watches it on `loop`. `on_online` runs on `loop`
  // when the child starts its entry; `on_end` once, on `loop`, with its end.
  // Errors: those of posix_spawn (NotFound for a missing executable...).
  // `on_terminated` runs on a helper thread with the exit code once a
  // terminated child has ended (before `on_end`, which needs the loop).
  absl::Status Start(const WorkerOptions& options, const std::string& entry, uint64_t id,
                     EventLoop& loop, absl::AnyInvocable<void()> on_online,
                     absl::AnyInvocable<void(WorkerExitRecord)> on_end,
                     absl::AnyInvocable<void(int)> on_terminated);
  // Any thread; idempotent.
  void RequestTerminate();
  // Owner thread: waits until the child has ended and was reported
  // (terminating it first unless `already_ended`), killing it after the grace
  // period. A no-op once reported or never started.
  void Join();

  pid_t pid() const { return child_.has_value() ? child_->pid() : -1; }

 private:
  void OnChildReadable();
  void Reap(const ExitStatus& status);
  WorkerExitRecord RecordOf(const ExitStatus& status) const;
  void StopTerminator();
  void LeaveBroadcastTree(absl::Status cause);

  std::shared_ptr<ShmLink> link_;
  uint64_t broadcast_link_ = 0;  // the relay's id of the child's bus link (0: none)
  MessagePort* owner_port_ = nullptr;  // for PeerGone; the WorkerState owns it
  std::optional<ChildProcess> child_;
  EventLoop* loop_ = nullptr;
  FdWatchId watch_{};
  bool watching_ = false;
  bool reported_ = false;
  ResourceLimits limits_;
  absl::Duration grace_ = absl::Seconds(2);
  absl::AnyInvocable<void(WorkerExitRecord)> on_end_;
  // RequestTerminate (any thread) → the owner loop's kill timer.
  std::atomic<bool> terminate_requested_{false};
  std::atomic<bool> killed_by_terminate_{false};  // the grace period ran out
  absl::AnyInvocable<void(int)> on_terminated_;    // set before the child starts
  Mutex terminator_mu_;
  std::thread terminator_;  // guarded by terminator_mu_: the grace watcher
  std::shared_ptr<std::atomic<bool>> alive_ = std::make_shared<std::atomic<bool>>(true);

 public:
  void SetOwnerPort(MessagePort* port) { owner_port_ = port; }
};

}  // namespace wharf::runtime_internal

#endif  // WHARF_RUNTIME_INTERNAL_PROCESS_BACKEND_H_

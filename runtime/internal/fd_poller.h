// FdPoller: the one thread per process that sleeps on the file descriptors
// event loops watch (EventLoop::WatchFd: pidfds of child processes, pipes,
// sockets) and hands readiness to the owning loop as a posted closure.
//
// Why a thread and not the loop's own wait: a loop sleeps in futex_waitv(2)
// on its doorbell and on futex words in shared memory, and futex_waitv takes
// no file descriptors. The one wait that takes both, io_uring's
// IORING_OP_FUTEX_WAITV, needs Linux >= 6.7 and is switched off where it
// matters most (Docker's default seccomp profile refuses io_uring_setup; many
// hosts set kernel.io_uring_disabled), so it would need this path as a
// fallback anyway. File-descriptor events are rare (a child's exit), so the
// extra hop — the poller's wake-up, then the loop's — costs nothing that
// shows, and the hot paths (messages) never touch it. One thread serves every
// loop of the process; it is started by the first watch and never exits.
//
// Protocol. A watch is an id in the poller's registry (id -> loop) plus an
// epoll registration of its fd with EPOLLONESHOT and the id as data. On an
// event the poller, holding the registry lock, posts RunFdCallback(id) to the
// loop; Remove erases the id under the same lock, so after Remove returns no
// closure for it is posted any more and the loop pointer is never used after
// the loop unwatched. The loop re-arms the fd (Rearm) after the callback, so
// a level-triggered fd is reported again only once the previous report was
// handled — no event storm on an fd the callback does not read.
//
// fork(): the poller thread does not exist in a child; the first watch in the
// child starts a new one (on a new epoll instance: the inherited one is
// shared with the parent and is closed, never used).
//
// Thread-safety: every function may be called from any thread.

#ifndef WHARF_RUNTIME_INTERNAL_FD_POLLER_H_
#define WHARF_RUNTIME_INTERNAL_FD_POLLER_H_

#include <cstdint>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"

namespace wharf::runtime_internal {

class FdPoller {
 public:
  // Called by the poller thread, under the registry lock, when the watch
  // `id` fires: must only post (never block, never call back into FdPoller).
  using Notify = void (*)(void* owner, uint64_t id);

  // Registers `fd` under `id` (unique per process) for `owner`.
  // InvalidArgument for an fd epoll refuses (closed, a regular file),
  // ResourceExhausted when out of watches or memory, Internal if the poller
  // thread cannot be started.
  static absl::Status Add(uint64_t id, int fd, void* owner, Notify notify);
  // Watches `fd` again after it fired (EPOLLONESHOT). A no-op for a removed id.
  static void Rearm(uint64_t id, int fd);
  // Stops watching; no notification for `id` starts after it returns.
  static void Remove(uint64_t id, int fd);
  // A process-wide unique watch id (never 0).
  static uint64_t NextId();
};

}  // namespace wharf::runtime_internal

#endif  // WHARF_RUNTIME_INTERNAL_FD_POLLER_H_

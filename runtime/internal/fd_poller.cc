#include "wharf/runtime/internal/fd_poller.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <unordered_map>

#include "wharf/sync/internal/errno_status.h"
#include "wharf/sync/internal/str_cat.h"
#include "wharf/sync/interrupt.h"
#include "wharf/sync/mutex.h"

namespace wharf::runtime_internal {
namespace {

using sync_internal::Cat;

struct Entry {
  void* owner;
  FdPoller::Notify notify;
};

struct Poller {
  Mutex mu;
  pid_t pid = 0;  // the process that started the thread; another after fork()
  int epfd = -1;  // guarded by mu for (re)creation
  std::unordered_map<uint64_t, Entry> entries;  // guarded by mu
};

Poller& Get() {
  static Poller* const p = new Poller;  // never destroyed: the thread outlives main
  return *p;
}

void* PollerMain(void* arg) {
  const int epfd = static_cast<int>(reinterpret_cast<intptr_t>(arg));
  Poller& p = Get();
  epoll_event events[64];
  for (;;) {
    const int n = epoll_wait(epfd, events, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return nullptr;  // the epoll fd was closed (a forked child's copy): nothing to serve
    }
    MutexLock lock(p.mu);
    if (p.epfd != epfd) return nullptr;  // replaced after fork()
    for (int i = 0; i < n; ++i) {
      auto it = p.entries.find(events[i].data.u64);
      if (it != p.entries.end()) it->second.notify(it->second.owner, it->first);
    }
  }
}

// Caller holds p.mu. Starts the epoll instance and its thread in this process.
absl::Status EnsureStartedLocked(Poller& p) {
  const pid_t me = getpid();
  if (p.epfd >= 0 && p.pid == me) return absl::OkStatus();
  if (p.epfd >= 0) {
    // Inherited through fork(): the instance is shared with the parent, and
    // the parent's thread serves it. Forget it (and the parent's entries).
    close(p.epfd);
    p.epfd = -1;
    p.entries.clear();
  }
  const int epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) return sync_internal::ErrnoStatus("EventLoop::WatchFd: epoll_create1", errno);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  // The thread takes no signals: they belong to the program's own threads.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t thread;
  const int err = pthread_create(&thread, &attr, &PollerMain,
                                 reinterpret_cast<void*>(static_cast<intptr_t>(epfd)));
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  pthread_attr_destroy(&attr);
  if (err != 0) {
    close(epfd);
    return absl::InternalError(
        Cat("EventLoop::WatchFd: cannot start the fd poller thread: ", std::strerror(err)));
  }
  pthread_setname_np(thread, "wharf-fd-poller");
  p.epfd = epfd;
  p.pid = me;
  return absl::OkStatus();
}

constexpr uint32_t kEvents = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;

}  // namespace

absl::Status FdPoller::Add(uint64_t id, int fd, void* owner, Notify notify) {
  Poller& p = Get();
  MutexLock lock(p.mu);
  if (absl::Status s = EnsureStartedLocked(p); !s.ok()) return s;
  p.entries[id] = Entry{owner, notify};
  epoll_event ev{};
  ev.events = kEvents;
  ev.data.u64 = id;
  if (epoll_ctl(p.epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
    const int err = errno;
    p.entries.erase(id);
    if (err == EBADF || err == EPERM || err == EEXIST || err == EINVAL) {
      return absl::InvalidArgumentError(Cat(
          "EventLoop::WatchFd(", fd, "): ", std::strerror(err),
          err == EPERM ? " (regular files and directories cannot be watched)"
                       : err == EEXIST ? " (this fd is watched already)" : ""));
    }
    return sync_internal::ErrnoStatus(Cat("EventLoop::WatchFd(", fd, "): epoll_ctl"), err);
  }
  return absl::OkStatus();
}

void FdPoller::Rearm(uint64_t id, int fd) {
  Poller& p = Get();
  MutexLock lock(p.mu);
  if (p.pid != getpid() || p.entries.count(id) == 0) return;
  epoll_event ev{};
  ev.events = kEvents;
  ev.data.u64 = id;
  (void)epoll_ctl(p.epfd, EPOLL_CTL_MOD, fd, &ev);  // EBADF: the fd was closed; nothing to watch
}

void FdPoller::Remove(uint64_t id, int fd) {
  Poller& p = Get();
  MutexLock lock(p.mu);
  if (p.entries.erase(id) == 0 || p.pid != getpid()) return;
  (void)epoll_ctl(p.epfd, EPOLL_CTL_DEL, fd, nullptr);  // EBADF/ENOENT: closed meanwhile
}

uint64_t FdPoller::NextId() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace wharf::runtime_internal

#include "wharf/sync/internal/thread_identity.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace wharf::sync_internal {
namespace {

// Reads /proc/<tid>/stat into buf. Returns bytes read, or -1.
ssize_t ReadStat(uint32_t tid, char* buf, size_t size) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%u/stat", tid);
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n;
  do {
    n = ::read(fd, buf, size - 1);
  } while (n < 0 && errno == EINTR);
  ::close(fd);
  if (n < 0) return -1;
  buf[n] = '\0';
  return n;
}

void ResetAfterFork() { tls_owner_id = 0; }

}  // namespace

uint32_t ReadStartTag(uint32_t tid, bool* alive) {
  char buf[1024];
  *alive = false;
  if (ReadStat(tid, buf, sizeof(buf)) < 0) {
    static const bool proc_mounted = ::access("/proc/self/stat", R_OK) == 0;
    if (proc_mounted) return 0;  // no task with this TID
    // No /proc: fall back to the signal-0 probe (no protection against reuse).
    *alive = ::kill(static_cast<pid_t>(tid), 0) == 0 || errno == EPERM;
    return 0;
  }
  // Fields after the command name, which is in parentheses and may contain
  // spaces or parentheses itself: scan from the last ')'.
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr) return 0;
  ++p;
  char state = 0;
  unsigned long long start = 0;
  // Field 3 is the state; field 22 the start time.
  int field = 2;
  const char* cur = p;
  while (*cur != '\0' && field < 22) {
    while (*cur == ' ') ++cur;
    ++field;
    if (field == 3) state = *cur;
    if (field == 22) {
      start = std::strtoull(cur, nullptr, 10);
      break;
    }
    while (*cur != ' ' && *cur != '\0') ++cur;
  }
  *alive = !(state == 'Z' || state == 'X' || state == 'x');
  return static_cast<uint32_t>(start);
}

uint64_t ComputeCurrentOwnerId() {
  static std::once_flag atfork_once;
  std::call_once(atfork_once, [] { pthread_atfork(nullptr, nullptr, &ResetAfterFork); });
  const uint32_t tid = static_cast<uint32_t>(::syscall(SYS_gettid));
  if ((tid & kTidMask) != tid || tid == kTidMask) {
    std::fprintf(stderr, "wharf: thread id %u does not fit a robust lock word\n", tid);
    std::abort();
  }
  bool alive = false;
  const uint32_t tag = ReadStartTag(tid, &alive);
  const uint64_t id = (static_cast<uint64_t>(tag) << 32) | tid;
  tls_owner_id = id;
  return id;
}

OwnerState CheckOwner(uint64_t owner_id) {
  bool alive = false;
  const uint32_t tag = ReadStartTag(OwnerTid(owner_id), &alive);
  if (!alive) return OwnerState::kDead;
  if (tag != 0 && OwnerTag(owner_id) != 0 && tag != OwnerTag(owner_id)) {
    return OwnerState::kDead;  // the TID was reused by another task
  }
  return OwnerState::kAlive;
}

}  // namespace wharf::sync_internal

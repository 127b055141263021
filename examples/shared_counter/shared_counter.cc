// shared_counter: several processes update counters in one named SharedBuffer,
// under a robust wharf::Mutex and with wharf::atomics — and one of them is
// SIGKILLed while it holds the lock, in the middle of an update.
//
// What it shows:
//  - SharedBuffer::CreateNamed / OpenNamed: one mapping, several processes;
//  - a Mutex placed in shared memory and contended across processes;
//  - robustness: the next locker gets LockResult::kOwnerDied, undoes the dead
//    process's half-done update, calls MarkConsistent(), and everyone goes on;
//  - atomics::Add and atomics::Wait/Notify on cells of the same buffer.
//
// Run:  ./bazelw run //examples/shared_counter [-- WORKERS ITERATIONS]
// The program re-executes itself (/proc/self/exe) for each worker process.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "wharf/sync/atomics.h"
#include "wharf/sync/mutex.h"
#include "wharf/sync/shared_buffer.h"

extern char** environ;

namespace {

// Lives in shared memory: plain data only (no pointers, no std containers).
struct Counters {
  wharf::Mutex mu;
  int64_t locked_total;    // guarded by mu
  int64_t pending;         // guarded by mu: an update in progress (0 when free)
  int64_t recoveries;      // guarded by mu
  int64_t atomic_total;    // updated with atomics::Add only
  uint32_t victim_ready;   // atomics: the victim holds the lock
  uint32_t workers_done;   // atomics: finished workers
};

// Locks; if the previous owner died mid-update, rolls its update back.
void LockAndRepair(Counters& c) {
  switch (c.mu.Lock()) {
    case wharf::LockResult::kOk:
      return;
    case wharf::LockResult::kOwnerDied:
      // The dead owner had added `pending` to nothing yet: discard it.
      std::printf("  [pid %d] previous owner died mid-update: rolling back %lld pending\n",
                  ::getpid(), static_cast<long long>(c.pending));
      c.pending = 0;
      ++c.recoveries;
      if (absl::Status s = c.mu.MarkConsistent(); !s.ok()) {
        std::fprintf(stderr, "MarkConsistent: %s\n", s.ToString().c_str());
        std::exit(1);
      }
      return;
    default:
      std::fprintf(stderr, "the mutex is not recoverable\n");
      std::exit(1);
  }
}

int Worker(const std::string& name, long iterations) {
  auto buffer = wharf::SharedBuffer::OpenNamed(name);
  if (!buffer.ok()) {
    std::fprintf(stderr, "worker: %s\n", buffer.status().ToString().c_str());
    return 1;
  }
  Counters& c = *reinterpret_cast<Counters*>(buffer->data());
  for (long i = 0; i < iterations; ++i) {
    LockAndRepair(c);
    c.pending = 1;            // an update in two steps...
    c.locked_total += c.pending;
    c.pending = 0;            // ...complete
    c.mu.Unlock();
    wharf::atomics::Add(c.atomic_total, int64_t{1});
  }
  wharf::atomics::Add(c.workers_done, 1u);
  wharf::atomics::Notify(c.workers_done);
  return 0;
}

int Victim(const std::string& name) {
  auto buffer = wharf::SharedBuffer::OpenNamed(name);
  if (!buffer.ok()) return 1;
  Counters& c = *reinterpret_cast<Counters*>(buffer->data());
  LockAndRepair(c);
  c.pending = 1000000;  // a half-done update that must never reach the total
  wharf::atomics::Store(c.victim_ready, 1u);
  wharf::atomics::Notify(c.victim_ready);
  for (;;) ::pause();  // hold the lock until killed
}

pid_t SpawnSelf(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  std::string self = "/proc/self/exe";
  argv.push_back(self.data());
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (int rc = ::posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv.data(), environ); rc != 0) {
    std::fprintf(stderr, "posix_spawn: %d\n", rc);
    std::exit(1);
  }
  return pid;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // keep lines of all processes in order
  if (argc >= 4 && std::string(argv[1]) == "--worker") return Worker(argv[2], std::atol(argv[3]));
  if (argc >= 3 && std::string(argv[1]) == "--victim") return Victim(argv[2]);

  const int workers = argc > 1 ? std::atoi(argv[1]) : 4;
  const long iterations = argc > 2 ? std::atol(argv[2]) : 200000;
  if (workers < 1 || iterations < 1) {
    std::fprintf(stderr, "usage: %s [WORKERS>=1] [ITERATIONS>=1]\n", argv[0]);
    return 2;
  }
  // Remove what earlier runs left behind if they were killed (their creator
  // is dead, so the name is an orphan).
  if (auto reaped = wharf::SharedBuffer::ReapOrphans("wharf_shared_counter_");
      reaped.ok() && *reaped > 0) {
    std::printf("reaped %d buffer(s) left by killed earlier runs\n", *reaped);
  }
  const std::string name = absl::StrCat("wharf_shared_counter_", ::getpid());
  auto buffer = wharf::SharedBuffer::CreateNamed(name, sizeof(Counters));
  if (!buffer.ok()) {
    std::fprintf(stderr, "CreateNamed: %s\n", buffer.status().ToString().c_str());
    return 1;
  }
  Counters& c = *new (buffer->data()) Counters{};
  std::printf("shared_counter: %d worker processes x %ld increments, buffer '%s'\n", workers,
              iterations, name.c_str());

  // 1. A victim takes the lock and is killed while holding it.
  const pid_t victim = SpawnSelf({"--victim", name});
  while (wharf::atomics::Load(c.victim_ready) == 0) {
    wharf::atomics::Wait(c.victim_ready, 0u, absl::Milliseconds(100));
  }
  const absl::Time start = absl::Now();
  // 2. The workers start while the lock is held by the soon-dead victim.
  std::vector<pid_t> pids;
  for (int i = 0; i < workers; ++i) {
    pids.push_back(SpawnSelf({"--worker", name, std::to_string(iterations)}));
  }
  ::kill(victim, SIGKILL);
  ::waitpid(victim, nullptr, 0);
  std::printf("  [pid %d] killed victim %d while it held the mutex\n", ::getpid(), victim);

  // 3. Wait for the workers (Atomics.wait on a counter they bump).
  for (uint32_t done; (done = wharf::atomics::Load(c.workers_done)) < static_cast<uint32_t>(workers);) {
    wharf::atomics::Wait(c.workers_done, done, absl::Milliseconds(100));
  }
  bool ok = true;
  for (pid_t pid : pids) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  const absl::Duration elapsed = absl::Now() - start;

  const int64_t expected = int64_t{workers} * iterations;
  std::printf("  locked total : %lld (expected %lld)\n", static_cast<long long>(c.locked_total),
              static_cast<long long>(expected));
  std::printf("  atomic total : %lld (expected %lld)\n",
              static_cast<long long>(wharf::atomics::Load(c.atomic_total)),
              static_cast<long long>(expected));
  std::printf("  recoveries   : %lld (expected 1)\n", static_cast<long long>(c.recoveries));
  std::printf("  time         : %s (%.0f ns per locked increment, all processes)\n",
              absl::FormatDuration(elapsed).c_str(),
              absl::ToDoubleNanoseconds(elapsed) / static_cast<double>(expected));
  ok = ok && c.locked_total == expected && c.atomic_total == expected && c.recoveries == 1 &&
       c.pending == 0;
  buffer = wharf::SharedBuffer();
  (void)wharf::SharedBuffer::Unlink(name);
  std::printf("%s\n", ok ? "OK: every increment counted, the dead owner's update rolled back"
                         : "FAILED");
  return ok ? 0 : 1;
}

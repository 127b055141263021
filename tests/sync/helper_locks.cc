// sync_process_helper subcommands for the cross-process tests of CondVar,
// Semaphore, RwLock, Barrier, Latch and Notification.
//
// Each test keeps its state in a named SharedBuffer (opened here by name); the
// state structs are in lock_shared_state.h, shared with the tests.
// Exit codes: 0 success; 3 the buffer could not be opened; 4.. a check failed
// (see each command).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tests/sync/lock_shared_state.h"
#include "tests/sync/process_helper_registry.h"
#include "wharf/sync/atomics.h"
#include "wharf/sync/barrier.h"
#include "wharf/sync/cond_var.h"
#include "wharf/sync/latch.h"
#include "wharf/sync/mutex.h"
#include "wharf/sync/notification.h"
#include "wharf/sync/rw_lock.h"
#include "wharf/sync/semaphore.h"
#include "wharf/sync/shared_buffer.h"

namespace wharf::testing {
namespace {


template <class T>
T* Open(const std::string& name, SharedBuffer* keep) {
  auto buffer = SharedBuffer::OpenNamed(name);
  if (!buffer.ok()) {
    std::fprintf(stderr, "OpenNamed(%s): %s\n", name.c_str(), buffer.status().ToString().c_str());
    std::exit(3);
  }
  *keep = *std::move(buffer);
  return reinterpret_cast<T*>(keep->data());
}

void Announce(uint32_t& ready) {
  atomics::Store(ready, 1u);
  atomics::Notify(ready);
}

}  // namespace

// condvar_pingpong NAME ROUNDS ME: ROUNDS times, wait under the mutex for
// turn == ME, bump value, hand the turn over, Signal. Exit 4 on a bad relock.
WHARF_HELPER_COMMAND(condvar_pingpong) {
  SharedBuffer keep;
  CondVarShared* s = Open<CondVarShared>(args.at(0), &keep);
  const long rounds = std::stol(args.at(1));
  const uint32_t me = static_cast<uint32_t>(std::stoul(args.at(2)));
  for (long i = 0; i < rounds; ++i) {
    if (s->mu.Lock() != LockResult::kOk) return 4;
    while (s->turn != me) {
      if (s->cv.Wait(s->mu) != LockResult::kOk) return 4;
    }
    ++s->value;
    s->turn = 1 - me;
    s->cv.Signal();
    s->mu.Unlock();
  }
  return 0;
}

// sem_pong NAME ROUNDS: ROUNDS times, ping.acquire() then pong.release().
WHARF_HELPER_COMMAND(sem_pong) {
  SharedBuffer keep;
  SemaphoreShared* s = Open<SemaphoreShared>(args.at(0), &keep);
  const long rounds = std::stol(args.at(1));
  for (long i = 0; i < rounds; ++i) {
    s->ping.acquire();
    s->pong.release();
  }
  return 0;
}

// sem_holders NAME ITERATIONS LIMIT: ITERATIONS times, take a slot, count the
// holders (a violation if more than LIMIT), give the slot back.
WHARF_HELPER_COMMAND(sem_holders) {
  SharedBuffer keep;
  SemaphoreShared* s = Open<SemaphoreShared>(args.at(0), &keep);
  const long n = std::stol(args.at(1));
  const uint32_t limit = static_cast<uint32_t>(std::stoul(args.at(2)));
  for (long i = 0; i < n; ++i) {
    s->slots.acquire();
    if (atomics::Add(s->holders, 1u) + 1 > limit) atomics::Add(s->violations, 1u);
    atomics::Add(s->entries, uint64_t{1});
    for (int k = 0; k < 20; ++k) asm volatile("" ::: "memory");
    atomics::Sub(s->holders, 1u);
    s->slots.release();
  }
  return 0;
}

// rwlock_hold_write NAME: take the write lock, break the invariant (a++),
// announce `ready`, hang until killed. Exit 4 if the lock was not acquired.
WHARF_HELPER_COMMAND(rwlock_hold_write) {
  SharedBuffer keep;
  RwLockShared* s = Open<RwLockShared>(args.at(0), &keep);
  if (!Acquired(s->lock.Lock())) return 4;
  ++s->a;
  Announce(s->ready);
  for (;;) ::pause();
}

// rwlock_block_write NAME: take the write lock — the test makes this block
// (a reader holds a share) and kills the process while it drains. Exit 0 if
// it was ever acquired (the test does not expect it to be).
WHARF_HELPER_COMMAND(rwlock_block_write) {
  SharedBuffer keep;
  RwLockShared* s = Open<RwLockShared>(args.at(0), &keep);
  if (Acquired(s->lock.Lock())) s->lock.Unlock();
  return 0;
}

// rwlock_hold_read NAME: take a read share, announce `ready`, wait for
// `release`, give the share back. Exit 4 if the share was not acquired.
WHARF_HELPER_COMMAND(rwlock_hold_read) {
  SharedBuffer keep;
  RwLockShared* s = Open<RwLockShared>(args.at(0), &keep);
  if (s->lock.LockShared() != LockResult::kOk) return 4;
  Announce(s->ready);
  while (atomics::Load(s->release) == 0) (void)atomics::Wait(s->release, 0u, absl::Seconds(1));
  s->lock.UnlockShared();
  return 0;
}

// rwlock_contend NAME ITERATIONS: mixed readers (check a == b) and writers
// (a++, b++), repairing after a dead holder. Exit 5 on a torn read, 6 if the
// lock became not recoverable, 7 if MarkConsistent failed.
WHARF_HELPER_COMMAND(rwlock_contend) {
  SharedBuffer keep;
  RwLockShared* s = Open<RwLockShared>(args.at(0), &keep);
  const long n = std::stol(args.at(1));
  for (long i = 0; i < n; ++i) {
    const bool write = i % 4 == 0;
    const LockResult r = write ? s->lock.Lock() : s->lock.LockShared();
    if (!Acquired(r)) return 6;
    if (r == LockResult::kOwnerDied) {
      s->b = s->a;
      ++s->recoveries;
      if (!s->lock.MarkConsistent().ok()) return 7;
    }
    if (write || r == LockResult::kOwnerDied) {
      ++s->a;
      ++s->b;
      s->lock.Unlock();
    } else {
      const bool torn = s->a != s->b;
      s->lock.UnlockShared();
      if (torn) return 5;
    }
  }
  return 0;
}

// rwlock_churn_write NAME: announce `ready`, then write forever — Lock
// (repairing after a dead holder), a++, b++, Unlock — until killed at a
// random point. Exit 6/7 as rwlock_contend.
WHARF_HELPER_COMMAND(rwlock_churn_write) {
  SharedBuffer keep;
  RwLockShared* s = Open<RwLockShared>(args.at(0), &keep);
  Announce(s->ready);
  for (;;) {
    const LockResult r = s->lock.Lock();
    if (!Acquired(r)) return 6;
    if (r == LockResult::kOwnerDied) {
      s->b = s->a;
      ++s->recoveries;
      if (!s->lock.MarkConsistent().ok()) return 7;
    }
    ++s->a;
    for (int k = 0; k < 50; ++k) asm volatile("" ::: "memory");
    ++s->b;
    s->lock.Unlock();
  }
}

// barrier_phases NAME PHASES: ArriveAndWait PHASES times, counting serial
// returns and checking that each wait returns in the next phase.
WHARF_HELPER_COMMAND(barrier_phases) {
  SharedBuffer keep;
  BarrierShared* s = Open<BarrierShared>(args.at(0), &keep);
  const long phases = std::stol(args.at(1));
  for (long p = 0; p < phases; ++p) {
    const uint32_t before = s->barrier.Phase();
    if (s->barrier.ArriveAndWait()) atomics::Add(s->serials, 1u);
    if (s->barrier.Phase() != before + 1) atomics::Add(s->errors, 1u);
  }
  return 0;
}

// event_arrive_wait NAME: count down `arrived`, wait for `go`, then check
// that the payload written before Notify() is visible. Exit 4 on a timeout,
// 5 on a wrong payload.
WHARF_HELPER_COMMAND(event_arrive_wait) {
  SharedBuffer keep;
  EventShared* s = Open<EventShared>(args.at(0), &keep);
  atomics::Add(s->counted, 1u);
  s->arrived.count_down();
  if (!s->go.WaitForNotificationWithTimeout(absl::Seconds(60))) return 4;
  return s->payload == 42 ? 0 : 5;
}

}  // namespace wharf::testing

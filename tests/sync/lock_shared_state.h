// The states the cross-process tests of CondVar, Semaphore, RwLock, Barrier,
// Latch and Notification keep in a named SharedBuffer: the test creates one,
// the sync_process_helper children open it by name (helper_locks.cc). One
// definition for both sides, so their layouts cannot drift apart.
//
// Live in shared memory: plain data only (no pointers, no std:: containers).
#ifndef WHARF_TESTS_SYNC_LOCK_SHARED_STATE_H_
#define WHARF_TESTS_SYNC_LOCK_SHARED_STATE_H_

#include <cstdint>
#include <type_traits>

#include "wharf/sync/barrier.h"
#include "wharf/sync/cond_var.h"
#include "wharf/sync/latch.h"
#include "wharf/sync/mutex.h"
#include "wharf/sync/notification.h"
#include "wharf/sync/rw_lock.h"
#include "wharf/sync/semaphore.h"

namespace wharf::testing {

struct CondVarShared {  // cond_var_test.cc
  Mutex mu;
  CondVar cv;
  uint32_t turn;   // whose turn: 0 (parent) or 1 (child)
  uint32_t pad;
  int64_t value;   // incremented once per turn
};
static_assert(sizeof(CondVarShared) == 32);

struct SemaphoreShared {  // semaphore_test.cc
  Semaphore ping;
  Semaphore pong;
  Semaphore slots;
  uint32_t holders;     // inside the `slots` section now (atomics)
  uint32_t violations;  // times holders exceeded the limit (atomics)
  uint64_t entries;     // total entries into the `slots` section (atomics)
};
static_assert(sizeof(SemaphoreShared) == 64);

struct RwLockShared {  // rw_lock_test.cc
  RwLock lock;
  int64_t a;         // a == b whenever no writer is inside
  int64_t b;
  uint32_t ready;    // a child sets it (atomics) when it holds what it said
  uint32_t release;  // the parent sets it to let a child go on
  int64_t recoveries;
};
static_assert(sizeof(RwLockShared) == 48);

struct BarrierShared {  // barrier_test.cc
  Barrier barrier;
  uint32_t serials;  // ArriveAndWait() == true, summed over all phases (atomics)
  uint32_t errors;   // phase mismatches seen (atomics)
};
static_assert(sizeof(BarrierShared) == 24);

struct EventShared {  // latch_test.cc, notification_test.cc
  Latch arrived;      // each child counts down once it is about to wait
  Notification go;    // the parent notifies after writing payload
  uint32_t counted;   // children that counted down (atomics)
  uint32_t payload;   // written by the parent before go.Notify()
};
static_assert(sizeof(EventShared) == 16);

static_assert(std::is_trivially_destructible_v<CondVarShared> &&
              std::is_trivially_destructible_v<SemaphoreShared> &&
              std::is_trivially_destructible_v<RwLockShared> &&
              std::is_trivially_destructible_v<BarrierShared> &&
              std::is_trivially_destructible_v<EventShared>);

}  // namespace wharf::testing

#endif  // WHARF_TESTS_SYNC_LOCK_SHARED_STATE_H_

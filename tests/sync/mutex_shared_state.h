// The state a cross-process Mutex test keeps in a named SharedBuffer: a
// mutex guarding two counters that are equal whenever the mutex is free. A
// process killed inside the critical section leaves a != b; the survivor that
// gets kOwnerDied repairs it (b = a) before MarkConsistent().
//
// Lives in shared memory: plain data only.
#ifndef WHARF_TESTS_SYNC_MUTEX_SHARED_STATE_H_
#define WHARF_TESTS_SYNC_MUTEX_SHARED_STATE_H_

#include <cstdint>
#include <type_traits>

#include "wharf/sync/mutex.h"

namespace wharf::testing {

struct MutexSharedState {
  Mutex mu;
  int64_t a;           // incremented first inside the critical section
  int64_t b;           // then this one
  int64_t recoveries;  // owner-died recoveries performed
  uint32_t ready;      // a child sets it to 1 (Atomics) once it holds the mutex
  uint32_t pad;
};
static_assert(std::is_trivially_destructible_v<MutexSharedState>);
static_assert(sizeof(MutexSharedState) == 40);

}  // namespace wharf::testing

#endif  // WHARF_TESTS_SYNC_MUTEX_SHARED_STATE_H_

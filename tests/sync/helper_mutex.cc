// sync_process_helper subcommands for mutex_test's cross-process tests.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tests/sync/mutex_shared_state.h"
#include "tests/sync/process_helper_registry.h"
#include "wharf/sync/atomics.h"
#include "wharf/sync/mutex.h"
#include "wharf/sync/shared_buffer.h"

namespace wharf::testing {
namespace {

MutexSharedState* OpenState(const std::string& name, SharedBuffer* keep) {
  auto buffer = SharedBuffer::OpenNamed(name);
  if (!buffer.ok()) {
    std::fprintf(stderr, "OpenNamed(%s): %s\n", name.c_str(), buffer.status().ToString().c_str());
    std::exit(3);
  }
  *keep = *std::move(buffer);
  return reinterpret_cast<MutexSharedState*>(keep->data());
}

// Locks, repairing after a dead owner. Exits on a not-recoverable mutex.
void LockRepairing(MutexSharedState* s) {
  switch (s->mu.Lock()) {
    case LockResult::kOk:
      return;
    case LockResult::kOwnerDied:
      s->b = s->a;
      ++s->recoveries;
      if (!s->mu.MarkConsistent().ok()) std::exit(5);
      return;
    default:
      std::exit(4);
  }
}

}  // namespace

// mutex_contend NAME ITERATIONS: lock, a++, b++, unlock, ITERATIONS times.
WHARF_HELPER_COMMAND(mutex_contend) {
  SharedBuffer keep;
  MutexSharedState* s = OpenState(args.at(0), &keep);
  const long n = std::stol(args.at(1));
  for (long i = 0; i < n; ++i) {
    LockRepairing(s);
    ++s->a;
    ++s->b;
    s->mu.Unlock();
  }
  return 0;
}

// mutex_hold NAME: lock, break the invariant (a++), announce `ready`, and hang
// until killed.
WHARF_HELPER_COMMAND(mutex_hold) {
  SharedBuffer keep;
  MutexSharedState* s = OpenState(args.at(0), &keep);
  LockRepairing(s);
  ++s->a;
  atomics::Store(s->ready, 1u);
  atomics::Notify(s->ready);
  for (;;) ::pause();
}

// mutex_churn NAME: lock, a++, b++, unlock forever (killed at a random point).
WHARF_HELPER_COMMAND(mutex_churn) {
  SharedBuffer keep;
  MutexSharedState* s = OpenState(args.at(0), &keep);
  atomics::Store(s->ready, 1u);
  atomics::Notify(s->ready);
  for (;;) {
    LockRepairing(s);
    ++s->a;
    for (int i = 0; i < 50; ++i) asm volatile("" ::: "memory");
    ++s->b;
    s->mu.Unlock();
  }
}

}  // namespace wharf::testing

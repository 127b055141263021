#include "wharf/sync/internal/async_waiters.h"

#include "wharf/sync/mutex.h"
#include "wharf/sync/interrupt.h"

namespace wharf::sync_internal {
namespace {

struct Bucket {
  Mutex mu;
  AsyncWaiter* head = nullptr;  // guarded by mu; oldest first
  AsyncWaiter* tail = nullptr;  // guarded by mu
};

Bucket& BucketOf(const void* cell, int* index) {
  // Never destroyed: waiters may be notified during static destruction.
  static Bucket* const buckets = new Bucket[kAsyncWaiterBuckets];
  *index = AsyncWaiterBucket(cell);
  return buckets[*index];
}

void UnlinkLocked(Bucket& b, int index, AsyncWaiter* w) {
  if (w->prev != nullptr) w->prev->next = w->next; else b.head = w->next;
  if (w->next != nullptr) w->next->prev = w->prev; else b.tail = w->prev;
  w->prev = w->next = nullptr;
  w->linked = false;
  async_waiter_counts[index].count.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace

void AsyncWaiters::Register(AsyncWaiter* w) {
  int index;
  Bucket& b = BucketOf(w->cell, &index);
  UninterruptibleLock<Mutex> lock(b.mu);
  w->prev = b.tail;
  w->next = nullptr;
  if (b.tail != nullptr) b.tail->next = w; else b.head = w;
  b.tail = w;
  w->linked = true;
  // A: seq_cst; the caller's re-read of the cell follows (matches B, the
  // fence in atomics::Notify before its load of the count).
  async_waiter_counts[index].count.fetch_add(1, std::memory_order_seq_cst);
}

bool AsyncWaiters::Unregister(AsyncWaiter* w) {
  int index;
  Bucket& b = BucketOf(w->cell, &index);
  UninterruptibleLock<Mutex> lock(b.mu);
  if (!w->linked) return false;
  UnlinkLocked(b, index, w);
  return true;
}

int AsyncWaiters::NotifySlow(const void* cell, int count) {
  int index;
  Bucket& b = BucketOf(cell, &index);
  UninterruptibleLock<Mutex> lock(b.mu);
  int woken = 0;
  for (AsyncWaiter* w = b.head; w != nullptr && woken < count;) {
    AsyncWaiter* next = w->next;
    if (w->cell == cell) {
      UnlinkLocked(b, index, w);
      ++woken;
      w->notified(w);  // may free nothing of ours; `next` stays valid (locked)
    }
    w = next;
  }
  return woken;
}

int AsyncWaiters::CountForTesting(const void* cell) {
  int index;
  Bucket& b = BucketOf(cell, &index);
  UninterruptibleLock<Mutex> lock(b.mu);
  int n = 0;
  for (AsyncWaiter* w = b.head; w != nullptr; w = w->next) n += w->cell == cell;
  return n;
}

}  // namespace wharf::sync_internal

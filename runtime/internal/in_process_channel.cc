#include "wharf/runtime/internal/in_process_channel.h"

#include "wharf/runtime/internal/in_flight_senders.h"
#include "wharf/runtime/internal/loop_access.h"
#include "wharf/sync/internal/asymmetric_fence.h"
#include "wharf/sync/internal/spin.h"
#include "wharf/sync/internal/thread_identity.h"

namespace wharf::runtime_internal {

using sync_internal::EventCount;

InProcessChannel::InProcessChannel(size_t capacity)
    : capacity_(static_cast<int64_t>(capacity)), dir_{Direction(capacity != 0), Direction(capacity != 0)} {}

SendResult InProcessChannel::TrySend(int to, Value& message) {
  Direction& d = dir_[to];
  InFlightSenders::Enter(this);  // then LightFence: see state_
  // Every way out of the sender's window rings (see the protocol in the
  // header): a receiver that saw the channel closed while this sender was in
  // flight sleeps until a ring after its Leave — also when the send fails.
  if (state_.load(std::memory_order_relaxed) != 0) {
    InFlightSenders::Leave();
    Ring(d);
    (void)state_.load(std::memory_order_acquire);  // synchronises with the seal: then migrating_ is seen
    return migrating_.load(std::memory_order_acquire) ? SendResult::kMoved : SendResult::kClosed;
  }
  if (d.bounded && d.count.fetch_add(1, std::memory_order_acq_rel) >= capacity_) {
    d.count.fetch_sub(1, std::memory_order_acq_rel);
    InFlightSenders::Leave();
    Ring(d);
    return SendResult::kFull;
  }
  // The fast lane when this thread owns it (or claims it now).
  const uint64_t me = sync_internal::CurrentOwnerId();
  uint64_t owner = d.lane_owner.load(std::memory_order_relaxed);
  if (owner == 0 && d.lane_owner.compare_exchange_strong(owner, me, std::memory_order_acquire,
                                                         std::memory_order_relaxed)) {
    owner = me;
  }
  if (owner != me && !d.queue_used.load(std::memory_order_relaxed)) {
    // Before the enqueue (in this thread's order): a receiver that sees the
    // element, or the channel drained, sees the flag.
    d.queue_used.store(true, std::memory_order_release);
  }
  const bool queued = owner == me ? d.lane.Push(std::move(message))
                                  : d.queue.enqueue(std::move(message));
  if (!queued && d.bounded) d.count.fetch_sub(1, std::memory_order_acq_rel);
  InFlightSenders::Leave();
  // Ring after leaving the sender's window — a receiver that found the
  // channel closed but this send in flight may be asleep waiting for the
  // Leave — inside a ringer's window, so that AttachLoop waits for us before
  // the doorbell (a loop's) can die.
  Ring(d);
  return queued ? SendResult::kOk : SendResult::kNoMemory;
}

void InProcessChannel::Ring(Direction& d) {
  InFlightSenders::Enter(&state_);  // then LightFence: B of the doorbell's pair
  d.doorbell.load(std::memory_order_acquire)->Notify();
  InFlightSenders::Leave();
}

bool InProcessChannel::TryTakeQueued(Direction& d, Value& out) {
  if (d.cached_next == d.cached_end) {
    // Bulk: one bulk dequeue costs moodycamel about what one single dequeue
    // does, and it was the receiver's largest cost.
    if (d.cache == nullptr) d.cache = std::make_unique<Value[]>(kCache);
    d.cached_end = d.queue.try_dequeue_bulk(d.cache.get(), kCache);
    d.cached_next = 0;
    if (d.cached_end == 0) return false;
  }
  out = std::move(d.cache[d.cached_next]);
  d.cache[d.cached_next++] = Value();
  return true;
}

void InProcessChannel::TookOne(Direction& d) {
  d.count.fetch_sub(1, std::memory_order_acq_rel);
  d.space.Notify();
}

bool InProcessChannel::Drained(int side) {
  // Exact: after the acquire load saw kClosed and no sender in flight, every
  // enqueue happened before, and only this thread dequeues.
  if ((state_.load(std::memory_order_acquire) & kClosed) == 0) return false;
  if (migrating_.load(std::memory_order_acquire)) return false;  // moved, not closed
  if (InFlightSenders::AnyIn(this)) return false;
  Direction& d = dir_[side];
  if (d.cached_next < d.cached_end || d.lane.Ready()) return false;
  if (d.bounded) return d.count.load(std::memory_order_acquire) == 0;
  return !QueueUsed(d) || d.queue.size_approx() == 0;
}

void InProcessChannel::SealForMigration() {
  migrating_.store(true, std::memory_order_release);  // before kClosing: a sender that sees it says kMoved
  state_.fetch_or(kClosing, std::memory_order_acq_rel);
  sync_internal::HeavyFence();
  state_.fetch_or(kClosed, std::memory_order_release);
  // Every sender that did not see the seal is in flight now: wait it out.
  InFlightSenders::WaitForLeavers(this);
}

void InProcessChannel::WakeAll() {
  InFlightSenders::Enter(&state_);
  for (Direction& d : dir_) {
    d.doorbell.load(std::memory_order_acquire)->NotifyAll();
    d.space.NotifyAll();
  }
  InFlightSenders::Leave();
}

void InProcessChannel::Close() {
  if ((state_.load(std::memory_order_acquire) & kClosed) != 0) return;
  // See state_: kClosing, the heavy side of the senders' Dekker pair, then
  // kClosed.
  state_.fetch_or(kClosing, std::memory_order_acq_rel);
  sync_internal::HeavyFence();
  state_.fetch_or(kClosed, std::memory_order_release);
  // Wake every receiver (on its loop or in Receive) and every blocked
  // sender, inside a ringer's window so that no doorbell dies meanwhile.
  InFlightSenders::Enter(&state_);
  for (Direction& d : dir_) {
    d.doorbell.load(std::memory_order_acquire)->NotifyAll();
    d.space.NotifyAll();
  }
  InFlightSenders::Leave();
}

bool InProcessChannel::WaitReadable(int side, absl::Time deadline) {
  Direction& d = dir_[side];
  EventCount& ec = *d.doorbell.load(std::memory_order_relaxed);  // owner: stable
  const EventCount::Key key = ec.PrepareWait();
  // Sealed for a move: nothing will ever ring this doorbell again (senders
  // go to the new transport), so a receiver that decided to wait here just
  // before the move was published must not sleep: its caller looks again
  // and finds the new transport. (migrating_ is stored before Migrate's
  // WakeAll: either that wake sees this waiter, or this check sees it.)
  if (Readable(side) || Drained(side) || migrating_.load(std::memory_order_acquire)) {
    ec.CancelWait();
    return true;
  }
  return ec.CommitWaitInterruptible(key, deadline);
}

bool InProcessChannel::WaitWritable(int to, absl::Time deadline) {
  Direction& d = dir_[to];
  auto has_room = [&] {
    return d.count.load(std::memory_order_acquire) < capacity_ ||
           state_.load(std::memory_order_acquire) != 0;
  };
  if (has_room()) return true;
  const EventCount::Key key = d.space.PrepareWait();
  if (has_room()) {
    d.space.CancelWait();
    return true;
  }
  return d.space.CommitWaitInterruptible(key, deadline);
}

void InProcessChannel::AttachLoop(int side, EventLoop* loop) {
  Direction& d = dir_[side];
  EventCount* next = loop != nullptr ? &LoopAccess::Doorbell(*loop) : &d.ready;
  EventCount* prev = d.doorbell.exchange(next, std::memory_order_acq_rel);
  if (prev == next || prev == &d.ready) return;  // nothing can dangle
  // Senders and ringers that loaded `prev` are in their window: the store
  // above and their Enter form the Dekker pair of in_flight_senders.h.
  sync_internal::HeavyFence();
  InFlightSenders::WaitForLeavers(this);
  InFlightSenders::WaitForLeavers(&state_);
}

}  // namespace wharf::runtime_internal

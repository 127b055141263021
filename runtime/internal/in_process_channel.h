// InProcessChannel: the transport of a MessageChannel whose two ends are in
// one process — one queue per direction — under the surface every port
// transport has (port_transport.h): TrySend, TryTake, Readable, Drained,
// Close, WaitReadable, WaitWritable, and a doorbell that senders ring.
//
// Each direction is a moodycamel ConcurrentQueue plus a single-producer lane
// (spsc_lane.h): the first thread that sends in a direction claims the lane
// (its owner id includes the thread's start time, so a reused TID is another
// thread) and uses it from then on, every other thread the queue, so each
// producer always uses one path and per-producer FIFO holds. A one-producer
// direction — a worker's parent port, a ping-pong — moves one cache line per
// message.
//
// Send path: no atomic read-modify-write and no fence instruction on an
// unbounded direction. The sender marks itself in its per-thread in-flight
// record (in_flight_senders.h), checks the closed state, enqueues, unmarks,
// and rings the doorbell (an EventCount Notify: a load when nobody sleeps).
// The rare sides pay instead: Close() and a doorbell change run HeavyFence
// (membarrier(2)), a receiver about to sleep runs it in PrepareWait.
//
// Protocol.
//   state_: kClosing, then kClosed, for both directions at once. Close() sets
//     kClosing, runs HeavyFence(), then sets kClosed: a sender between
//     InFlightSenders::Enter(this) and Leave() that did not see kClosing is
//     visible in InFlightSenders to whoever saw kClosed (the Dekker pair of
//     in_flight_senders.h). So "kClosed, no sender in flight, queue empty"
//     means closed and drained: nothing can arrive any more.
//   doorbell: per direction, the EventCount senders notify after an enqueue
//     — the direction's own `ready` (for a blocking Receive), or, while the
//     receiving end is started on a loop, that loop's doorbell. Written by the
//     receiving owner (AttachLoop); read by ringers — senders after their
//     enqueue, closers — inside a ringer's window (InFlightSenders under the
//     tag &state_, distinct from a sender's, so that Drained() does not wait
//     for a ring). Moving it off a loop runs HeavyFence and then waits until
//     every sender and ringer in flight at that moment has left its window
//     (InFlightSenders::WaitForLeavers: bounded even under a steady stream of
//     senders), so none still holds the old loop's EventCount when
//     AttachLoop returns (the loop may then die). A sender
//     rings after leaving its sender window, whether the send succeeded or
//     not (closed, full, out of memory): a receiver that saw the channel
//     closed with this send still in flight sleeps until that Leave, and the
//     ring that follows it wakes it (the ring's load of the waiter count and
//     the receiver's announcement + re-check of the in-flight records are
//     the doorbell's Dekker pair).
//   count (bounded directions only): messages reserved or queued —
//     incremented before the enqueue, decremented after the dequeue: the
//     capacity test. An unbounded direction keeps no counter (one written by
//     both sides moves its cache line across CPUs twice per message: a sixth
//     of the throughput in //bench:port_bench).
//
// Thread-safety: TrySend and Close from any thread; everything else belongs
// to the owner of the receiving side (one thread at a time). In-process only:
// the asymmetric fences order only this process's threads.

#ifndef WHARF_RUNTIME_INTERNAL_IN_PROCESS_CHANNEL_H_
#define WHARF_RUNTIME_INTERNAL_IN_PROCESS_CHANNEL_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include <concurrentqueue/concurrentqueue.h>

#include "absl/time/time.h"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/internal/spsc_lane.h"
#include "wharf/runtime/internal/transport_types.h"
#include "wharf/runtime/value.h"
#include "wharf/sync/futex.h"
#include "wharf/sync/internal/event_count.h"

namespace wharf::runtime_internal {

class InProcessChannel {
 public:
  // `capacity`: most messages queued per direction; 0 = unbounded.
  explicit InProcessChannel(size_t capacity);
  InProcessChannel(const InProcessChannel&) = delete;
  InProcessChannel& operator=(const InProcessChannel&) = delete;

  // Any thread. Queues `message` for side `to` (moved from only on kOk).
  SendResult TrySend(int to, Value& message);
  // Owner of `side`: the next message, or false.
  bool TryTake(int side, Value& out) {
    Direction& d = dir_[side];
    // Alternate between the lane and the queue so that neither starves the
    // other's producers; the queue only once a thread has used it.
    d.lane_turn = !d.lane_turn;
    const bool took = (d.lane_turn && d.lane.Pop(out)) || (QueueUsed(d) && TryTakeQueued(d, out)) ||
                      (!d.lane_turn && d.lane.Pop(out));
    if (took && d.bounded) TookOne(d);
    return took;
  }
  // Owner of `side`: something to take now (cheap enough to poll).
  bool Readable(int side) {
    Direction& d = dir_[side];
    return d.lane.Ready() || d.cached_next < d.cached_end ||
           (QueueUsed(d) && d.queue.size_approx() != 0);
  }
  // Owner of `side`: closed, and nothing queued or in flight any more.
  bool Drained(int side);
  // Any thread; idempotent. Wakes every receiver and blocked sender.
  void Close();
  bool closed() const {
    return state_.load(std::memory_order_acquire) != 0 && !migrating_.load(std::memory_order_acquire);
  }

  // One end is leaving for another process (message_port.cc, Migrate): no
  // send is accepted any more (TrySend says kMoved) and, when this returns,
  // none is in flight — what is queued is all there will ever be. Not a
  // close: closed() and Drained() stay false. Any thread; once.
  void SealForMigration();
  // After the port moved to its new transport: wakes every receiver and
  // blocked sender so that it looks there.
  void WakeAll();
  // The move failed after the seal: the channel is closed instead.
  void AbortMigration() {
    migrating_.store(false, std::memory_order_release);
    WakeAll();
  }
  // Nothing queued for `side` (owner of `side`; meaningful once sealed).
  bool Empty(int side) { return !Readable(side); }

  // Owner of `side`: sleeps until something may be readable or the channel
  // closed (true), or `deadline` (false). Re-check after it returns. An
  // interruption point (throws wharf::Interrupted).
  bool WaitReadable(int side, absl::Time deadline);
  // A sender that got kFull: sleeps until side `to` may have room or the
  // channel closed (true), or `deadline` (false). An interruption point.
  bool WaitWritable(int to, absl::Time deadline);

  // Owner of `side`: senders to `side` ring `loop`'s doorbell from now on
  // (null: the direction's own, for Receive). Never blocks for long: moving
  // off a loop waits out the senders in flight (a few instructions each).
  void AttachLoop(int side, EventLoop* loop);
  // The loop's sleep: nothing to arm (senders ring the loop's own doorbell).
  int ArmSleep(int side, std::span<FutexWaitEntry> out) { return 0; }
  void DisarmSleep(int side, int woken) {}

 private:
  static constexpr uint32_t kClosing = 1;
  static constexpr uint32_t kClosed = 2;
  static constexpr size_t kCache = 32;

  // One direction, laid out by who writes what: the lane and queue (shared),
  // the senders' reservation count, the receiver's sleeps, the senders'
  // waits for room, the receiver's own state.
  struct Direction {
    explicit Direction(bool bounded_in) : bounded(bounded_in) {}
    moodycamel::ConcurrentQueue<Value> queue;
    std::atomic<uint64_t> lane_owner{0};
    // Set (before its first enqueue) by the first thread that uses `queue`:
    // until then the receiver does not look at it. Read-mostly.
    std::atomic<bool> queue_used{false};
    SpscLane<Value> lane;
    const bool bounded;
    alignas(64) std::atomic<int64_t> count{0};
    alignas(64) sync_internal::EventCount ready{FutexScope::kPrivate,
                                                sync_internal::EventCount::Fences::kAsymmetric};
    std::atomic<sync_internal::EventCount*> doorbell{&ready};
    alignas(64) sync_internal::EventCount space{FutexScope::kPrivate,
                                                sync_internal::EventCount::Fences::kAsymmetric};
    // Receiver-owned: the bulk-dequeue cache (taken from `queue`, not yet by
    // the user: still queued as far as anyone can tell) and whose turn it is.
    alignas(64) std::unique_ptr<Value[]> cache;
    size_t cached_next = 0;
    size_t cached_end = 0;
    bool lane_turn = true;
  };

  static bool QueueUsed(const Direction& d) {
    return d.queue_used.load(std::memory_order_relaxed);
  }
  bool TryTakeQueued(Direction& d, Value& out);
  void TookOne(Direction& d);
  void Ring(Direction& d);

  const int64_t capacity_;
  alignas(64) std::atomic<uint32_t> state_{0};
  std::atomic<bool> migrating_{false};  // set (before state_) by SealForMigration
  Direction dir_[2];
};

}  // namespace wharf::runtime_internal

#endif  // WHARF_RUNTIME_INTERNAL_IN_PROCESS_CHANNEL_H_

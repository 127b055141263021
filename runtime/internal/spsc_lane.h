// SpscLane: an unbounded single-producer single-consumer queue of T whose
// 64-byte slot holds the element and its ready flag together, so that handing
// one element over moves one cache line (moodycamel's queue moves at least
// three: the element, the producer's tail index, and the consumer's counters).
// A port's inbox gives its first producing thread such a lane (the fast lane);
// other producers use the multi-producer queue.
//
// Protocol.
//   Segments of kSlots slots, linked by `next`. Producer-private: tail_seg_,
//   tail_idx_. Consumer-private: head_seg_, head_idx_.
//   Push (producer): if the segment is full, take a spare segment — from its
//     private list `free_`, else the whole shared list `spares_` at once
//     (exchange, acquire) — or allocate one, publish it as the full segment's
//     `next` (release) and move on; construct the element in the slot, then
//     ready.store(1, release).
//   Pop (consumer): at the end of a segment follow `next` (acquire; null means
//     empty) and push the finished segment onto `spares_` (CAS, release), or
//     free it when kMaxSpares are kept already; ready.load(acquire) == 1 means
//     the element is published; move it out and reset ready to 0 (relaxed:
//     the segment is reused only after the release push that hands it back).
//   `spares_` is a stack that only the consumer pushes onto and only the
//     producer empties, always whole: no node is ever popped alone, so there
//     is no ABA.
//   Why a list of spares and not malloc: a producer far ahead of its consumer
//   allocated a segment every 32 messages while the consumer freed them, and
//   glibc serialises a free() of another thread's chunk with that thread's
//   malloc() on the arena lock: in //bench:port_bench's unbounded backlog the
//   two threads spent ~28% of their time in that lock's futex.
//   The first segment is allocated by the first Push and published through
//   `first_` (release/acquire), so an unused lane costs no allocation.
// Memory ordering: everything the producer did before Push is visible to the
// consumer after the Pop that returns that element (release/acquire on ready).
//
// Thread-safety: one producer thread and one consumer thread at a time (a
// hand-over of either role needs a happens-before between the old and the
// new thread). Plain data and atomics; in-process only (raw pointers).

#ifndef WHARF_RUNTIME_INTERNAL_SPSC_LANE_H_
#define WHARF_RUNTIME_INTERNAL_SPSC_LANE_H_

#include <atomic>
#include <cstdint>
#include <new>
#include <utility>

namespace wharf::runtime_internal {

template <class T>
class SpscLane {
 public:
  static constexpr int kSlots = 32;
  // Spare segments kept for reuse, at most (4 MiB of 64-byte slots): what a
  // backlog of ~65000 messages needs without allocating again.
  static constexpr int kMaxSpares = 2048;

  SpscLane() = default;
  SpscLane(const SpscLane&) = delete;
  SpscLane& operator=(const SpscLane&) = delete;
  ~SpscLane() {
    Segment* s = first_.load(std::memory_order_acquire);
    if (head_seg_ != nullptr) s = head_seg_;
    DeleteList(s);
    DeleteList(free_);
    DeleteList(spares_.load(std::memory_order_acquire));
  }

  // Producer. False only when a new segment cannot be allocated (`value` is
  // then untouched).
  bool Push(T&& value) {
    if (tail_seg_ == nullptr || tail_idx_ == kSlots) {
      if (free_ == nullptr) {
        free_ = spares_.exchange(nullptr, std::memory_order_acquire);
        if (free_ != nullptr) spare_count_.store(0, std::memory_order_relaxed);
      }
      Segment* seg = free_;
      if (seg != nullptr) {
        free_ = seg->next.load(std::memory_order_relaxed);
        seg->next.store(nullptr, std::memory_order_relaxed);  // published below
      } else {
        seg = new (std::nothrow) Segment;
        allocated_ += seg != nullptr;
      }
      if (seg == nullptr) return false;
      if (tail_seg_ == nullptr) {
        first_.store(seg, std::memory_order_release);
      } else {
        tail_seg_->next.store(seg, std::memory_order_release);
      }
      tail_seg_ = seg;
      tail_idx_ = 0;
    }
    Slot& slot = tail_seg_->slots[tail_idx_++];
    slot.value = std::move(value);
    slot.ready.store(1, std::memory_order_release);
    return true;
  }

  // Consumer: the next element, or false if none is published.
  bool Pop(T& out) {
    Slot* slot = Front();
    if (slot == nullptr) return false;
    // The moved-from element stays in the slot until the next Push into it
    // assigns over it (moved-from Values own nothing).
    out = std::move(slot->value);
    slot->ready.store(0, std::memory_order_relaxed);
    ++head_idx_;
    // No prefetch of the slots ahead: asking for the slot after next (for
    // write) cost ~250 ns per port ping-pong round trip in the 2-core VM's
    // usual mode (0.43 µs without, 0.70 µs with; //bench:port_bench
    // BM_PingPong, 12 interleaved runs) and nothing measurable in throughput:
    // the consumer took the very line its producer was about to write.
    return true;
  }

  // Consumer: whether Pop would return an element now.
  bool Ready() { return Front() != nullptr; }

  // For tests. Producer: segments allocated so far. Any thread: spares kept.
  int allocated_for_testing() const { return allocated_; }
  int spares_for_testing() const { return spare_count_.load(std::memory_order_relaxed); }

 private:
  struct alignas(64) Slot {
    std::atomic<uint32_t> ready{0};
    T value{};
  };
  struct Segment {
    Slot slots[kSlots];
    std::atomic<Segment*> next{nullptr};
  };

  // Consumer: the slot to pop next if it is published, else null. Moves to
  // the next segment (recycling the finished one) when that is published.
  Slot* Front() {
    if (head_seg_ == nullptr) {
      head_seg_ = first_.load(std::memory_order_acquire);
      if (head_seg_ == nullptr) return nullptr;
      head_idx_ = 0;
    }
    if (head_idx_ == kSlots) {
      Segment* next = head_seg_->next.load(std::memory_order_acquire);
      if (next == nullptr) return nullptr;
      Segment* done = head_seg_;
      head_seg_ = next;
      head_idx_ = 0;
      GiveBack(done);
    }
    Slot& slot = head_seg_->slots[head_idx_];
    return slot.ready.load(std::memory_order_acquire) != 0 ? &slot : nullptr;
  }

  // Consumer: keeps `done` for the producer to reuse (or frees it).
  void GiveBack(Segment* done) {
    if (spare_count_.load(std::memory_order_relaxed) >= kMaxSpares) {
      delete done;
      return;
    }
    spare_count_.fetch_add(1, std::memory_order_relaxed);
    Segment* head = spares_.load(std::memory_order_relaxed);
    do {
      done->next.store(head, std::memory_order_relaxed);
    } while (!spares_.compare_exchange_weak(head, done, std::memory_order_release,
                                            std::memory_order_relaxed));
  }
  static void DeleteList(Segment* s) {
    while (s != nullptr) {
      Segment* next = s->next.load(std::memory_order_acquire);
      delete s;
      s = next;
    }
  }

  std::atomic<Segment*> first_{nullptr};
  // Spare segments: pushed by the consumer, taken whole by the producer.
  // spare_count_ is approximate (the producer zeroes it when it takes the
  // list): it only bounds the memory kept, at kMaxSpares segments.
  std::atomic<Segment*> spares_{nullptr};
  std::atomic<int> spare_count_{0};
  alignas(64) Segment* tail_seg_ = nullptr;  // producer
  int tail_idx_ = 0;
  Segment* free_ = nullptr;  // producer: spares taken from spares_
  int allocated_ = 0;        // producer
  alignas(64) Segment* head_seg_ = nullptr;  // consumer
  int head_idx_ = 0;
};

}  // namespace wharf::runtime_internal

#endif  // WHARF_RUNTIME_INTERNAL_SPSC_LANE_H_

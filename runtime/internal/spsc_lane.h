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
//   Push (producer): if the segment is full, take the spare segment
//     (exchange, acquire) or allocate one, publish it as the full segment's
//     `next` (release) and move on; construct the element in the slot, then
//     ready.store(1, release).
//   Pop (consumer): at the end of a segment follow `next` (acquire; null means
//     empty) and give the finished segment back as the spare (exchange,
//     release; a previous spare is freed); ready.load(acquire) == 1 means the
//     element is published; move it out and reset ready to 0 (relaxed: the
//     segment is reused only after the release exchange that hands it back).
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

  SpscLane() = default;
  SpscLane(const SpscLane&) = delete;
  SpscLane& operator=(const SpscLane&) = delete;
  ~SpscLane() {
    Segment* s = first_.load(std::memory_order_acquire);
    if (head_seg_ != nullptr) s = head_seg_;
    while (s != nullptr) {
      Segment* next = s->next.load(std::memory_order_acquire);
      delete s;
      s = next;
    }
    delete spare_.load(std::memory_order_acquire);
  }

  // Producer. False only when a new segment cannot be allocated (`value` is
  // then untouched).
  bool Push(T&& value) {
    if (tail_seg_ == nullptr || tail_idx_ == kSlots) {
      Segment* seg = spare_.exchange(nullptr, std::memory_order_acquire);
      if (seg == nullptr) seg = new (std::nothrow) Segment;
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
    // A receiver behind its producer streams through cold slots: ask for the
    // one after next now.
    if (head_idx_ + 1 < kSlots) __builtin_prefetch(&head_seg_->slots[head_idx_ + 1], 1);
    return true;
  }

  // Consumer: whether Pop would return an element now.
  bool Ready() { return Front() != nullptr; }

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
      done->next.store(nullptr, std::memory_order_relaxed);
      delete spare_.exchange(done, std::memory_order_release);
    }
    Slot& slot = head_seg_->slots[head_idx_];
    return slot.ready.load(std::memory_order_acquire) != 0 ? &slot : nullptr;
  }

  std::atomic<Segment*> first_{nullptr};
  std::atomic<Segment*> spare_{nullptr};
  alignas(64) Segment* tail_seg_ = nullptr;  // producer
  int tail_idx_ = 0;
  alignas(64) Segment* head_seg_ = nullptr;  // consumer
  int head_idx_ = 0;
};

}  // namespace wharf::runtime_internal

#endif  // WHARF_RUNTIME_INTERNAL_SPSC_LANE_H_

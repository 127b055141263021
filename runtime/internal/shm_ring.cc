#include "wharf/runtime/internal/shm_ring.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <new>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "wharf/sync/internal/asymmetric_fence.h"
#include "wharf/sync/internal/spin.h"

namespace wharf::runtime_internal {

// The record protocol.
//
// Memory: a ShmRingHeader, then `capacity` bytes of records (a power of two).
// Cursors are byte counts that only grow (64-bit: they never wrap); a
// cursor's position in the ring is cursor & (capacity - 1).
//   tail: written only by the writer — every byte before it is a complete,
//         published record.
//   head: written only by the reader — every byte before it has been read
//         (copied out) and may be overwritten.
// A record is an 8-byte ShmRecordHeader {length, tag} and the payload, padded
// to a multiple of 8. A record never wraps: when it does not fit before the
// end of the ring, the writer first writes a kPad record that covers the rest
// (its length: the bytes after its header) and puts the record at position 0.
// The pad and the record are published together.
//
// Writer (TryWrite):
//   W: h = head.load(acquire)              — pairs with R: the reader copied
//      the bytes before h out before it released them, so overwriting them
//      cannot change what it read. (The handle keeps the last h and reloads
//      only when that shows too little room: head only grows.)
//   room check: (tail - h) + pad + record <= capacity; else kFull.
//   write [pad header], record header, payload (plain stores).
//   P: tail.store(t + pad + record, release) — pairs with C.
//   readable.Notify() — the event count's pair B (a seq_cst fence and one
//      load of its waiter count; a futex wake only when the reader sleeps).
// Reader (TryRead):
//   C: t = tail.load(acquire)              — pairs with P: the record bytes
//      before t are complete and visible. (Kept, and reloaded only once the
//      reader has caught up with it.)
//   copy the record header to a local, check it, copy the payload out.
//   R: head.store(h + record, release)     — pairs with W.
//   writable.Notify() — for a writer asleep in WaitWritable: fenced every
//      16 records and when the ring runs empty, a plain load in between
//      (a writer sleeps only on a full ring, in slices of 1 ms: see TryRead).
// Sleeps: WaitReadable/WaitWritable are the event count's prepare → re-check
// → commit (its pair A against the Notify above), so a publish or a read
// that races the announcement is never lost. Both event counts are
// kAsymmetric: Notify's fence (B) is only a compiler barrier in a process
// registered for membarrier's GLOBAL_EXPEDITED, and a sleeper's PrepareWait
// (A) issues that membarrier — a barrier on the notifier's CPU — so the
// pair holds across processes (sync/internal/asymmetric_fence.h). Measured
// on the 2-core VM: a seq_cst fence after the publish waited ~100-200 ns
// for the stores to the lines the reader polls, on every record; a sleeper
// pays ~1.1 µs once per sleep, after its 20 µs spin.
// Close. The writer's closed bit is bit 63 of `tail` itself, set by the
// writer's process (K: fetch_or), never concurrently with a TryWrite of that
// writer (the caller serialises the two: a port holds its send lock for
// both). So a write either publishes before the close (the record is in, and
// whoever drains after the close reads it: the reader loads tail, bit and
// position together) or sees the bit and reports kClosed; Drained() is "the
// bit, and head == tail". The reader's closed bit lives in `closed` (bit 1;
// `closed` mirrors the writer's as bit 0 for the waits), set by the reader's
// process, and a closed reader still reads what was published before it
// called itself drained — so a write the port accepted is never lost to a
// close that races it. That takes a Dekker pair, the only one on the path:
//   M (writer): writing = 1; LightFenceShared; load `closed`; ... P;
//      writing = 0 (release) — or, refused, writing = 0 and a Notify.
//   N (reader's close): fetch_or(closed, reader bit); HeavyFenceShared.
//   Drained: reader bit seen, then writing == 0 (acquire), then head == tail.
// Either the writer sees the bit and refuses, or the reader sees its mark
// (and waits for its Notify) or the mark already cleared behind P (and the
// record). A writer killed while marked leaves the mark: the port then
// closes through the peer's death (pidfd), which drains without it.
// Why P is a plain store and not a compare-and-swap against the closed bits
// (version 2): a locked instruction on the line the reader polls cost ~200 ns
// per round trip on the 2-core VM (/tmp floor test: 440-590 ns for a plain
// store ping-pong of one word, 650-790 with a CAS), a third of a port's
// round trip between processes, for a race only a process's own threads
// can run — which its send lock already excludes.
// The crash argument. A writer killed at any instruction before P leaves
// tail where it was: the partial record is invisible, the reader sees the
// ring as it was after the previous record, and nothing else writes to this
// ring (one writer per ring). Killed after P, the record is complete. So a
// dead writer loses at most the record it was writing, and the ring stays
// readable to its end. A reader killed at any point leaves head at a record
// boundary (R is one store after the copy), so another reader attached
// later resumes at the next unread record. Neither side holds a lock.
//
// A hostile peer can write anything into the mapping. The reader never
// trusts it: the capacity and record limit come from Attach (this process's
// copy), the cursors must be on 8-byte record boundaries, each header is
// copied once to a local and checked (tag; length at
// most max_record; the record inside the published bytes and inside the
// ring; a pad exactly to the end), the payload is copied out before the
// caller parses it, and a failed check poisons this reader's handle. A
// hostile writer can therefore make the reader see garbage payloads (which
// the codec above rejects) or DataLoss, never read out of bounds, allocate
// more than max_record, or loop.

namespace {

constexpr uint32_t kWriterClosed = 1;
constexpr uint32_t kReaderClosed = 2;
// The closed bits in `tail` (see Close above), and the position below them.
constexpr uint64_t kTailWriterClosed = uint64_t{1} << 63;
constexpr uint64_t kTailPosition = ~kTailWriterClosed;
// The bounded spin of both waits before they sleep: MessagePort::Receive's.
constexpr absl::Duration kWaitSpin = sync_internal::kReplySpin;
// Records a reader consumes between two fenced wake-ups of the writer, and
// the longest a sleeping writer can miss a wake-up that an unfenced check
// skipped (it re-checks for room after each slice).
constexpr uint32_t kFencedEvery = 16;
constexpr absl::Duration kMissedWakeBound = absl::Milliseconds(1);

std::atomic<ShmWriteHook> write_hook{nullptr};

inline void Hook(ShmWriteStep step, uint64_t index) {
  ShmWriteHook hook = write_hook.load(std::memory_order_relaxed);
  if (hook != nullptr) hook(step, index);
}

bool Aligned64(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 63) == 0; }

}  // namespace

void SetShmWriteHookForTesting(ShmWriteHook hook) {
  write_hook.store(hook, std::memory_order_relaxed);
}

absl::Status ShmRing::Init(void* memory, size_t bytes) {
  if (memory == nullptr || !Aligned64(memory)) {
    return absl::InvalidArgumentError("ShmRing::Init: the memory must be 64-byte aligned");
  }
  if (bytes < kHeaderBytes + kMinCapacity) {
    return absl::InvalidArgumentError(absl::StrCat("ShmRing::Init: ", bytes,
                                                   " bytes is too small; a ring needs at least ",
                                                   kHeaderBytes + kMinCapacity));
  }
  const size_t capacity = std::min(std::bit_floor(bytes - kHeaderBytes), kMaxCapacity);
  // Zero first: memory that held a ring keeps no magic while this runs.
  std::memset(memory, 0, kHeaderBytes);
  auto* h = new (memory) ShmRingHeader;
  h->version = kVersion;
  h->capacity = static_cast<uint32_t>(capacity);
  h->max_record = static_cast<uint32_t>(capacity / 4 - sizeof(ShmRecordHeader));
  h->tail.store(0, std::memory_order_relaxed);
  h->head.store(0, std::memory_order_relaxed);
  h->closed.store(0, std::memory_order_relaxed);
  h->writing.store(0, std::memory_order_relaxed);
  // Asymmetric: a publish or a read rings the doorbell with no fence
  // instruction; a sleeper pays a membarrier (see Sleeps above).
  using sync_internal::EventCount;
  new (&h->readable) EventCount(FutexScope::kShared, EventCount::Fences::kAsymmetric);
  new (&h->writable) EventCount(FutexScope::kShared, EventCount::Fences::kAsymmetric);
  // Last, with release: an Attach that sees the magic (acquire) sees the rest.
  std::atomic_ref<uint64_t>(h->magic).store(kMagic, std::memory_order_release);
  return absl::OkStatus();
}

absl::StatusOr<ShmRing> ShmRing::Attach(void* memory, size_t bytes) {
  if (memory == nullptr || !Aligned64(memory) || bytes < kHeaderBytes + kMinCapacity) {
    return absl::InvalidArgumentError(
        absl::StrCat("ShmRing::Attach: ", bytes, " bytes of 64-byte aligned memory needed, at least ",
                     kHeaderBytes + kMinCapacity));
  }
  auto* h = static_cast<ShmRingHeader*>(memory);
  const uint64_t magic = std::atomic_ref<uint64_t>(h->magic).load(std::memory_order_acquire);
  if (magic != kMagic) {
    return absl::FailedPreconditionError(
        "ShmRing::Attach: the memory holds no Wharf ring (bad magic; not initialised yet?)");
  }
  if (h->version != kVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "ShmRing::Attach: ring version ", h->version, ", this build speaks version ", kVersion,
        " (a process of another Wharf version?)"));
  }
  const size_t capacity = h->capacity;
  if (!std::has_single_bit(capacity) || capacity < kMinCapacity || capacity > kMaxCapacity ||
      kHeaderBytes + capacity > bytes ||
      h->max_record != capacity / 4 - sizeof(ShmRecordHeader)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "ShmRing::Attach: the ring's header is inconsistent (capacity ", capacity, ", max record ",
        h->max_record, ") with a mapping of ", bytes, " bytes"));
  }
  ShmRing ring(h, static_cast<std::byte*>(memory) + kHeaderBytes, capacity,
               capacity / 4 - sizeof(ShmRecordHeader));
  ring.records_read_ = h->records_read.load(std::memory_order_relaxed);  // a later reader resumes
  ring.written_ = h->records_written.load(std::memory_order_relaxed);   // ... and a later writer
  ring.tail_ = h->tail.load(std::memory_order_acquire) & kTailPosition;
  ring.head_ = h->head.load(std::memory_order_acquire);
  return ring;
}

// --- writer -------------------------------------------------------------------

bool ShmRing::Fits(size_t n) const {
  if (n > max_record_) return false;
  // The shared cursor, not tail_: other threads of the writing process call
  // this while one of them writes (a port's senders wait outside its lock).
  const uint64_t t = header_->tail.load(std::memory_order_relaxed) & kTailPosition;
  const uint64_t h = header_->head.load(std::memory_order_acquire);  // W
  if (t % 8 != 0 || h % 8 != 0) return false;
  const size_t need = RecordBytes(n);
  const size_t pos = t & (capacity_ - 1);
  const size_t total = need <= capacity_ - pos ? need : (capacity_ - pos) + need;
  return t - h <= capacity_ && (t - h) + total <= capacity_;
}

RingWrite ShmRing::TryWrite(std::span<const std::byte> payload) {
  const size_t n = payload.size();
  if (n > max_record_) return RingWrite::kTooLarge;
  // M: announce the write before looking at `closed` (pairs with the
  // reader's close, N: see Close above). On our own line; the light fence is
  // a compiler barrier in a registered process.
  header_->writing.store(1, std::memory_order_relaxed);
  sync_internal::LightFenceShared();
  const RingWrite result = WriteAnnounced(payload);
  if (result != RingWrite::kOk) {
    // A reader that closed meanwhile may be waiting for the mark to drop
    // before it calls itself drained: let it look again. (kOk cleared it
    // before its own Notify.)
    header_->writing.store(0, std::memory_order_release);
    header_->readable.Notify();
  }
  return result;
}

RingWrite ShmRing::WriteAnnounced(std::span<const std::byte> payload) {
  const size_t n = payload.size();
  // Either side's close (CloseWriter never runs beside us, so its bit is
  // seen here or the write precedes it; the reader's: M/N). `closed` is
  // written only at a close: a line that stays in both CPUs' caches.
  if (header_->closed.load(std::memory_order_acquire) != 0) return RingWrite::kClosed;
  // Our own copy of `tail` (only this writer advances it): the reader polls
  // that line, and loading it here would wait for it to come back.
  uint64_t t = tail_;
  const size_t need = RecordBytes(n);
  size_t pos = t & (capacity_ - 1);
  const size_t contiguous = capacity_ - pos;
  const size_t total = need <= contiguous ? need : contiguous + need;
  // The reader's cursor as last loaded: it only grows, so room seen there is
  // room now. Reloaded (W) only when it shows too little, so a writer ahead
  // of its reader does not pull the reader's cache line on every record.
  if (t - cached_head_ > capacity_ || (t - cached_head_) + total > capacity_) {
    cached_head_ = header_->head.load(std::memory_order_acquire);  // W: pairs with R
  }
  const uint64_t h = cached_head_;
  // Cursors are multiples of 8 unless a peer overwrote them: writing at an
  // unaligned position could run past the ring's end.
  if (t % 8 != 0 || h % 8 != 0) return RingWrite::kCorrupt;
  // t - h > capacity only when the reader's cursor was overwritten: no room.
  if (t - h > capacity_ || (t - h) + total > capacity_) return RingWrite::kFull;
  Hook(ShmWriteStep::kReserved, written_);
  if (need > contiguous) {
    const ShmRecordHeader pad{static_cast<uint32_t>(contiguous - sizeof(ShmRecordHeader)), kPad};
    std::memcpy(records_ + pos, &pad, sizeof(pad));
    t += contiguous;
    pos = 0;
  }
  const ShmRecordHeader rec{static_cast<uint32_t>(n), kData};
  std::memcpy(records_ + pos, &rec, sizeof(rec));
  Hook(ShmWriteStep::kHeaderWritten, written_);
  if (n != 0) std::memcpy(records_ + pos + sizeof(rec), payload.data(), n);
  Hook(ShmWriteStep::kPayloadWritten, written_);
  tail_ = t + need;
  header_->tail.store(tail_, std::memory_order_release);  // P: pairs with C
  Hook(ShmWriteStep::kPublished, written_);
  // After P, with release: a closed reader that sees 0 here sees the record.
  header_->writing.store(0, std::memory_order_release);
  header_->records_written.store(++written_, std::memory_order_relaxed);  // not the tail's line
  header_->readable.Notify();  // B
  return RingWrite::kOk;
}

bool ShmRing::WaitOn(sync_internal::EventCount& event, absl::FunctionRef<bool()> ready,
                     absl::FunctionRef<bool()> spin_ready, absl::Time deadline, bool sliced) {
  // A peer that is busy answers within microseconds: spin for it before
  // sleeping (a writer that keeps the ring full would otherwise sleep and be
  // woken once per record: measured 1.7 M records/s instead of 15 M).
  (void)sync_internal::SpinFor(kWaitSpin, deadline, spin_ready, /*yield_after=*/kWaitSpin / 2);
  for (;;) {
    if (ready()) return true;
    const sync_internal::EventCount::Key key = event.PrepareWait();  // A
    if (ready()) {
      event.CancelWait();
      return true;
    }
    // A writer sleeps in slices of kMissedWakeBound: a wake-up the reader's
    // unfenced check missed (TryRead's NotifyIfSeen) costs at most one
    // slice, never a writer stuck beside free room. A reader sleeps until
    // woken (every publish is followed by a fenced Notify).
    const absl::Time slice = sliced ? std::min(deadline, absl::Now() + kMissedWakeBound) : deadline;
    if (!event.CommitWaitInterruptible(key, slice) && absl::Now() >= deadline) return ready();
  }
}

bool ShmRing::WaitWritableUntil(absl::FunctionRef<bool()> ready, absl::Time deadline) {
  // While spinning, a writer that found the ring full waits for an eighth
  // of it to be free, not for its one record: polling `head` on every pause
  // takes the reader's line from it on every record the reader frees (the
  // reader is the slower side when the ring is full), and writing one record
  // per freed slot keeps the two CPUs on the same lines. Measured on the
  // 2-core VM, //bench:ipc_bench BM_Throughput/wharf_port_processes: see
  // docs/benchmarks.md. Asleep, it wakes for any room (a reader that frees
  // one record and stops must still let one more in).
  const auto spin_ready = [&] {
    return ready() &&
           (header_->closed.load(std::memory_order_relaxed) != 0 || Fits(capacity_ / 8));
  };
  return WaitOn(header_->writable, ready, spin_ready, deadline, /*sliced=*/true);
}

bool ShmRing::WaitWritable(size_t n, absl::Time deadline) {
  if (n > max_record_) return false;
  const bool ready = WaitWritableUntil(
      [&] { return header_->closed.load(std::memory_order_acquire) != 0 || Fits(n); }, deadline);
  return ready && !reader_closed() && !writer_closed();
}

void ShmRing::CloseWriter() {
  header_->tail.fetch_or(kTailWriterClosed, std::memory_order_seq_cst);  // K
  header_->closed.fetch_or(kWriterClosed, std::memory_order_seq_cst);
  header_->readable.NotifyAll();
  header_->writable.NotifyAll();
}

// --- reader -------------------------------------------------------------------

absl::StatusOr<bool> ShmRing::TryRead(std::string& out) {
  if (!poisoned_.ok()) return poisoned_;
  const auto poison = [&](std::string what) -> absl::Status {
    poisoned_ = absl::DataLossError(absl::StrCat("shared-memory ring: ", what,
                                                 "; the ring is unreadable from here on"));
    return poisoned_;
  };
  // Our own copy of `head` (only this reader advances it): the writer loads
  // that line when it looks for room, and loading it here would wait for
  // the line to come back.
  uint64_t h = head_;
  if (h % 8 != 0) {
    return poison(absl::StrCat("the reader's cursor ", h, " is not on a record boundary"));
  }
  for (;;) {
    // The writer's cursor as last loaded; reloaded (C) only when the reader
    // has caught up with it (or it is behind: a new handle), so a reader
    // behind its writer does not pull the writer's line on every record.
    if (cached_tail_ == h || cached_tail_ - h > capacity_) {
      cached_tail_ = header_->tail.load(std::memory_order_acquire) & kTailPosition;  // C: pairs with P
    }
    const uint64_t t = cached_tail_;
    if (t == h) {
      // Nothing to read. Store the cursor only if a pad was skipped: an
      // empty poll writes nothing (a reader polling an empty ring would
      // otherwise write its line on every poll).
      if (h != head_) {
        head_ = h;
        header_->head.store(h, std::memory_order_release);
      }
      return false;
    }
    const uint64_t avail = t - h;
    if (avail > capacity_ || avail % 8 != 0) {
      return poison(absl::StrCat("the writer's cursor is ", avail,
                                 " bytes past the reader's, in a ring of ", capacity_));
    }
    const size_t pos = h & (capacity_ - 1);
    ShmRecordHeader rec;
    std::memcpy(&rec, records_ + pos, sizeof(rec));  // once: the peer may change it
    if (rec.tag == kPad) {
      const size_t skip = capacity_ - pos;
      if (rec.length != skip - sizeof(ShmRecordHeader) || skip > avail) {
        return poison(absl::StrCat("a padding record of ", rec.length, " bytes at offset ", pos,
                                   " does not end at the end of the ring"));
      }
      h += skip;
      continue;
    }
    if (rec.tag != kData) {
      return poison(absl::StrCat("unknown record tag ", rec.tag, " at offset ", pos));
    }
    if (rec.length > max_record_) {
      return poison(absl::StrCat("a record of ", rec.length, " bytes at offset ", pos,
                                 " exceeds the ring's limit of ", max_record_));
    }
    const size_t bytes = RecordBytes(rec.length);
    if (bytes > avail || pos + bytes > capacity_) {
      return poison(absl::StrCat("a record of ", rec.length, " bytes at offset ", pos,
                                 " runs past the published bytes or the ring's end"));
    }
    out.assign(reinterpret_cast<const char*>(records_ + pos + sizeof(rec)), rec.length);
    h += bytes;
    head_ = h;
    header_->head.store(h, std::memory_order_release);  // R: pairs with W
    header_->records_read.store(++records_read_, std::memory_order_release);
    // The fenced Notify (the event count's pair B) every kFencedEvery records
    // and whenever the ring runs empty (as far as this reader knows); in
    // between, one plain load. A writer sleeps only on a full ring, so a
    // reader that goes on reading reaches one of the two within a few
    // records; if it stops early, the writer finds the room at the end of
    // its current sleep slice (WaitWritable: at most 1 ms).
    if (++reads_since_fence_ >= kFencedEvery || cached_tail_ == h) {
      reads_since_fence_ = 0;
      header_->writable.Notify();
    } else {
      header_->writable.NotifyIfSeen();
    }
    return true;
  }
}

bool ShmRing::Readable() const {
  const uint64_t h = header_->head.load(std::memory_order_relaxed);
  // The next record's line, requested beside the tail's: a spinning reader
  // then has both when the record lands (the two misses overlap instead of
  // following one another). Only here, in the spin, not in TryRead: a reader
  // keeping up with a streaming writer would pull the line being filled.
  __builtin_prefetch(records_ + (h & (capacity_ - 1)));
  const uint64_t t = header_->tail.load(std::memory_order_acquire);
  return (t & kTailPosition) != h ||
         (t & kTailWriterClosed) != 0 || !poisoned_.ok();
}

bool ShmRing::Drained() const {
  // The writer's bit: the position beside it is final (see Close above).
  const uint64_t h = header_->head.load(std::memory_order_relaxed);
  uint64_t t = header_->tail.load(std::memory_order_acquire);
  if ((t & kTailWriterClosed) != 0) return (t & kTailPosition) == h;
  // The reader's own: final once no write that saw the ring open is still
  // landing (M/N in Close above). Both loads acquire: the mark after the
  // bit, the tail after a mark cleared behind its publish.
  if ((header_->closed.load(std::memory_order_acquire) & kReaderClosed) == 0) return false;
  if (header_->writing.load(std::memory_order_acquire) != 0) return false;
  t = header_->tail.load(std::memory_order_acquire);
  return (t & kTailPosition) == h;
}

bool ShmRing::Empty() const {
  return (header_->tail.load(std::memory_order_acquire) & kTailPosition) ==
         header_->head.load(std::memory_order_relaxed);
}

bool ShmRing::WaitReadable(absl::Time deadline) {
  return WaitReadableUntil([this] { return Readable(); }, deadline);
}

void ShmRing::CloseReader() {
  header_->closed.fetch_or(kReaderClosed, std::memory_order_seq_cst);  // N
  // The heavy side of M/N: after it, a writer that announced itself before
  // seeing the bit has its mark visible here. Refused (see
  // asymmetric_fence.h), a writer's light fence may have been a compiler
  // barrier only: give its store buffer far longer than it takes to drain.
  if (!sync_internal::HeavyFenceShared()) absl::SleepFor(sync_internal::EventCount::kBoundedSleep);
  header_->writable.NotifyAll();
  header_->readable.NotifyAll();
}

bool ShmRing::writer_closed() const {
  return (header_->tail.load(std::memory_order_acquire) & kTailWriterClosed) != 0;
}

bool ShmRing::reader_closed() const {
  return (header_->closed.load(std::memory_order_acquire) & kReaderClosed) != 0;
}

}  // namespace wharf::runtime_internal

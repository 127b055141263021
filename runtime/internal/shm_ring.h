// ShmRing: one sender's lane of a cross-process port — a single-producer,
// single-consumer ring of variable-size byte records in memory that two
// processes map (a memfd or named SharedBuffer). The writer and the reader
// may be in different processes; either may be SIGKILLed at any instruction.
//
//   ShmRing::Init(memory, bytes);                       // once, by the creator
//   auto w = ShmRing::Attach(memory, bytes).value();    // writer process
//   auto r = ShmRing::Attach(memory, bytes).value();    // reader process
//   w.TryWrite(bytes);                                  // kOk, kFull, kTooLarge, ...
//   r.TryRead(out);                                     // a record, or empty, or DataLoss
//
// Why one ring per sender (and not one multi-producer ring per port): a
// writer killed between claiming and publishing a record leaves nothing a
// reader can see (the record is published by one release store of `tail`,
// after its bytes), and no other sender shares its ring, so a dead sender
// can never make a port unreadable for the others. A shared MPSC ring needs a
// claim/publish protocol with holes that a reader skips once it knows the
// claimer is dead — a liveness check on the read path — for no gain here:
// the port (the next layer) gives each sending process its own lane, as the
// in-process port gives its first sender the SPSC fast lane.
//
// Hostile or corrupt peers: the reader trusts nothing in the mapping. Every
// length and offset is checked before use (never past the ring, never more
// than the ring's record limit, so never a large allocation); the payload is
// copied out before anyone parses it (the writer cannot change it under the
// decoder). A record that fails a check makes TryRead return DataLoss with
// what was wrong, and the ring stays poisoned for this reader: a byte stream
// whose framing is lost cannot be resynchronised.
//
// Thread-safety: one writer and one reader at a time (each may be any thread
// of its process). CloseWriter must not run concurrently with that writer's
// TryWrite — the writing process serialises them (a port holds its send
// lock for both); CloseReader and the waits may be used from any thread.
// Blocking: TryWrite/TryRead never block; WaitReadable/WaitWritable spin up
// to 20 µs, then sleep on the futex, and are interruption points.
//
// The record protocol, the memory orders and the crash argument: shm_ring.cc.

#ifndef WHARF_RUNTIME_INTERNAL_SHM_RING_H_
#define WHARF_RUNTIME_INTERNAL_SHM_RING_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "wharf/sync/internal/event_count.h"

namespace wharf::runtime_internal {

// The ring's control block, at the start of the ring's memory; the record
// bytes follow it. Lives in a shared mapping: fixed-width fields and
// atomics only — no pointers, no vtables, no std:: containers. Each
// cursor has its own cache line (the writer writes `tail`, the reader
// `head`).
struct ShmRingHeader {
  uint64_t magic;             // kMagic once Init finished
  uint32_t version;           // kVersion
  uint32_t capacity;          // bytes of record space, a power of two
  uint32_t max_record;        // largest payload a record may carry
  uint32_t reserved0;
  // Writer: records published (read only by a later Attach). Not on the
  // tail's line: the reader polls that line, and a second store to it after
  // the publish would take the line from the reader once more per record.
  std::atomic<uint64_t> records_written;
  // Writer: 1 from before TryWrite checks `closed` until after its publish
  // (or its refusal), else 0 — what lets a closed reader tell "drained"
  // from "a write that saw the port open is still landing" (Close in .cc).
  // On the writer's own line: the reader reads it only once it has closed.
  std::atomic<uint64_t> writing;
  uint64_t reserved1[3];
  // Writer: bytes published (monotonic) in bits 0-62; bit 63: the writer
  // closed (see Close in .cc).
  alignas(64) std::atomic<uint64_t> tail;
  uint64_t reserved2a;
  uint64_t reserved2b;
  uint64_t fd_batches;                     // writer: descriptor batches sent (fd_passing.h)
  uint64_t reserved2[4];
  alignas(64) std::atomic<uint64_t> head;  // reader: bytes consumed (monotonic)
  std::atomic<uint64_t> records_read;      // reader: records consumed (for capacities)
  uint64_t reserved3[6];
  // bit 0: the writer closed (a mirror of tail's bit 63); bit 1: the reader
  // closed (set by the reader's process, or by the writer's when it learns
  // that the reader died).
  alignas(64) std::atomic<uint32_t> closed;
  uint32_t reserved4;
  sync_internal::EventCount readable;  // the writer notifies after publishing
  sync_internal::EventCount writable;  // the reader notifies after consuming
};
static_assert(std::is_standard_layout_v<ShmRingHeader>);
static_assert(std::is_trivially_destructible_v<ShmRingHeader>);
static_assert(offsetof(ShmRingHeader, tail) == 64);
static_assert(offsetof(ShmRingHeader, head) == 128);
static_assert(offsetof(ShmRingHeader, closed) == 192);
static_assert(sizeof(ShmRingHeader) == 256, "the records start at offset 256");
static_assert(std::atomic<uint64_t>::is_always_lock_free);

// Each record starts with this (8 bytes), then the payload, padded to 8.
struct ShmRecordHeader {
  uint32_t length;  // payload bytes
  uint32_t tag;     // kData or kPad
};
static_assert(sizeof(ShmRecordHeader) == 8);

// Steps of a write, for fault tests: a hook called at each (a test raises
// SIGKILL at a chosen one to show that a writer dying there loses only the
// record it was writing and leaves the ring readable).
enum class ShmWriteStep : int {
  kReserved = 0,       // space found, nothing written
  kHeaderWritten = 1,  // record header written, payload not
  kPayloadWritten = 2, // payload written, not yet published
  kPublished = 3,      // tail advanced, reader not yet notified
};
using ShmWriteHook = void (*)(ShmWriteStep step, uint64_t record_index);
// Process-wide (tests only; null: no hook). Not in the shared mapping.
void SetShmWriteHookForTesting(ShmWriteHook hook);

enum class RingWrite : uint8_t {
  kOk,        // published
  kFull,      // not enough room now: WaitWritable, then retry
  kTooLarge,  // larger than max_record(): send it out of line
  kClosed,    // the reader closed (or the writer did)
  kCorrupt,   // the ring's cursors are not where a Wharf peer leaves them:
              // a peer overwrote the control block; nothing was written
};

class ShmRing {
 public:
  static constexpr uint64_t kMagic = 0x31474E5246524857;  // "WHRFRNG1", little-endian
  // 2: the closed bits in `tail`; 3: only the writer's (the publish is a
  // plain store, the reader's bit lives in `closed`).
  static constexpr uint32_t kVersion = 4;
  static constexpr uint32_t kData = 1;
  static constexpr uint32_t kPad = 2;
  static constexpr size_t kHeaderBytes = sizeof(ShmRingHeader);
  static constexpr size_t kMinCapacity = 256;
  static constexpr size_t kMaxCapacity = size_t{1} << 30;

  // The memory a ring of `capacity` record bytes needs (capacity: a power of
  // two in [kMinCapacity, kMaxCapacity]).
  static constexpr size_t BytesFor(size_t capacity) { return kHeaderBytes + capacity; }

  // Lays out a ring in `memory` (zero-filled or not; 64-byte aligned) of
  // `bytes` bytes: the largest power-of-two capacity that fits. Records up to
  // a quarter of the capacity fit (larger ones: kTooLarge). InvalidArgument
  // for misaligned or too small memory. Call once, before any Attach, with
  // no writer or reader attached.
  static absl::Status Init(void* memory, size_t bytes);

  // A handle on a ring that Init laid out (in this process or another).
  // FailedPrecondition if the magic, version or sizes do not match `bytes` —
  // a ring of another Wharf version, or memory that holds no ring.
  static absl::StatusOr<ShmRing> Attach(void* memory, size_t bytes);

  ShmRing(const ShmRing&) = default;
  ShmRing& operator=(const ShmRing&) = default;

  // --- writer ---------------------------------------------------------------
  // Publishes one record holding `payload` and rings the reader's doorbell
  // (one fence and one load when the reader is not asleep). Never blocks.
  // kClosed once CloseWriter ran, or the reader closed. A write racing the
  // reader's close either returns kClosed or lands before the reader calls
  // itself Drained (so the reader still reads it): never kOk and lost.
  RingWrite TryWrite(std::span<const std::byte> payload);
  RingWrite TryWrite(std::string_view payload) {
    return TryWrite(std::as_bytes(std::span<const char>(payload.data(), payload.size())));
  }
  // Sleeps until `n` payload bytes fit, the ring closes, or `deadline`.
  // True when they fit. An interruption point.
  bool WaitWritable(size_t n, absl::Time deadline);
  // Whether a record of `n` payload bytes fits now. Once true it stays true
  // until this writer writes (only the reader changes the room, by freeing).
  bool Fits(size_t n) const;
  // Records published that the reader has not consumed yet (a port's
  // message capacity; both counts are re-read each call).
  uint64_t Unread() const {
    // The shared count, not written_: any thread of the writing process
    // may ask while one of them writes.
    const uint64_t written = header_->records_written.load(std::memory_order_relaxed);
    const uint64_t read = header_->records_read.load(std::memory_order_acquire);
    return read <= written ? written - read : 0;  // a hostile count reads as empty
  }
  // The next descriptor-batch number of this ring's writer (kept in the
  // ring, so that a writer handle that moved to another process goes on
  // from where the last one stopped). Writer only.
  uint64_t NextFdBatch() { return ++header_->fd_batches; }
  // Not concurrently with TryWrite (see Thread-safety above).
  void CloseWriter();

  // --- reader ---------------------------------------------------------------
  // The next record's payload into `out` (replacing its contents): true; or
  // false with `out` untouched when none is published. DataLoss when the
  // ring's bytes are not a valid record (the ring stays poisoned).
  absl::StatusOr<bool> TryRead(std::string& out);
  // Something to read now (a cheap load), or the writer closed.
  bool Readable() const;
  // Every published record was read and a side closed. After the writer's
  // close no record can arrive any more (a write either published before
  // it — and is read — or saw it and failed). After the reader's own close
  // not until no write that saw the ring open is still landing (a writer
  // marked mid-write holds it off; its death closes the port by other means).
  bool Drained() const;
  // Every published record was read (says nothing about later ones).
  bool Empty() const;
  // Sleeps until a record is published, the writer closes, or `deadline`.
  // True when readable (or drained). An interruption point.
  bool WaitReadable(absl::Time deadline);
  void CloseReader();

  // The two waits with the caller's condition (a port adds its capacity, or
  // a peer's death that it learns of outside the ring): spin, then sleep on
  // the writable / readable event count until `ready()` or `deadline`;
  // returns ready(). A state change `ready` depends on must be followed by
  // the matching event's Notify (the ring's own reads and writes do that).
  // Interruption points.
  // The writer's spin waits for more room than `ready` asks (see .cc).
  bool WaitWritableUntil(absl::FunctionRef<bool()> ready, absl::Time deadline);
  bool WaitReadableUntil(absl::FunctionRef<bool()> ready, absl::Time deadline) {
    return WaitOn(header_->readable, ready, ready, deadline, /*sliced=*/false);
  }
  sync_internal::EventCount& writable_event() { return header_->writable; }

  bool writer_closed() const;
  bool reader_closed() const;
  size_t capacity() const { return capacity_; }
  size_t max_record() const { return max_record_; }
  // The doorbell a reader's event loop sleeps on (FutexWaitAny, kShared).
  sync_internal::EventCount& readable_event() { return header_->readable; }

  // The record space, for tests that play a hostile writer.
  std::span<std::byte> RecordsForTesting() { return {records_, capacity_}; }
  ShmRingHeader& HeaderForTesting() { return *header_; }

 private:
  ShmRing(ShmRingHeader* header, std::byte* records, size_t capacity, size_t max_record)
      : header_(header), records_(records), capacity_(capacity), max_record_(max_record) {}
  // Spins until `spin_ready()` (at most the spin), then sleeps until `ready()`.
  static bool WaitOn(sync_internal::EventCount& event, absl::FunctionRef<bool()> ready,
                     absl::FunctionRef<bool()> spin_ready, absl::Time deadline, bool sliced);
  // TryWrite's body, between its announcement and the mark's clearing.
  RingWrite WriteAnnounced(std::span<const std::byte> payload);
  static size_t RecordBytes(size_t payload) { return sizeof(ShmRecordHeader) + ((payload + 7) & ~size_t{7}); }

  // Process-local handles (this object is not in the mapping). The
  // capacity and record limit are copied at Attach and never re-read from
  // the mapping, so a peer that rewrites the header cannot widen them.
  ShmRingHeader* header_;
  std::byte* records_;
  size_t capacity_;
  size_t max_record_;
  uint64_t written_ = 0;          // writer: records published (records_written as last stored)
  uint64_t tail_ = 0;             // writer: `tail`'s position as it last stored it
  uint64_t cached_head_ = 0;      // writer: `head` as last loaded
  uint64_t cached_tail_ = 0;      // reader: `tail` as last loaded
  uint64_t head_ = 0;             // reader: `head` as it last stored it
  uint32_t reads_since_fence_ = 0;  // reader: records since a fenced Notify
  uint64_t records_read_ = 0;       // reader: its count, as published in records_read
  absl::Status poisoned_;         // reader: the first DataLoss, kept
};

}  // namespace wharf::runtime_internal

#endif  // WHARF_RUNTIME_INTERNAL_SHM_RING_H_

// ShmChannel: the transport of a MessageChannel whose two ends are in two
// processes — one end of a ShmLink (shm_link.h) under the surface every port
// transport has (port_transport.h). This process holds one side (the local
// side: it receives there and sends to the other); the peer process holds
// the other side over the same link.
//
// Each direction is one ShmRing (shm_ring.h) written by one process: per
// sender lanes, so a sender killed mid-record loses only that record and the
// port stays readable (the crash argument is the ring's). Threads of this
// process that send concurrently take turns on the ring (a SpinLock held for
// one write: the ring is single-producer).
//
// What a record holds: a message the codec encoded (codec.h) — plain bytes
// when the message has no out-of-band part, else a frame (below) whose
// descriptors travel beside the ring on the link's socket (fd_passing.h):
//   - a SharedBuffer in the message: its memfd (the receiver maps the same
//     memory: shared, never copied);
//   - a message larger than the ring's record limit: its body out of line,
//     in a fresh memfd (one copy in, one copy out, no size limit but memory).
//   - a MessagePort in the message: the memfd and socket end of the link
//     the port's channel runs on (a port whose channel was in-process moves
//     it to a fresh link first: PortHooks, message_port.cc). The port
//     leaves this process without its channel being closed.
// Buffers (heap) are copied into the record.
//
// Frame (all little-endian):
//   'F' flags:u8 nshared:u16 nports:u16 0:u16 nfds:u32 0:u32 seq:u64
//   body_bytes:u64                                              (32 bytes)
//   body := value_bytes:u64 nbuffers:u32 0:u32 size:u64[nbuffers]
//           port:PortEntry[nports] value[value_bytes] buffer bytes
//   flags bit 0: the body is in the last descriptor (out of line), else it
//   follows the header in the record. Descriptors: the message's
//   SharedBuffers (nshared, the codec's table order), then two per port
//   (link memfd, socket end), then the out-of-line body.
// A plain record starts with the codec's 'W'; 'E' + text is a message that
// could not be re-encoded when its port moved here (a message error);
// anything else is a message error too.
//
// Receiving: every record is validated (ring framing, frame header, the
// codec); one that fails becomes a message error (OnMessageError, or the
// status Receive returns), in its place in the order, and later messages
// still arrive — unless the ring's framing itself is broken (DataLoss), which
// ends the port after that error (OnClose).
//
// Closing: Close() closes this process's writer and reader (the peer sees
// the close at its next send or receive); what the peer published before is
// still delivered here. A peer that dies without closing is reported by
// whoever watches it (PeerGone: the Worker's pidfd): then the port drains
// what was published and closes, and CloseCause() names the death.
//
// Thread-safety: TrySend, Close, PeerGone from any thread of this process;
// the rest belongs to the owner of the local side.

#ifndef WHARF_RUNTIME_INTERNAL_SHM_CHANNEL_H_
#define WHARF_RUNTIME_INTERNAL_SHM_CHANNEL_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/internal/shm_link.h"
#include "wharf/runtime/internal/shm_ring.h"
#include "wharf/runtime/internal/transport_types.h"
#include "wharf/runtime/internal/port_slot.h"
#include "wharf/runtime/value.h"
#include "wharf/sync/futex.h"
#include "wharf/sync/internal/spin_lock.h"
#include "wharf/sync/mutex.h"

namespace wharf::runtime_internal {

// A MessagePort leaving this process inside a message: the link end its
// channel continues on, and its options.
struct ExportedPort {
  std::shared_ptr<ShmLink> link;
  int end = 0;
  uint64_t capacity = 0;
  uint32_t on_full = 0;          // PortOptions::OnFull
  int64_t block_timeout_ns = -1;  // -1: infinite
};

// What only the MessagePort layer can do to ports (message_port.cc sets
// them; the transport sits below it): check a port can leave, make it leave
// (moving an in-process channel to a fresh link), and make a port of a link
// end that arrived.
struct PortHooks {
  absl::Status (*check)(const PortSlot& port);
  absl::StatusOr<ExportedPort> (*export_port)(PortSlot& port);  // the slot is left empty
  PortSlot (*import_port)(ExportedPort port);
};
void SetPortHooks(const PortHooks* hooks);

// One end of a link, attached (what can fail is done before the channel is
// made: the variant that holds the channel constructs it in place).
struct ShmChannelEnd {
  std::shared_ptr<ShmLink> link;
  int end = 0;  // the link end this process is (writes ring `end`)
  ShmRing send;
  ShmRing receive;
  // Whether PeerWatch should watch the other end's holder (false for a
  // Worker's own port: its pidfd says more, and sooner).
  bool watch_peer = true;
  // FailedPrecondition/DataLoss when the link's rings are not valid.
  static absl::StatusOr<ShmChannelEnd> Open(std::shared_ptr<ShmLink> link, int end);
};

class ShmChannel {
 public:
  // `local_side`: the port side this process receives on (the port's side_).
  // `capacity`: most messages queued towards the peer; 0 = unbounded.
  ShmChannel(ShmChannelEnd end, int local_side, size_t capacity);
  ~ShmChannel();
  ShmChannel(const ShmChannel&) = delete;
  ShmChannel& operator=(const ShmChannel&) = delete;

  // Any thread. kInvalid (with `why`) for a message that cannot cross
  // processes; kFull at the port's capacity; kBusy when the ring has no room
  // for the record (the caller waits for the reader: an unbounded port
  // between processes is bounded by its ring); on anything but kOk
  // `message` is as it was.
  SendResult TrySend(int to, Value& message, absl::Status& why);
  bool TryTake(int side, Value& out);
  // A message error in its place in the order (after TryTake said false).
  bool TakeError(int side, absl::Status& out);
  bool Readable(int side);
  bool Drained(int side);
  void Close();
  bool closed() const;
  absl::Status CloseCause(int side) const;
  bool WaitReadable(int side, absl::Time deadline);
  bool WaitWritable(int to, absl::Time deadline);
  // Senders are in another process: they wake the loop through the ring's
  // futex word (ArmSleep), not the loop's own doorbell.
  void AttachLoop(int side, EventLoop* loop) {}
  int ArmSleep(int side, std::span<FutexWaitEntry> out);
  void DisarmSleep(int side, int woken);

  // The peer process ended (any thread; idempotent): what it published is
  // still delivered, then the port closes; `cause` is what Receive returns.
  void PeerGone(absl::Status cause);

  // The link end, for a port that leaves this process (hand-off).
  const ShmChannelEnd& end() const { return end_; }
  // The end is about to leave in a message: this process no longer holds
  // it (the holder slot reads "in transit" until the next one opens it).
  void Leaving();
  // PeerWatch: PeerGone if the process holding the other end died.
  void CheckPeer();
  // No PeerWatch for this channel (it is watched otherwise). Any thread.
  void StopWatchingPeer();
  // A message in its place that the peer will see as a message error (a
  // queued message that could not cross when its port moved). Never blocks.
  void WriteErrorRecord(std::string_view why);

 private:
  // Reads the next record into a message or a pending error; false if none.
  bool ReadOne(Value& out);
  absl::StatusOr<Value> DecodeRecord(const std::string& record);
  bool PeerGoneNow() const { return peer_gone_.load(std::memory_order_acquire); }

  ShmChannelEnd end_;
  const int local_side_;
  const uint64_t capacity_;
  // Senders of this process, one at a time on the ring (and its fd socket).
  sync_internal::SpinLock send_mu_;
  std::atomic<size_t> last_full_bytes_{0};  // the record a sender found no room for
  std::atomic<bool> local_closed_{false};
  std::atomic<bool> peer_gone_{false};
  std::atomic<bool> watched_{false};  // registered with PeerWatch
  mutable Mutex cause_mu_;
  // Guarded by cause_mu_. Kept as parts, not as a Status: a Status shared
  // between threads has its reference count in uninstrumented Abseil, which
  // TSan cannot follow.
  absl::StatusCode gone_code_ = absl::StatusCode::kCancelled;
  std::string gone_message_;
  // Receiver-owned.
  std::string record_;
  std::deque<absl::Status> errors_;
  bool broken_ = false;  // the ring's framing failed: nothing more to read
  bool armed_ = false;
};

}  // namespace wharf::runtime_internal

#endif  // WHARF_RUNTIME_INTERNAL_SHM_CHANNEL_H_

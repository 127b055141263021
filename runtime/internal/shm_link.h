// Internal: ShmLink — the shared memory and the descriptor socket between two
// processes that share a port: a memfd SharedBuffer holding a control block
// (ShmLinkHeader) and two ShmRings, one per direction, plus a SOCK_SEQPACKET
// socket pair for descriptors (fd_passing.h). A process Worker's parent port
// is a ShmChannel over the link its owner made (process_backend.h); the child
// attaches to it from the two descriptors it inherits.
//
// Ends: end 0 (the creator) writes ring 0 and reads ring 1, end 1 the
// reverse; socket(e) is end e's side of the pair.
//
// Nothing is named: the memfd and the sockets vanish with their last
// descriptor and mapping, so a link leaves nothing behind in /dev/shm
// whoever is SIGKILLed, whenever.
//
// Thread-safety: the object is immutable after Create/Attach (the header's
// atomics are the protocol between the two processes).

#ifndef WHARF_RUNTIME_INTERNAL_SHM_LINK_H_
#define WHARF_RUNTIME_INTERNAL_SHM_LINK_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>

#include "absl/status/statusor.h"
#include "wharf/sync/internal/fd_guard.h"
#include "wharf/sync/shared_buffer.h"

namespace wharf::runtime_internal {

// The control block at the start of the link's memory. Lives in a shared
// mapping: fixed-width fields and atomics only — no pointers, no vtables, no
// std:: containers. The child's exit record is written by the child and read
// by the parent only after the child has ended (it may be anything then:
// every length is checked).
struct ShmLinkHeader {
  uint64_t magic;        // kMagic once Create finished
  uint32_t version;      // kVersion
  uint32_t ring_bytes;   // bytes of each ring (ShmRing::BytesFor(capacity))
  // Who holds end e's port now: ShmLink::ThisProcess() of that process, or
  // 0 (not known: not opened yet, or in transit to another process). The
  // holder writes it when it opens the end and clears it before the end
  // leaves in a message; the other end's holder watches it (peer_watch.h).
  std::atomic<uint64_t> holder[2];
  uint64_t reserved0[4];
  // Parent → child: 1 once Terminate() was called (a futex word the child's
  // watcher thread sleeps on).
  alignas(64) std::atomic<uint32_t> terminate;
  // Child → parent: 1 once the child is running its entry (OnOnline).
  std::atomic<uint32_t> online;
  uint32_t reserved1[14];
  // Child → parent, written once before the child exits; `written` last.
  alignas(64) std::atomic<uint32_t> exit_written;
  int32_t exit_code;
  uint32_t has_error;
  uint32_t error_type_len;
  uint32_t error_message_len;
  uint32_t reserved2[11];
  char error_type[256];
  char error_message[3776];
};
static_assert(std::is_standard_layout_v<ShmLinkHeader>);
static_assert(std::is_trivially_destructible_v<ShmLinkHeader>);
static_assert(offsetof(ShmLinkHeader, holder) == 16);
static_assert(offsetof(ShmLinkHeader, terminate) == 64);
static_assert(offsetof(ShmLinkHeader, exit_written) == 128);
static_assert(offsetof(ShmLinkHeader, error_type) == 192);
static_assert(sizeof(ShmLinkHeader) == 4224);
static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(std::atomic<uint64_t>::is_always_lock_free);

class ShmLink {
 public:
  // This process as a holder: (start-time tag << 32) | pid, the identity
  // sync_internal::CheckOwner judges (pid reuse safe). Never 0.
  static uint64_t ThisProcess();

  static constexpr uint64_t kMagic = 0x314B4E4C46524857;  // "WHRFLNK1", little-endian
  static constexpr uint32_t kVersion = 1;
  // Where the rings start (page-aligned, after the header).
  static constexpr size_t kRingsOffset = 8192;
  // Record bytes per direction unless told otherwise: records up to a
  // quarter of this (64 KiB) travel in the ring, larger ones out of line.
  static constexpr size_t kDefaultRingCapacity = size_t{256} << 10;

  // A fresh link with rings of `ring_capacity` record bytes (a power of two,
  // ShmRing's limits) and both socket ends. ResourceExhausted/Internal from
  // the system calls, InvalidArgument for a bad capacity.
  static absl::StatusOr<std::shared_ptr<ShmLink>> Create(
      size_t ring_capacity = kDefaultRingCapacity);
  // The other process's view: the link's memfd and its socket end (both
  // taken over: closed with the link). FailedPrecondition/DataLoss when the
  // memory is not a link of this version.
  static absl::StatusOr<std::shared_ptr<ShmLink>> Attach(int memfd, int socket_end1);

  ShmLinkHeader& header() const { return *reinterpret_cast<ShmLinkHeader*>(memory_.data()); }
  void* ring(int i) const {
    return memory_.data() + kRingsOffset + static_cast<size_t>(i) * ring_bytes_;
  }
  size_t ring_bytes() const { return ring_bytes_; }
  int memfd() const { return memory_.fd(); }
  // End e's socket (-1 once released).
  int socket(int e) const { return sockets_[e].get(); }
  // Closes end e's socket here (after handing it to the child).
  void CloseSocket(int e) { sockets_[e] = sync_internal::FdGuard(-1); }

 private:
  ShmLink(SharedBuffer memory, size_t ring_bytes, int s0, int s1)
      : memory_(std::move(memory)), ring_bytes_(ring_bytes), sockets_{sync_internal::FdGuard(s0),
                                                                     sync_internal::FdGuard(s1)} {}
  SharedBuffer memory_;
  size_t ring_bytes_;
  sync_internal::FdGuard sockets_[2];
};

}  // namespace wharf::runtime_internal

#endif  // WHARF_RUNTIME_INTERNAL_SHM_LINK_H_

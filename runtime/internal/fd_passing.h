// Internal: handing file descriptors to another process over a unix socket
// (SCM_RIGHTS) — how a cross-process port carries what cannot live in its
// ring: SharedBuffers (their memfd) and records too large for the ring
// (a memfd holding the record).
//
// A batch is one datagram on a SOCK_SEQPACKET socket: a 64-bit sequence
// number (the sender's count of batches on this link) plus up to kMaxFds
// descriptors. The ring record that needs a batch names its sequence number;
// the sender sends the batch *before* it publishes the record, so a reader
// that sees the record finds the batch already queued. A sender that dies
// between the two leaves a batch no record names: the reader discards
// batches older than the one it looks for.
//
// Hostile peers: a batch with more descriptors than asked, or a truncated
// one, is closed and reported (DataLoss); descriptors are received with
// MSG_CMSG_CLOEXEC, never leak into children.
//
// Thread-safety: one sender and one receiver at a time per socket direction.
// Never blocks (MSG_DONTWAIT): the batch is either queued already or lost.

#ifndef WHARF_RUNTIME_INTERNAL_FD_PASSING_H_
#define WHARF_RUNTIME_INTERNAL_FD_PASSING_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "wharf/sync/internal/fd_guard.h"

namespace wharf::runtime_internal {

// Most descriptors one message may carry (SharedBuffers + its out-of-line body).
inline constexpr int kMaxFds = 64;

// A connected SOCK_SEQPACKET pair, both ends close-on-exec.
absl::Status MakeFdSocketPair(int out[2]);

// Sends `fds` (not closed here) as batch `seq`. Unavailable when the socket's
// buffer is full (the peer stopped reading), FailedPrecondition when the
// peer is gone.
absl::Status SendFds(int socket, uint64_t seq, std::span<const int> fds);

// Receives batch `seq` with exactly `count` descriptors, discarding (and
// closing) older batches first. DataLoss when it is not there, or has
// another count.
absl::StatusOr<std::vector<sync_internal::FdGuard>> ReceiveFds(int socket, uint64_t seq,
                                                               int count);

}  // namespace wharf::runtime_internal

#endif  // WHARF_RUNTIME_INTERNAL_FD_PASSING_H_

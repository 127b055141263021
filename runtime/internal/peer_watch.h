// Internal: PeerWatch — closes a shared-memory port whose peer process died,
// for the ports no Worker watches.
//
// A process Worker's own port is closed by its owner when the child's pidfd
// says it ended (process_backend.h), and the child dies with its owner
// (PR_SET_PDEATHSIG). Every other port over a link — one that hopped to a
// grandchild, one between two sibling workers, an in-process channel whose
// end was posted to a process — has a peer that no pidfd of ours covers.
// Those ShmChannels are registered here; a thread of this process (started
// with the first one, asleep while there are none) looks every
// kCheckPeriod at the holder of each one's other end (ShmLinkHeader::holder:
// its pid and start time) and, when that process is dead — and still the
// holder, so not a hand-off in progress — calls PeerGone: what the peer
// published is delivered, then OnClose, and Receive returns Aborted "port
// closed: the process holding the other end (pid N) died".
//
// Not seen: a peer that dies while its end is in transit (the holder is 0
// until the receiving process opens it); its port stays open until a
// timeout or its own Worker's end.
//
// Thread-safety: Add and Remove from any thread; Remove waits for a check
// of that channel in progress, so the channel may be destroyed after it.

#ifndef WHARF_RUNTIME_INTERNAL_PEER_WATCH_H_
#define WHARF_RUNTIME_INTERNAL_PEER_WATCH_H_

#include "absl/time/time.h"

namespace wharf::runtime_internal {

class ShmChannel;

class PeerWatch {
 public:
  static constexpr absl::Duration kCheckPeriod = absl::Milliseconds(100);
  static void Add(ShmChannel* channel);
  static void Remove(ShmChannel* channel);
};

}  // namespace wharf::runtime_internal

#endif  // WHARF_RUNTIME_INTERNAL_PEER_WATCH_H_

// Internal: BroadcastChannel across processes — this process's node of the
// process tree's broadcast bus.
//
// Every process Worker is given, at start, one extra channel to its owner's
// process: its *bus link* (a MessagePort over its own shared-memory link,
// sent as the child's second bootstrap message after worker_data). The
// links of a process tree (a parent and its process workers, to any depth)
// form a tree, so relaying is flooding without loops: a message posted in
// process P is delivered to P's own channels of that name and sent on every
// link of P; a process that receives one on link L delivers it to its own
// channels and sends it on every link but L. Each process thus sees each
// message once, and messages from one posting thread keep their order
// (every hop is FIFO and relays in arrival order).
//
// Records on a link (Values, through the link's codec):
//   [0, name, message]  a message for the channels named `name`
//   [1, name, count]    `count` messages of `name` were dropped on the way
//
// Never blocking (a dead or stalled subscriber never holds up the others):
// sends on a link are single attempts (PortAccess::TryPostNow). A link whose
// ring is full (its process stopped reading: stopped, stuck or dying) drops
// the message and counts it per name; the count goes, as a [1, ...] record,
// before the next message that fits, and every later message is dropped
// until it went (so a gap is reported where it happened). The receiving
// process turns it into a DataLoss message error at each of its channels of
// that name (OnMessageError / Receive) and relays it on. So a subscriber
// process's backlog is its link's ring (256 KiB of records); a subscriber
// channel's backlog within its process is BroadcastOptions::max_backlog.
//
// Receiving: a relay thread of this process runs an EventLoop (its own,
// started with the first link, idle in a futex wait when nothing arrives)
// with every link started on it.
//
// Lifetime: a link leaves the tree when its process ended (Remove, from the
// owner's ProcessBackend when it reaps the child: what the child posted is
// relayed first) or when it closes. The relay is never destroyed (its thread
// may still run at exit; it touches nothing destroyed at exit).
//
// Thread-safety: everything from any thread.

#ifndef WHARF_RUNTIME_INTERNAL_BROADCAST_RELAY_H_
#define WHARF_RUNTIME_INTERNAL_BROADCAST_RELAY_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/message_port.h"
#include "wharf/runtime/value.h"
#include "wharf/sync/mutex.h"

namespace wharf::runtime_internal {

// This process's BroadcastChannels (defined in broadcast_channel.cc).
// Delivers a clone of `message` to every open channel named `name` (moving
// it into the last).
void DeliverToLocalChannels(const std::string& name, Value message);
// `dropped` messages of `name` never reached this process: a DataLoss
// message error at every open channel named `name`.
void ReportGapToLocalChannels(const std::string& name, uint64_t dropped);

class BroadcastRelay {
 public:
  static BroadcastRelay& Get();

  // Whether this process has any link (one relaxed load: the posting fast
  // path of a process without process peers).
  bool HasLinks() const { return links_now_.load(std::memory_order_relaxed) != 0; }

  // Takes `port` (a bus link, over shared memory) into the tree and starts
  // receiving on it. Returns its id for Remove.
  uint64_t Add(MessagePort port);
  // The link's process ended: relay what it still holds, then drop it
  // (`cause` is what its port's Receive would return).
  void Remove(uint64_t id, absl::Status cause);

  // Sends [0, name, message] on every link except `except` (0: none); see the
  // header comment for a link without room. InvalidArgument
  // "DataCloneError: ..." when `message` cannot be sent to another process
  // (found on the first link that tries; nothing was sent then).
  absl::Status Forward(const std::string& name, const Value& message, uint64_t except);

 private:
  struct Link;
  BroadcastRelay() = default;

  std::vector<std::shared_ptr<Link>> Snapshot(uint64_t except);
  EventLoop& LoopLocked();  // starts the relay thread on first use; needs mu_
  void OnRecord(const std::shared_ptr<Link>& from, Value record);
  void ForwardGap(const std::string& name, uint64_t count, uint64_t except);
  void Drop(uint64_t id);

  Mutex mu_;
  std::vector<std::shared_ptr<Link>> links_;  // guarded by mu_
  uint64_t next_id_ = 1;                      // guarded by mu_
  EventLoop* loop_ = nullptr;                 // guarded by mu_; never destroyed
  std::atomic<size_t> links_now_{0};          // links_.size(), written under mu_
};

}  // namespace wharf::runtime_internal

#endif  // WHARF_RUNTIME_INTERNAL_BROADCAST_RELAY_H_

// Internal: what the structured clone (and the port's own Value box) may do
// to a MessagePort beyond its public API. Defined in message_port.cc.

#ifndef WHARF_RUNTIME_INTERNAL_PORT_ACCESS_H_
#define WHARF_RUNTIME_INTERNAL_PORT_ACCESS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace wharf {
class MessagePort;
class Value;
struct PortOptions;
namespace runtime_internal {

struct ShmChannelEnd;
struct ExportedPort;
class ShmChannel;

struct PortAccess {
  // Both empty, or the same end of the same channel.
  static bool Same(const MessagePort& a, const MessagePort& b);
  // Two ends (or the same end) of one channel.
  static bool SameChannel(const MessagePort& a, const MessagePort& b);
  // Before a port leaves its owner inside a message: detaches it from its
  // loop and drops its handlers and ref, keeping the channel and the queued
  // messages. The receiver starts it again on its own loop. Owner thread.
  static void DetachForTransfer(MessagePort& port);

  // A port of this process over one end of a shared-memory link (the other
  // end's port is made the same way in the peer process).
  static MessagePort OverLink(ShmChannelEnd end, const PortOptions& options);
  // The port's shared-memory transport, or null (empty or in-process).
  static ShmChannel* Shm(MessagePort& port);
  // A port about to leave for another process: DataCloneError when it
  // cannot (see the message). Then Export: the link end its channel goes on
  // over (an in-process channel moves to a fresh link first), and the port
  // is left empty here without its channel being closed.
  static absl::Status CheckLeaving(const MessagePort& port);
  static absl::StatusOr<ExportedPort> Export(MessagePort& port);
  // One attempt to post `message` (no ports inside it), never waiting:
  // ResourceExhausted when the receiver has no room now (its capacity, or a
  // shared-memory ring that is full), FailedPrecondition once closed,
  // InvalidArgument "DataCloneError: ..." when it cannot travel on this
  // transport. `message` is moved from only on success. Any thread.
  static absl::Status TryPostNow(MessagePort& port, Value& message);
  // The port's peer process is watched otherwise (a Worker's pidfd, or the
  // relay's Remove): no PeerWatch for it (peer_watch.h).
  static void UnwatchPeer(MessagePort& port);
  // For tests and benchmarks: two ports of this process that talk through a
  // fresh link exactly as two processes would.
  static absl::StatusOr<std::pair<MessagePort, MessagePort>> ShmPairForTesting(
      const PortOptions& options);
};

}  // namespace runtime_internal
}  // namespace wharf

#endif  // WHARF_RUNTIME_INTERNAL_PORT_ACCESS_H_

// Internal: what the structured clone (and the port's own Value box) may do
// to a MessagePort beyond its public API. Defined in message_port.cc.

#ifndef WHARF_RUNTIME_INTERNAL_PORT_ACCESS_H_
#define WHARF_RUNTIME_INTERNAL_PORT_ACCESS_H_

namespace wharf {
class MessagePort;
namespace runtime_internal {

struct PortAccess {
  // Both empty, or the same end of the same channel.
  static bool Same(const MessagePort& a, const MessagePort& b);
  // Two ends (or the same end) of one channel.
  static bool SameChannel(const MessagePort& a, const MessagePort& b);
  // Before a port leaves its owner inside a message: detaches it from its
  // loop and drops its handlers and ref, keeping the channel and the queued
  // messages. The receiver starts it again on its own loop. Owner thread.
  static void DetachForTransfer(MessagePort& port);
};

}  // namespace runtime_internal
}  // namespace wharf

#endif  // WHARF_RUNTIME_INTERNAL_PORT_ACCESS_H_

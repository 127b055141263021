// PortTransport: what carries a MessageChannel's messages, behind the
// per-process port endpoints (message_port.cc). A closed set of transports
// in a std::variant — a send is a direct call, never a virtual one:
//   InProcessChannel  both ends in this process (in_process_channel.h)
// (the shared-memory ring for ends in two processes is the next one).
//
// The surface every transport has (sides are 0 and 1; a port on side s
// receives from side s and sends to side 1 - s):
//   TrySend(to, v)        any thread: kOk (v moved), kClosed, kFull, kNoMemory
//   TryTake(side, out)    receiving owner: the next message, or false
//   Readable(side)        receiving owner: something to take now (cheap poll)
//   Drained(side)         receiving owner: closed, nothing queued or in flight
//   Close()               any thread, idempotent: both directions
//   closed()              any thread: either end closed
//   WaitReadable(side, t) receiving owner: sleep until readable/closed or t
//   WaitWritable(to, t)   a sender after kFull: sleep until room/closed or t
//   AttachLoop(side, l)   receiving owner: the doorbell senders ring is l's
//   ArmSleep/DisarmSleep  the receiving loop's sleep: futex words to add
//                         (transports whose senders cannot ring the loop's
//                         own doorbell: other processes)
// Both waits are interruption points (sync/interrupt.h).

#ifndef WHARF_RUNTIME_INTERNAL_PORT_TRANSPORT_H_
#define WHARF_RUNTIME_INTERNAL_PORT_TRANSPORT_H_

#include <cstddef>
#include <span>
#include <variant>

#include "absl/time/time.h"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/internal/in_process_channel.h"
#include "wharf/runtime/internal/transport_types.h"
#include "wharf/runtime/value.h"
#include "wharf/sync/futex.h"

namespace wharf::runtime_internal {

class PortTransport {
  std::variant<InProcessChannel> impl_;

  template <class F>
  decltype(auto) Visit(F&& f) {
    return std::visit(std::forward<F>(f), impl_);
  }

 public:
  explicit PortTransport(size_t capacity) : impl_(std::in_place_type<InProcessChannel>, capacity) {}

  SendResult TrySend(int to, Value& v) { return Visit([&](auto& t) { return t.TrySend(to, v); }); }
  bool TryTake(int side, Value& out) { return Visit([&](auto& t) { return t.TryTake(side, out); }); }
  bool Readable(int side) { return Visit([&](auto& t) { return t.Readable(side); }); }
  bool Drained(int side) { return Visit([&](auto& t) { return t.Drained(side); }); }
  void Close() { Visit([](auto& t) { t.Close(); }); }
  bool closed() const {
    return std::visit([](const auto& t) { return t.closed(); }, impl_);
  }
  bool WaitReadable(int side, absl::Time deadline) {
    return Visit([&](auto& t) { return t.WaitReadable(side, deadline); });
  }
  bool WaitWritable(int to, absl::Time deadline) {
    return Visit([&](auto& t) { return t.WaitWritable(to, deadline); });
  }
  void AttachLoop(int side, EventLoop* loop) { Visit([&](auto& t) { t.AttachLoop(side, loop); }); }
  int ArmSleep(int side, std::span<FutexWaitEntry> out) {
    return Visit([&](auto& t) { return t.ArmSleep(side, out); });
  }
  void DisarmSleep(int side, int woken) { Visit([&](auto& t) { t.DisarmSleep(side, woken); }); }

};

}  // namespace wharf::runtime_internal

#endif  // WHARF_RUNTIME_INTERNAL_PORT_TRANSPORT_H_

// PortTransport: what carries a MessageChannel's messages, behind the
// per-process port endpoints (message_port.cc). A closed set of transports
// in a std::variant — a send is a direct call, never a virtual one:
//   InProcessChannel  both ends in this process (in_process_channel.h)
//   ShmChannel        one end here, the other in another process, over a
//                     shared-memory link (shm_channel.h)
//
// The surface every transport has (sides are 0 and 1; a port on side s
// receives from side s and sends to side 1 - s):
//   TrySend(to, v, why)   any thread: kOk (v moved), kClosed, kFull, kNoMemory,
//                         kInvalid (`why` set: cannot travel on this transport)
//   TryTake(side, out)    receiving owner: the next message, or false
//   TakeError(side, s)    receiving owner, after TryTake said false: a message
//                         that arrived but could not be decoded (messageerror)
//   Readable(side)        receiving owner: something to take now (cheap poll)
//   Drained(side)         receiving owner: closed, nothing queued or in flight
//   Close()               any thread, idempotent: both directions
//   closed()              any thread: either end closed
//   CloseCause(side)      why Receive ends (Cancelled "port closed", or the
//                         peer process's death)
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
#include <utility>
#include <variant>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/internal/in_process_channel.h"
#include "wharf/runtime/internal/shm_channel.h"
#include "wharf/runtime/internal/transport_types.h"
#include "wharf/runtime/value.h"
#include "wharf/sync/futex.h"

namespace wharf::runtime_internal {

class PortTransport {
  std::variant<InProcessChannel, ShmChannel> impl_;

  template <class F>
  decltype(auto) Visit(F&& f) {
    return std::visit(std::forward<F>(f), impl_);
  }

 public:
  explicit PortTransport(size_t capacity) : impl_(std::in_place_type<InProcessChannel>, capacity) {}
  PortTransport(ShmChannelEnd end, int local_side, size_t capacity)
      : impl_(std::in_place_type<ShmChannel>, std::move(end), local_side, capacity) {}

  SendResult TrySend(int to, Value& v, absl::Status& why) {
    if (auto* t = std::get_if<InProcessChannel>(&impl_)) return t->TrySend(to, v);  // the hot path
    return std::get<ShmChannel>(impl_).TrySend(to, v, why);
  }
  bool TryTake(int side, Value& out) { return Visit([&](auto& t) { return t.TryTake(side, out); }); }
  bool TakeError(int side, absl::Status& out) {
    auto* t = std::get_if<ShmChannel>(&impl_);
    return t != nullptr && t->TakeError(side, out);
  }
  absl::Status CloseCause(int side) const {
    const auto* t = std::get_if<ShmChannel>(&impl_);
    return t != nullptr ? t->CloseCause(side) : absl::CancelledError("port closed");
  }
  // The shared-memory transport, or null.
  ShmChannel* shm() { return std::get_if<ShmChannel>(&impl_); }
  const ShmChannel* shm() const { return std::get_if<ShmChannel>(&impl_); }
  // The in-process transport, or null.
  InProcessChannel* in_process() { return std::get_if<InProcessChannel>(&impl_); }
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

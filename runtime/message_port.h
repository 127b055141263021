// MessageChannel / MessagePort: Node's worker_threads MessageChannel in C++.
//
//   auto [a, b] = wharf::MessageChannel::Create();
//   b.OnMessage([](wharf::Value v) { ... });   // on EventLoop::Current()
//   a.PostMessage(wharf::Value("hello"));       // moved, nothing copied
//
// Two entangled ports: what one posts the other receives, FIFO per posting
// thread. PostMessage(Value&&) moves the message; PostMessage(Value&,
// transfer) is JS's structured clone (structured_clone.h): the message is
// copied except the listed Buffers and ports, which move and are left
// detached here. Ports travel inside messages (they must be listed); the
// receiver gets the same end, with every message queued at it, in order.
//
// Receiving: with handlers on an EventLoop — OnMessage starts the port on
// EventLoop::Current() (or call Start(loop)) — or without a loop
// (receiveMessageOnPort): TryReceive() / Receive(timeout). Messages that
// arrive before there is a handler are kept and delivered later, each once.
// Close() (either end, any thread, also the destructor): what PostMessage
// accepted is still delivered; then OnClose runs on both ends' loops.
//
// Ref/unref (Node's rule): a started port with an OnMessage handler keeps its
// loop's Run() going until it is closed or Unref()'d.
//
// Capacity (PortOptions): unbounded by default (like Node); with capacity N a
// full port makes PostMessage fail (kFail) or wait for room (kBlock).
//
// Errors: PostMessage returns InvalidArgument "DataCloneError: ..." for what
// cannot be cloned or transferred (nothing moves then), FailedPrecondition
// "port closed" once either end is closed, ResourceExhausted /
// DeadlineExceeded when full. It never throws, except wharf::Interrupted
// from a kBlock wait in a worker being terminated (the message is given back
// first). Receive returns DeadlineExceeded at its timeout and Cancelled once
// the port is closed and drained — or, when the other end's process died,
// Aborted naming how it ended ("worker killed by signal 9 (SIGKILL)").
//
// Across processes (a process Worker's ports; docs/processes.md) the same
// API holds, with what a process boundary implies: a message is encoded
// (codec.h), so a string must be valid UTF-8 (else InvalidArgument
// "DataCloneError: ..."); Buffers are copied (those made by
// Buffer::AllocateShared are transferred as their memory), SharedBuffers
// shared, MessagePorts move with their channel (which switches to shared
// memory, keeping what was queued, in order); a record that arrives damaged is a message error
// (OnMessageError, or the status Receive returns, in its place in the
// order).
//
// Blocking: only Receive() (it watches the queue ~20 µs, then sleeps) and a
// kBlock PostMessage on a full port. Both are interruption points
// (sync/interrupt.h).
//
// Thread-safety: PostMessage and Close from any thread, concurrently.
// Everything else — receiving, handlers, Start, Ref/Unref, destroying or
// moving a started port — belongs to the port's owner: one thread at a time,
// the loop's thread once started. Memory ordering: what a thread did before
// PostMessage is visible to the receiver of that message.
//
// Cost: a post to a busy receiver is a lock-free enqueue with no atomic
// read-modify-write and no syscall; to a sleeping one, one futex wake.
// Numbers: docs/benchmarks.md. Lifetime: a started port must be destroyed (or
// closed and its OnClose run) before its EventLoop. Destroying a port drops
// the messages still queued at it (closing the ports inside them).

#ifndef WHARF_RUNTIME_MESSAGE_PORT_H_
#define WHARF_RUNTIME_MESSAGE_PORT_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/structured_clone.h"
#include "wharf/runtime/value.h"

namespace wharf {

namespace runtime_internal {
struct PortCore;
struct PortAccess;
}  // namespace runtime_internal

struct PortOptions {
  enum class OnFull { kFail, kBlock };
  // Most messages queued at a receiving port; 0 = unbounded.
  size_t capacity = 0;
  OnFull on_full = OnFull::kFail;
  // kBlock: how long PostMessage waits for room.
  absl::Duration block_timeout = absl::InfiniteDuration();
};

class MessagePort {
 public:
  // An empty port: every operation fails with FailedPrecondition.
  MessagePort() = default;
  MessagePort(MessagePort&& other) noexcept;
  MessagePort& operator=(MessagePort&& other) noexcept;  // closes *this first
  MessagePort(const MessagePort&) = delete;
  MessagePort& operator=(const MessagePort&) = delete;
  ~MessagePort();  // Close()

  // --- Sending (any thread) --------------------------------------------------

  // Structured clone of `message`, moving the Buffers and ports in
  // `transfer` (pointers into `message`). All or nothing: a DataCloneError
  // moves nothing; after a failed send (closed, full) the moved items are
  // back in `message` — a listed port that was started comes back stopped,
  // without its handlers (it left its loop to travel).
  absl::Status PostMessage(Value& message, std::span<const Transferable> transfer = {});
  // Moves `message`, ports inside it included (checked as a transfer: a
  // DataCloneError leaves `message` intact). After a closure or capacity
  // error a message holding ports (an array, map or port) is dropped — its
  // ports closed — and any other is left as it was.
  absl::Status PostMessage(Value&& message);

  // Closes both ends. Any thread; idempotent.
  void Close();

  // --- Receiving without a loop (owner thread) ---------------------------------

  // The next message, or nullopt if none is queued now.
  std::optional<Value> TryReceive();
  // Waits up to `timeout` for the next message (see Blocking above).
  absl::StatusOr<Value> Receive(absl::Duration timeout = absl::InfiniteDuration());

  // --- Handlers on an EventLoop (owner thread) ---------------------------------

  // Sets the message handler (replacing any); starts the port on
  // EventLoop::Current() when it is not started and one runs here.
  void OnMessage(std::function<void(Value)> handler);
  // For a message that arrives but cannot be deserialised (ports between
  // processes; never for an in-process channel).
  void OnMessageError(std::function<void(absl::Status)> handler);
  // Runs once on the port's loop after the channel closed and every queued
  // message was delivered. Needs a started port.
  void OnClose(std::function<void()> handler);
  // Attaches the port to `loop` (its thread runs the handlers). A no-op on
  // the same loop; FailedPrecondition on another loop, with no loop, or on
  // an empty port.
  absl::Status Start(EventLoop& loop);
  absl::Status Start();  // EventLoop::Current()
  void Ref();
  void Unref();
  // Whether the port keeps its loop alive now (Node's port.hasRef()).
  bool HasRef() const;

  // False for an empty (default or moved-from) port.
  bool valid() const { return core_ != nullptr; }
  // True once either end closed.
  bool closed() const;

  // Arrays and maps nested deeper than this are refused by the structured clone.
  static constexpr int kMaxDepth = StructuredClone::kMaxDepth;

 private:
  friend class MessageChannel;
  friend struct runtime_internal::PortAccess;
  MessagePort(std::shared_ptr<runtime_internal::PortCore> core, int side)
      : core_(std::move(core)), side_(side) {}

  void Release();  // Close + detach this end's handlers and loop

  std::shared_ptr<runtime_internal::PortCore> core_;
  int side_ = 0;  // receives on side_, sends to 1 - side_
};

class MessageChannel {
 public:
  // Two entangled ports; `options` apply to both directions.
  static std::pair<MessagePort, MessagePort> Create(PortOptions options = {});
};

}  // namespace wharf

#endif  // WHARF_RUNTIME_MESSAGE_PORT_H_

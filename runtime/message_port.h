// MessageChannel / MessagePort: Node's worker_threads MessageChannel in C++,
// the in-process transport between actors.
//
//   auto [a, b] = wharf::MessageChannel::Create();
//   b.OnMessage([](wharf::Value v) { ... });          // on EventLoop::Current()
//   a.PostMessage(wharf::Value("hello"));              // moved, nothing copied
//
//   wharf::Value msg = wharf::Value::Map();
//   msg.GetMap()->Set("pixels", wharf::Buffer::Allocate(1 << 20).value());
//   wharf::Buffer* px = msg["pixels"]->GetBuffer();
//   wharf::Transferable list[] = {px};
//   a.PostMessage(msg, list);   // structured clone; px moved (detached here)
//
// Two entangled ports: what one posts, the other receives, FIFO per direction.
//
// Sending.
//   PostMessage(Value&&): the message moves into the peer's queue; nothing
//     is copied, nothing can fail but closure/capacity.
//   PostMessage(Value&, transfer): JS structured clone. The message is deep
//     copied except the Buffers named in `transfer` (pointers to Buffers inside
//     `message`), which are moved without copying; the sender's Buffers end
//     detached. The transfer list is validated first and the operation is all
//     or nothing: on any error nothing is moved and `message` is unchanged.
//
// Receiving. Either with handlers on an EventLoop (OnMessage, OnClose; setting
// OnMessage starts the port on EventLoop::Current() when there is one, like
// Node's port.on('message'); otherwise call Start(loop)), or without a loop
// (receiveMessageOnPort): TryReceive() / Receive(timeout). Messages posted
// before a handler is attached or before Start() are kept and delivered later,
// each exactly once. A port with no OnMessage handler never drops messages.
//
// Close(): either end, idempotent, also done by the destructor. Messages
// already accepted by PostMessage (it returned OK) are still delivered; then
// OnClose runs on both ends, each on its own loop (a destroyed port's own
// OnClose does not run: its handlers are dropped with it). PostMessage after
// a Close returns FailedPrecondition "port closed"; it never throws.
// Receive() on a closed and drained port returns Cancelled.
//
// Ref/unref (Node's rule): a started port with an OnMessage handler keeps its
// loop's Run() going until it is closed or Unref()'d; Ref() undoes Unref().
// (A drain task already posted to the loop still runs before Run() returns,
// as any posted closure does.)
//
// Capacity (PortOptions): unbounded by default (like Node). With capacity N,
// a port's incoming queue holds at most N messages: PostMessage then returns
// ResourceExhausted (kFail) or waits for the receiver to take one (kBlock, up
// to block_timeout, then DeadlineExceeded; a Close wakes it with
// FailedPrecondition).
//
// Interruption (sync/interrupt.h): a Receive() that sleeps, and a kBlock
// PostMessage waiting for room, are interruption points — in a thread under
// an InterruptibleScope whose Interrupter is requested (a Worker being
// terminated) they throw wharf::Interrupted, leaving the port as a timeout
// would. Nothing else here blocks.
//
// Thread-safety. PostMessage and Close may be called from any thread,
// concurrently (also with the peer's Close). Receiving — TryReceive, Receive,
// OnMessage, OnMessageError, OnClose, Start, Ref, Unref, and destroying or
// moving-from a started port — belongs to the port's owner: one thread at a
// time, the loop's thread once started. Handlers run on that loop's thread.
// Memory ordering: everything a thread did before PostMessage is visible to
// the receiver of that message.
//
// Ordering: FIFO per posting thread (the queue is moodycamel's
// ConcurrentQueue, ordered per producer); posts from threads with no order
// between their PostMessage calls interleave in any order.
//
// Costs. A post is a lock-free enqueue plus plain loads and stores: no atomic
// read-modify-write and no fence instruction (the sender marks itself in a
// per-thread in-flight record; Close() and a receiver about to sleep pay for
// the ordering instead, with one membarrier(2) each). No syscall when the
// receiver is busy, one futex wake when it sleeps in Receive(). The first
// thread that posts to a port gets a single-producer lane whose 64-byte slot
// holds the message and its ready flag (one cache line per message); other
// threads share a moodycamel queue, which the receiver dequeues 32 at a time. For a port on
// a loop, one drain task is posted per burst (an atomic "scheduled" flag; a
// post then costs one seq_cst fence), which delivers up to 1024 messages
// before yielding to the loop. A structured clone costs a deep copy of the
// non-transferred parts. Numbers: docs/benchmarks.md.
//
// Lifetime: a started port must be destroyed (or closed and its OnClose run)
// before its EventLoop; the peer may outlive it.
//
// Ports inside messages (JS: port.postMessage({port: p2}, [p2])):
//
//   auto [p1, p2] = wharf::MessageChannel::Create();
//   wharf::Value msg = wharf::Value::Map();
//   msg.GetMap()->Set("port", std::move(p2));          // boxed in the Value
//   wharf::Transferable list[] = {msg["port"]->GetPort()};
//   a.PostMessage(msg, list);      // msg's slot now holds an empty port
//   // receiver: wharf::MessagePort p = std::move(*v["port"]->GetPort());
//
// A port in a message must be in the transfer list (ports are never cloned),
// must not be the posting port or its peer, nor closed, nor detached, nor
// listed twice: otherwise InvalidArgument "DataCloneError: ...", nothing
// moves. PostMessage(Value&&) moves the ports in the message along with it
// (same checks). Transferring keeps the channel: the receiver gets the same
// end, entangled with the same peer, with every message queued at it (also
// those posted while it was in flight) delivered to its new owner exactly
// once, in order. A started port is detached from its loop when it leaves:
// its handlers (OnMessage, OnMessageError, OnClose) and its ref are dropped,
// and the new owner attaches its own (OnMessage / Start). Transferring a port
// is an owner operation (the loop's thread once started; a handler may
// transfer its own port). If the send itself fails after validation (closed
// meanwhile, full) the ports go back into the sender's message, stopped.
//
// Destroying a port drops the messages still queued at it (nobody can receive
// them), closing any ports inside them.

#ifndef WHARF_RUNTIME_MESSAGE_PORT_H_
#define WHARF_RUNTIME_MESSAGE_PORT_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <variant>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "wharf/runtime/buffer.h"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/value.h"
#include "wharf/sync/shared_buffer.h"

namespace wharf {

class MessagePort;

namespace runtime_internal {
struct PortCore;
struct PortAccess;
}  // namespace runtime_internal

// An item of a transfer list: a Buffer or a MessagePort inside the message
// (moved), or — always refused, as in JS — a SharedBuffer.
using Transferable = std::variant<Buffer*, SharedBuffer*, MessagePort*>;

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

  // Structured clone of `message`, moving the Buffers in `transfer`.
  // Errors (nothing sent, nothing moved):
  //   InvalidArgument "DataCloneError: ..." — a detached Buffer (in the list,
  //     or in the message and not listed), the same Buffer or port listed
  //     twice, a SharedBuffer in the list, the posting port or its peer in the
  //     message or the list, a closed or detached port, a port in the message
  //     that is not listed, a listed port not inside the message, nesting
  //     deeper than kMaxDepth;
  //   InvalidArgument — a null or a Buffer pointer not inside `message`;
  //   FailedPrecondition "port closed" — either end closed (or empty port);
  //   ResourceExhausted / DeadlineExceeded — capacity (see PortOptions).
  absl::Status PostMessage(Value& message, std::span<const Transferable> transfer = {});
  // Moves `message` (no copy at all), ports inside it included (checked and
  // detached as in a transfer: a DataCloneError leaves `message` intact).
  // Same closure/capacity errors; after one of those the message is dropped.
  absl::Status PostMessage(Value&& message);

  // Closes both ends (see the header comment). Any thread; idempotent.
  void Close();

  // --- Receiving without a loop (owner thread) ---------------------------------

  // The next message, or nullopt if none is queued now.
  std::optional<Value> TryReceive();
  // Waits up to `timeout` for the next message: watches the queue for up to
  // 20 µs (a reply from a peer on another CPU usually arrives sooner than a
  // futex hand-off, ~10 µs, would take), then sleeps using no CPU.
  // DeadlineExceeded on timeout; Cancelled "port closed" once closed and
  // drained; FailedPrecondition for an empty port.
  absl::StatusOr<Value> Receive(absl::Duration timeout = absl::InfiniteDuration());

  // --- Handlers on an EventLoop (owner thread) ---------------------------------

  // Sets the message handler (replacing any); starts the port on
  // EventLoop::Current() when it is not started and that is non-null.
  void OnMessage(std::function<void(Value)> handler);
  // For a message that arrives but cannot be deserialised. Never called by
  // the in-process transport (nothing is deserialised); kept for the API that
  // process ports share.
  void OnMessageError(std::function<void(absl::Status)> handler);
  // Runs once on the port's loop after the channel closed and every queued
  // message was delivered. Needs a started port.
  void OnClose(std::function<void()> handler);
  // Attaches the port to `loop` (its thread runs the handlers) and delivers
  // what is queued. A no-op when already started on `loop`;
  // FailedPrecondition on another loop, with no loop (Start() while
  // EventLoop::Current() is null), or on an empty port.
  absl::Status Start(EventLoop& loop);
  absl::Status Start();  // EventLoop::Current()
  void Ref();
  void Unref();

  // False for an empty (default or moved-from) port.
  bool valid() const { return core_ != nullptr; }
  // True once either end closed.
  bool closed() const;

  // Arrays and maps nested deeper than this are refused by the structured clone.
  static constexpr int kMaxDepth = 128;

 private:
  friend class MessageChannel;
  friend struct runtime_internal::PortAccess;
  MessagePort(std::shared_ptr<runtime_internal::PortCore> core, int side)
      : core_(std::move(core)), side_(side) {}

  absl::Status Send(Value&& message);
  void Release();  // Close + detach this end's handlers and loop

  std::shared_ptr<runtime_internal::PortCore> core_;
  int side_ = 0;  // receives from core_->inbox[side_], sends to the other
};

class MessageChannel {
 public:
  // Two entangled ports; `options` apply to both directions.
  static std::pair<MessagePort, MessagePort> Create(PortOptions options = {});
};

}  // namespace wharf

#endif  // WHARF_RUNTIME_MESSAGE_PORT_H_

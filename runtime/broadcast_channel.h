// BroadcastChannel: Node's (and the web's) BroadcastChannel, across the
// threads and processes of a process tree.
//
//   wharf::BroadcastChannel a("jobs");                 // on EventLoop::Current()
//   wharf::BroadcastChannel b("jobs", loop);           // or an explicit loop
//   b.OnMessage([](wharf::Value v) { ... });
//   a.PostMessage(wharf::Value("hello"));              // b gets it, a does not
//
// Every open BroadcastChannel object with the same name in this process, in
// its process workers and in the process that started this one (to any
// depth: the tree of process Workers) receives each message posted on any of
// them exactly once, except the object that posted it. Messages are
// delivered on each receiver's EventLoop, in the order posted by each
// posting thread. Between processes they travel over each process Worker's
// shared-memory link, relayed by a thread of each process
// (internal/broadcast_relay.h); a channel joins at once, but a message
// posted in another process at about the same time may or may not reach it.
//
// PostMessage(const Value&) structured-clones the message once per receiver:
// Buffers are copied, SharedBuffers shared; a MessagePort (ports belong to one
// receiver and cannot be broadcast) or a detached Buffer is refused with
// InvalidArgument "DataCloneError: ...", and so is, once this process has
// process peers, a message that cannot be encoded for another process (a
// string that is not UTF-8). Posting on a closed channel returns
// FailedPrecondition. A message with no receiver is dropped (OK).
//
// Slow receivers never block anyone: PostMessage never waits. A channel
// holds at most BroadcastOptions::max_backlog undelivered messages; beyond
// that, messages for it are dropped and it gets, in their place, one
// message error (DataLoss naming the count) through OnMessageError or the
// status Receive returns. Likewise a process that stops reading (stopped,
// stuck, dying) has the messages its link cannot hold (256 KiB of records)
// dropped, and each of its channels of that name gets the DataLoss error
// where the gap is. Every other receiver gets everything.
//
// Receiving: the loop is EventLoop::Current() at construction, or the one
// given, or set later by Start(loop) / by OnMessage() while a loop runs on the
// calling thread. Messages that arrive before the channel has a loop are kept
// and delivered once it has one; a message delivered while no OnMessage
// handler is set is dropped (Node dispatches it to no listener).
//
// Without a loop (code that has none): TryReceive() / Receive(timeout) take
// the kept messages in order (Receive sleeps until one arrives, the timeout
// — DeadlineExceeded — or Close — Cancelled; it returns a gap's DataLoss in
// its place, which TryReceive skips).
//
// Close(): stops receiving (messages already queued for this channel are
// dropped, its handler is released) and removes it from the name's group;
// later posts on it fail. Idempotent; also done by the destructor.
//
// Ref/unref (Node's rule, as for ports): a channel with a loop and an
// OnMessage handler keeps the loop's Run() going until it is closed or
// Unref()'d; Ref() undoes Unref().
//
// Thread-safety: PostMessage may be called from any thread, concurrently with
// everything, including other channels' Close() and destruction. OnMessage,
// Start, Ref, Unref, TryReceive, Receive, Close and destruction belong to the
// owner: one thread at a time, the loop's thread once the channel has a loop.
// Handlers run on the loop's thread. The loop must outlive the channel's
// Close() (or destruction).
//
// Costs: a post takes the registry lock to snapshot the group, then per
// receiver one deep copy of the message, a short lock and a doorbell ring
// (a syscall only when the receiver sleeps); with process peers, one copy
// and one ring record per link of this process (every process of the tree
// gets every message: there is no per-name subscription between processes).

#ifndef WHARF_RUNTIME_BROADCAST_CHANNEL_H_
#define WHARF_RUNTIME_BROADCAST_CHANNEL_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/value.h"

namespace wharf {

namespace runtime_internal {
struct BroadcastMember;
}  // namespace runtime_internal

struct BroadcastOptions {
  // Most messages queued at this channel, undelivered; more are dropped and
  // reported as one DataLoss message error (>= 1).
  size_t max_backlog = size_t{1} << 16;
};

class BroadcastChannel {
 public:
  // Joins the group `name`; the loop is EventLoop::Current() (may be null:
  // see Start()).
  explicit BroadcastChannel(std::string name, BroadcastOptions options = {});
  BroadcastChannel(std::string name, EventLoop& loop, BroadcastOptions options = {});
  BroadcastChannel(BroadcastChannel&&) noexcept;
  BroadcastChannel& operator=(BroadcastChannel&&) noexcept;  // closes *this first
  BroadcastChannel(const BroadcastChannel&) = delete;
  BroadcastChannel& operator=(const BroadcastChannel&) = delete;
  ~BroadcastChannel();  // Close()

  // The group's name ("" for a moved-from channel).
  const std::string& name() const;

  // Sends a clone of `message` to every other open channel of the group.
  // Any thread. Errors: see the header comment.
  absl::Status PostMessage(const Value& message);

  // Sets the handler (replacing any); starts the channel on
  // EventLoop::Current() when it has no loop and one runs here.
  void OnMessage(std::function<void(Value)> handler);
  // For a gap (messages dropped because this channel, or this process, fell
  // behind): DataLoss naming the count, in the gap's place in the order.
  void OnMessageError(std::function<void(absl::Status)> handler);
  // Gives a channel without a loop its loop and delivers what is waiting. A
  // no-op on the same loop; FailedPrecondition on another loop, or when
  // closed.
  absl::Status Start(EventLoop& loop);
  void Ref();
  void Unref();

  // Without a loop (owner thread): the next kept message, or nullopt; or
  // wait up to `timeout` for one (an interruption point). DeadlineExceeded
  // at the timeout, Cancelled once closed.
  std::optional<Value> TryReceive();
  absl::StatusOr<Value> Receive(absl::Duration timeout = absl::InfiniteDuration());

  void Close();
  bool closed() const;

 private:
  std::shared_ptr<runtime_internal::BroadcastMember> member_;
};

}  // namespace wharf

#endif  // WHARF_RUNTIME_BROADCAST_CHANNEL_H_

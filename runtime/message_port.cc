#include "wharf/runtime/message_port.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include <concurrentqueue/concurrentqueue.h>

#include "absl/time/clock.h"
#include "wharf/sync/internal/asymmetric_fence.h"
#include "wharf/sync/internal/event_count.h"
#include "wharf/runtime/internal/in_flight_senders.h"
#include "wharf/runtime/internal/spsc_lane.h"
#include "wharf/sync/internal/thread_identity.h"
#include "wharf/sync/internal/spin.h"
#include "wharf/sync/interrupt.h"
#include "wharf/sync/mutex.h"

namespace wharf {
namespace runtime_internal {

using sync_internal::EventCount;

// One direction of a channel: the queue a port receives from.
//
// state: kClosing, then kClosed. Close() sets kClosing, runs HeavyFence()
// and then sets kClosed: a sender between InFlightSenders::Enter(inbox) and
// Leave() that did not see kClosing is visible in InFlightSenders to whoever
// saw kClosed (the Dekker pair of in_flight_senders.h). So "kClosed, no
// sender in flight, queue empty" means closed and drained: nothing can
// arrive any more. A send costs no atomic read-modify-write for this (an
// in-flight counter's two RMWs per message, each waiting for the store
// buffer to drain the message's cache-missing slot, were 70% of a send's
// time in //bench:port_bench BM_Throughput).
// count (bounded ports only): messages reserved or queued (incremented before
// the enqueue, decremented after the dequeue): the capacity test. An
// unbounded port does not keep it: a counter written by both the senders and
// the receiver moves its cache line across CPUs twice per message, which cut
// throughput to a sixth (//bench:port_bench BM_Throughput, 3.0 M/s with it).
//
// Layout: the fields are grouped by who writes them, one cache line each —
// senders (state), the receiver's sleeps (ready), drain scheduling (rarely
// written; read by every sender) — so that a send and a receive running on
// two CPUs share no line except the queue's own.
struct Inbox {
  static constexpr uint32_t kClosing = 1;
  static constexpr uint32_t kClosed = 2;

  explicit Inbox(bool bounded_in) : bounded(bounded_in) {}

  moodycamel::ConcurrentQueue<Value> queue;
  // The fast lane: the first thread that posts here claims it (lane_owner,
  // its sync_internal::CurrentOwnerId, which includes the thread's start time
  // so a reused TID is another thread) and sends through it from then on;
  // every other thread uses `queue`. Each producer thus always uses one path,
  // which keeps per-producer FIFO. A one-producer port — a worker's parent
  // port, a ping-pong — moves one cache line per message (spsc_lane.h).
  std::atomic<uint64_t> lane_owner{0};
  SpscLane<Value> lane;
  bool lane_turn = true;  // owner thread: which source TryTake polls first
  const bool bounded;
  alignas(64) std::atomic<uint32_t> state{0};
  alignas(64) std::atomic<int64_t> count{0};
  // Asymmetric fences: a post's Notify costs no fence, a sleep a membarrier.
  alignas(64) EventCount ready{FutexScope::kPrivate, EventCount::Fences::kAsymmetric};
  // kBlock senders wait here for room; the receiver notifies after each take.
  alignas(64) EventCount space{FutexScope::kPrivate, EventCount::Fences::kAsymmetric};
  // `attached`: the port is started on a loop (set under mu). A sender reads
  // it after its enqueue and the LightFence in ready.Notify(); Start() sets it
  // and runs HeavyFence() before scheduling its own drain: either the sender
  // sees it and schedules a drain, or that drain sees the message. Without a
  // loop a send skips scheduling (and its seq_cst fence) altogether.
  alignas(64) std::atomic<bool> attached{false};
  std::atomic<bool> scheduled{false};  // a drain task is queued on `loop`
  // Bumped (under mu) when the port is transferred: a drain task carries the
  // epoch it was posted for, and one left on the old loop does nothing.
  std::atomic<uint64_t> epoch{0};

  Mutex mu;
  EventLoop* loop = nullptr;  // guarded by mu: where drain tasks go

  // Owner / loop-thread state.
  std::function<void(Value)> on_message;
  uint64_t on_message_gen = 0;
  std::function<void(absl::Status)> on_message_error;
  std::function<void()> on_close;
  EventLoop* owner_loop = nullptr;
  EventLoop::RefHandle ref;
  bool want_ref = true;
  bool started = false;
  bool close_fired = false;
  bool detached = false;  // the port object is gone

  // Owner thread (the only dequeuer). Exact: after the acquire load saw no
  // sender in flight, every enqueue happened before, and only this thread
  // dequeues, so the queue's size is not moving.
  bool Drained() {
    if ((state.load(std::memory_order_acquire) & kClosed) == 0) return false;
    if (InFlightSenders::AnyIn(this)) return false;
    if (cached_next < cached_end) return false;
    if (lane.Ready()) return false;
    return bounded ? count.load(std::memory_order_acquire) == 0 : queue.size_approx() == 0;
  }

  // Owner thread: the next message, or false. Dequeues in bulk (up to
  // kCache at a time, from one producer's sub-queue, in its order) into a
  // receiver-side cache: one bulk dequeue costs moodycamel about what one
  // single dequeue does, and it was the consumer's largest cost.
  bool TryTake(Value& out) {
    // Alternate between the lane and the queue so that neither starves the
    // other's producers.
    lane_turn = !lane_turn;
    if (lane_turn && lane.Pop(out)) return true;
    if (TryTakeQueued(out)) return true;
    return !lane_turn && lane.Pop(out);
  }
  bool TryTakeQueued(Value& out) {
    if (cached_next == cached_end) {
      if (cache == nullptr) cache = std::make_unique<Value[]>(kCache);
      cached_end = queue.try_dequeue_bulk(cache.get(), kCache);
      cached_next = 0;
      if (cached_end == 0) return false;
    }
    out = std::move(cache[cached_next]);
    cache[cached_next++] = Value();
    return true;
  }
  // Owner thread: something to take now (cheap enough to poll).
  bool Ready() { return lane.Ready() || cached_next < cached_end || queue.size_approx() != 0; }

  // The receiver-side cache of TryTake (owner thread). Taken from `queue`
  // but not yet by the user: still queued as far as anyone can tell.
  static constexpr size_t kCache = 32;
  std::unique_ptr<Value[]> cache;
  size_t cached_next = 0;
  size_t cached_end = 0;
};

struct PortCore {
  explicit PortCore(const PortOptions& o)
      : options(o), inbox{Inbox(o.capacity != 0), Inbox(o.capacity != 0)} {}
  const PortOptions options;
  Inbox inbox[2];
};

namespace {

constexpr int kDrainBatch = 1024;

void ScheduleDrain(const std::shared_ptr<PortCore>& core, int side);

void Drain(const std::shared_ptr<PortCore>& core, int side, uint64_t epoch);

void UpdateRef(Inbox& in) {
  const bool want = in.started && in.on_message && in.want_ref && !in.close_fired && !in.detached;
  if (want && in.ref.loop() == nullptr) {
    in.ref = EventLoop::RefHandle(*in.owner_loop);
  } else if (!want) {
    in.ref.Reset();
  }
}

void DetachLoop(Inbox& in) {
  UninterruptibleLock<Mutex> lock(in.mu);
  in.loop = nullptr;
  in.attached.store(false, std::memory_order_relaxed);
}

void MaybeFireClose(Inbox& in) {
  if (in.close_fired || in.detached || !in.started || !in.Drained()) return;
  in.close_fired = true;
  std::function<void()> cb = std::move(in.on_close);
  in.on_close = nullptr;
  UpdateRef(in);
  DetachLoop(in);
  if (cb) cb();
}

void TookOne(Inbox& in) {
  if (in.bounded) {
    in.count.fetch_sub(1, std::memory_order_acq_rel);
    in.space.Notify();
  }
}

void ScheduleDrain(const std::shared_ptr<PortCore>& core, int side) {
  Inbox& in = core->inbox[side];
  // The caller did a seq_cst fence (EventCount::Notify) after its enqueue;
  // Drain does one after clearing the flag: a post that sees `scheduled`
  // still set is seen by that drain, and one that sees `attached` clear is
  // seen by the drain Start() schedules (see Inbox::attached).
  if (!in.attached.load(std::memory_order_relaxed)) return;
  // Pairs with Drain's fence after it clears `scheduled` (both seq_cst: a
  // drain per burst is too frequent for a HeavyFence).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (in.scheduled.load(std::memory_order_acquire)) return;
  if (in.scheduled.exchange(true, std::memory_order_acq_rel)) return;
  UninterruptibleLock<Mutex> lock(in.mu);
  if (in.loop != nullptr) {
    const uint64_t epoch = in.epoch.load(std::memory_order_relaxed);
    in.loop->Post([core, side, epoch] { Drain(core, side, epoch); });
  } else {
    in.scheduled.store(false, std::memory_order_release);
  }
}

void Drain(const std::shared_ptr<PortCore>& core, int side, uint64_t epoch) {
  Inbox& in = core->inbox[side];
  // Posted before the port was transferred away: it belongs to another owner
  // now (and epoch only changes on the owner's thread, which is this one
  // while it matches).
  if (in.epoch.load(std::memory_order_acquire) != epoch) return;
  in.scheduled.exchange(false, std::memory_order_acq_rel);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (in.detached || in.close_fired) return;
  // If a handler throws, the loop reports it and goes on: reschedule so the
  // rest of the burst is not stranded.
  struct Rescheduler {
    const std::shared_ptr<PortCore>& core;
    int side;
    int uncaught = std::uncaught_exceptions();
    ~Rescheduler() {
      if (std::uncaught_exceptions() > uncaught) ScheduleDrain(core, side);
    }
  } rescheduler{core, side};
  if (in.on_message) {
    std::function<void(Value)> handler = in.on_message;  // survives its replacement
    uint64_t gen = in.on_message_gen;
    Value v;
    for (int n = 0;; ++n) {
      if (n == kDrainBatch) {
        ScheduleDrain(core, side);  // yield to the loop's other work
        return;
      }
      if (!in.TryTake(v)) break;
      TookOne(in);
      handler(std::move(v));
      // The handler may have transferred this very port (it may be running
      // on another thread now): touch nothing more.
      if (in.epoch.load(std::memory_order_acquire) != epoch) return;
      if (in.detached || in.close_fired) return;
      if (gen != in.on_message_gen) {
        if (!in.on_message) break;
        handler = in.on_message;
        gen = in.on_message_gen;
      }
    }
  }
  MaybeFireClose(in);
}

constexpr std::string_view kInterruptedMessage = "wharf::Interrupted (kBlock wait)";

// Send()'s report of an interrupted kBlock wait; its callers restore what
// they moved and then throw Interrupted (ThrowIfInterrupted).
absl::Status InterruptedStatus() {
  return absl::AbortedError(absl::string_view(kInterruptedMessage.data(), kInterruptedMessage.size()));
}
absl::Status ThrowIfInterrupted(absl::Status s) {
  if (absl::IsAborted(s) &&
      std::string_view(s.message().data(), s.message().size()) == kInterruptedMessage) {
    sync_internal::ThrowInterrupted();
  }
  return s;
}

std::string CloneError(std::string_view what) {
  return std::string("DataCloneError: ") + std::string(what);
}

struct TransferSets {
  std::unordered_set<const Buffer*> buffers;
  std::unordered_set<const MessagePort*> ports;
};

// Collects the Buffers and ports of `v` that are listed; fails on a detached
// Buffer not in `transfer`, on a port not in `transfer` (ports are never
// cloned) and on nesting deeper than kMaxDepth.
absl::Status Scan(const Value& v, int depth, const TransferSets& transfer, TransferSets& found) {
  if (depth > MessagePort::kMaxDepth) {
    return absl::InvalidArgumentError(CloneError("message nested too deeply"));
  }
  switch (v.kind()) {
    case Value::Kind::kBuffer: {
      const Buffer* b = v.GetBuffer();
      if (transfer.buffers.count(b) != 0) {
        found.buffers.insert(b);
      } else if (b->detached()) {
        return absl::InvalidArgumentError(
            CloneError("the message holds a detached Buffer (already transferred)"));
      }
      return absl::OkStatus();
    }
    case Value::Kind::kPort: {
      const MessagePort* p = v.GetPort();
      if (p != nullptr && transfer.ports.count(p) != 0) {
        found.ports.insert(p);
        return absl::OkStatus();
      }
      if (p == nullptr || !p->valid()) {
        return absl::InvalidArgumentError(
            CloneError("the message holds a detached MessagePort (already transferred)"));
      }
      return absl::InvalidArgumentError(CloneError(
          "a MessagePort in the message is not in the transfer list (ports cannot be "
          "cloned: list it, as value.GetPort())"));
    }
    case Value::Kind::kArray:
      for (const Value& e : *v.GetArray()) {
        absl::Status s = Scan(e, depth + 1, transfer, found);
        if (!s.ok()) return s;
      }
      return absl::OkStatus();
    case Value::Kind::kMap:
      for (const auto& [key, e] : *v.GetMap()) {
        absl::Status s = Scan(e, depth + 1, transfer, found);
        if (!s.ok()) return s;
      }
      return absl::OkStatus();
    default:
      return absl::OkStatus();
  }
}

struct PendingMove {
  Value* dst;
  Buffer* src;
};

struct PendingPortMove {
  Value* dst;
  PortSlot* src;
};

struct PendingMoves {
  std::vector<PendingMove> buffers;
  std::vector<PendingPortMove> ports;
};

// Deep-copies `src` into `dst`, except the transferred Buffers, recorded in
// `moves` (dst left null) and moved only once the whole copy succeeded.
absl::Status CloneInto(Value& src, Value& dst, const TransferSets& transfer,
                       PendingMoves& moves) {
  switch (src.kind()) {
    case Value::Kind::kBuffer: {
      Buffer* b = src.GetBuffer();
      if (transfer.buffers.count(b) != 0) {
        moves.buffers.push_back({&dst, b});
        return absl::OkStatus();
      }
      absl::StatusOr<Buffer> copy = b->Clone();
      if (!copy.ok()) return copy.status();
      dst = Value(*std::move(copy));
      return absl::OkStatus();
    }
    case Value::Kind::kPort: {
      if (src.GetPort() == nullptr || transfer.ports.count(src.GetPort()) == 0) {
        return absl::InvalidArgumentError(
            CloneError("a MessagePort in the message is not in the transfer list"));
      }
      moves.ports.push_back({&dst, src.GetPortSlot()});
      return absl::OkStatus();
    }
    case Value::Kind::kArray: {
      ValueArray& a = *src.GetArray();
      dst = Value(ValueArray(a.size()));  // element addresses now fixed
      ValueArray& out = *dst.GetArray();
      for (size_t i = 0; i < a.size(); ++i) {
        absl::Status s = CloneInto(a[i], out[i], transfer, moves);
        if (!s.ok()) return s;
      }
      return absl::OkStatus();
    }
    case Value::Kind::kMap: {
      ValueMap& m = *src.GetMap();
      dst = Value::Map();
      ValueMap& out = *dst.GetMap();
      out.reserve(m.size());  // entry addresses now fixed
      // The source's keys are unique already: append without the O(n) check.
      for (auto& [key, e] : m) value_internal::MapAccess::Append(out, key, Value());
      size_t i = 0;
      for (auto& [key, e] : m) {
        absl::Status s = CloneInto(e, (out.begin() + i)->second, transfer, moves);
        if (!s.ok()) return s;
        ++i;
      }
      return absl::OkStatus();
    }
    default: {
      absl::StatusOr<Value> copy = src.Clone();  // a leaf: no Buffer inside
      if (!copy.ok()) return copy.status();
      dst = *std::move(copy);
      return absl::OkStatus();
    }
  }
}

// Collects the ports inside `v` (for the move path, where nothing is listed).
// No depth limit: the move path accepts any depth, and the recursion is no
// deeper than the Value's own destructor's.
void CollectPorts(Value& v, std::vector<PortSlot*>& out) {
  switch (v.kind()) {
    case Value::Kind::kPort: out.push_back(v.GetPortSlot()); return;
    case Value::Kind::kArray:
      for (Value& e : *v.GetArray()) CollectPorts(e, out);
      return;
    case Value::Kind::kMap:
      for (auto& [key, e] : *v.GetMap()) CollectPorts(e, out);
      return;
    default: return;
  }
}

}  // namespace

// Private access for the PortSlot operations and the transfer code.
struct PortAccess {
  static bool Same(const MessagePort& a, const MessagePort& b) {
    return a.core_ == b.core_ && (a.core_ == nullptr || a.side_ == b.side_);
  }
  static bool SameChannel(const MessagePort& a, const MessagePort& b) {
    return a.core_ != nullptr && a.core_ == b.core_;
  }
  // Before a port leaves its owner inside a message: detaches it from its
  // loop and drops its handlers and ref, keeping the channel and the queued
  // messages. The receiver starts it again on its own loop. Owner thread.
  static void DetachForTransfer(MessagePort& port) {
    Inbox& in = port.core_->inbox[port.side_];
    {
      UninterruptibleLock<Mutex> lock(in.mu);
      in.loop = nullptr;
      in.attached.store(false, std::memory_order_relaxed);
      in.epoch.fetch_add(1, std::memory_order_acq_rel);
    }
    // A drain queued on the old loop now does nothing; let the new owner's
    // Start() schedule its own.
    in.scheduled.store(false, std::memory_order_release);
    in.ref.Reset();
    in.on_message = nullptr;
    ++in.on_message_gen;
    in.on_message_error = nullptr;
    in.on_close = nullptr;
    in.owner_loop = nullptr;
    in.started = false;
    in.want_ref = true;
  }
};

// Checks a port about to leave inside a message posted on `self`.
absl::Status CheckTransferable(const MessagePort& self, const MessagePort* p) {
  if (p == &self || PortAccess::SameChannel(self, *p)) {
    return absl::InvalidArgumentError(
        CloneError("the message holds or lists the posting port or its peer"));
  }
  if (!p->valid()) {
    return absl::InvalidArgumentError(
        CloneError("a MessagePort to transfer is detached (empty or transferred already)"));
  }
  if (p->closed()) {
    return absl::InvalidArgumentError(CloneError("a MessagePort to transfer is closed"));
  }
  return absl::OkStatus();
}

namespace {
const PortSlot::Ops kPortOps = {
    .destroy = [](MessagePort* port) { delete port; },
    .take = [](MessagePort* port) { return new MessagePort(std::move(*port)); },
    .same = [](const MessagePort& a, const MessagePort& b) { return PortAccess::Same(a, b); },
    .valid = [](const MessagePort& port) { return port.valid(); },
};
}  // namespace
}  // namespace runtime_internal

Value::Value(MessagePort&& port)
    : rep_(PortSlot(new MessagePort(std::move(port)), &runtime_internal::kPortOps)) {}

using runtime_internal::Inbox;
using runtime_internal::PortCore;

std::pair<MessagePort, MessagePort> MessageChannel::Create(PortOptions options) {
  auto core = std::make_shared<PortCore>(options);
  return {MessagePort(core, 0), MessagePort(core, 1)};
}

MessagePort::MessagePort(MessagePort&& other) noexcept
    : core_(std::move(other.core_)), side_(other.side_) {}

MessagePort& MessagePort::operator=(MessagePort&& other) noexcept {
  if (this != &other) {
    Release();
    core_ = std::move(other.core_);
    side_ = other.side_;
  }
  return *this;
}

MessagePort::~MessagePort() { Release(); }

void MessagePort::Release() {
  if (core_ == nullptr) return;
  Close();
  Inbox& in = core_->inbox[side_];
  in.detached = true;
  runtime_internal::DetachLoop(in);
  in.ref.Reset();
  in.on_message = nullptr;
  in.on_message_error = nullptr;
  in.on_close = nullptr;
  // Nobody can receive these any more. Destroying them now also closes the
  // ports travelling in them, which breaks ownership cycles (port A queued
  // at B's channel while B is queued at A's).
  std::shared_ptr<PortCore> core = std::move(core_);
  Value v;
  while (in.TryTake(v)) {
    runtime_internal::TookOne(in);
    v = Value();
  }
}

bool MessagePort::closed() const {
  return core_ == nullptr ||
         core_->inbox[side_].state.load(std::memory_order_acquire) != 0;
}

void MessagePort::Close() {
  if (core_ == nullptr) return;
  // See Inbox::state: kClosing, the heavy side of the senders' Dekker pair,
  // then kClosed.
  for (Inbox& in : core_->inbox) in.state.fetch_or(Inbox::kClosing, std::memory_order_acq_rel);
  sync_internal::HeavyFence();
  for (Inbox& in : core_->inbox) in.state.fetch_or(Inbox::kClosed, std::memory_order_release);
  for (int side = 0; side < 2; ++side) {
    Inbox& in = core_->inbox[side];
    in.ready.NotifyAll();
    in.space.NotifyAll();
    runtime_internal::ScheduleDrain(core_, side);
  }
}

absl::Status MessagePort::Send(Value&& message) {
  if (core_ == nullptr) return absl::FailedPreconditionError("port closed (empty MessagePort)");
  const int peer = 1 - side_;
  Inbox& out = core_->inbox[peer];
  const PortOptions& opt = core_->options;
  const int64_t cap = static_cast<int64_t>(opt.capacity);
  // Leaves the in-flight window; wakes the receiver when `wake`.
  using runtime_internal::InFlightSenders;
  auto leave = [&](bool wake) {
    InFlightSenders::Leave();
    if (wake) {
      out.ready.Notify();
      runtime_internal::ScheduleDrain(core_, peer);
    }
  };
  absl::Time deadline = absl::InfiniteFuture();
  if (cap != 0 && opt.on_full == PortOptions::OnFull::kBlock &&
      opt.block_timeout != absl::InfiniteDuration()) {
    deadline = absl::Now() + opt.block_timeout;
  }
  for (;;) {
    InFlightSenders::Enter(&out);  // then LightFence: see Inbox::state
    if (out.state.load(std::memory_order_relaxed) != 0) {
      leave(true);  // a receiver may be waiting for the in-flight senders
      return absl::FailedPreconditionError("port closed");
    }
    if (cap == 0) break;
    const int64_t queued = out.count.fetch_add(1, std::memory_order_acq_rel);
    if (queued < cap) break;
    out.count.fetch_sub(1, std::memory_order_acq_rel);
    leave(false);
    if (opt.on_full == PortOptions::OnFull::kFail) {
      return absl::ResourceExhaustedError("port full: the receiver's queue holds capacity messages");
    }
    auto has_room = [&] {
      return out.count.load(std::memory_order_acquire) < cap ||
             out.state.load(std::memory_order_acquire) != 0;
    };
    if (has_room()) continue;
    const sync_internal::EventCount::Key key = out.space.PrepareWait();
    if (has_room()) {
      out.space.CancelWait();
      continue;
    }
    // Outside the in-flight window. An interruption is reported as a status
    // so that the caller gives transferred Buffers and ports back first.
    bool notified;
    try {
      notified = out.space.CommitWaitInterruptible(key, deadline);
    } catch (const Interrupted&) {
      return runtime_internal::InterruptedStatus();
    }
    if (!notified && absl::Now() >= deadline && !has_room()) {
      return absl::DeadlineExceededError("port full: timed out waiting for room");
    }
  }
  // The fast lane when this thread owns it (or claims it now).
  const uint64_t me = sync_internal::CurrentOwnerId();
  uint64_t owner = out.lane_owner.load(std::memory_order_relaxed);
  if (owner == 0 && out.lane_owner.compare_exchange_strong(owner, me, std::memory_order_acquire,
                                                           std::memory_order_relaxed)) {
    owner = me;
  }
  if (owner == me ? !out.lane.Push(std::move(message)) : !out.queue.enqueue(std::move(message))) {
    if (cap != 0) out.count.fetch_sub(1, std::memory_order_acq_rel);
    leave(false);
    return absl::ResourceExhaustedError("out of memory queueing a message");
  }
  leave(true);
  return absl::OkStatus();
}

absl::Status MessagePort::PostMessage(Value&& message) {
  const Value::Kind kind = message.kind();
  if (kind != Value::Kind::kArray && kind != Value::Kind::kMap && kind != Value::Kind::kPort) {
    return runtime_internal::ThrowIfInterrupted(Send(std::move(message)));
  }
  // Ports moved along with the message: the same checks and detach as a
  // transfer (the whole message is being transferred).
  std::vector<PortSlot*> ports;
  runtime_internal::CollectPorts(message, ports);
  for (PortSlot* slot : ports) {
    if (slot->get() == nullptr) {
      return absl::InvalidArgumentError(
          runtime_internal::CloneError("the message holds a moved-from MessagePort value"));
    }
    absl::Status s = runtime_internal::CheckTransferable(*this, slot->get());
    if (!s.ok()) return s;
  }
  if (core_ == nullptr) return absl::FailedPreconditionError("port closed (empty MessagePort)");
  if (!ports.empty() && closed()) return absl::FailedPreconditionError("port closed");
  for (PortSlot* slot : ports) runtime_internal::PortAccess::DetachForTransfer(*slot->get());
  return runtime_internal::ThrowIfInterrupted(Send(std::move(message)));
}

absl::Status MessagePort::PostMessage(Value& message, std::span<const Transferable> transfer) {
  if (core_ == nullptr) return absl::FailedPreconditionError("port closed (empty MessagePort)");
  if (closed()) return absl::FailedPreconditionError("port closed");
  runtime_internal::TransferSets listed;
  std::unordered_set<const Buffer*>& buffers = listed.buffers;
  for (const Transferable& t : transfer) {
    if (const auto* b = std::get_if<Buffer*>(&t)) {
      if (*b == nullptr) return absl::InvalidArgumentError("null Buffer* in the transfer list");
      if ((*b)->detached()) {
        return absl::InvalidArgumentError(
            runtime_internal::CloneError("a Buffer in the transfer list is detached"));
      }
      if (!buffers.insert(*b).second) {
        return absl::InvalidArgumentError(
            runtime_internal::CloneError("the same Buffer is twice in the transfer list"));
      }
    } else if (std::holds_alternative<SharedBuffer*>(t)) {
      return absl::InvalidArgumentError(
          runtime_internal::CloneError("a SharedBuffer cannot be transferred (it is shared)"));
    } else {
      const MessagePort* p = std::get<MessagePort*>(t);
      if (p == nullptr) return absl::InvalidArgumentError("null MessagePort* in the transfer list");
      absl::Status s = runtime_internal::CheckTransferable(*this, p);
      if (!s.ok()) return s;
      if (!listed.ports.insert(p).second) {
        return absl::InvalidArgumentError(
            runtime_internal::CloneError("the same MessagePort is twice in the transfer list"));
      }
    }
  }
  runtime_internal::TransferSets found;
  absl::Status s = runtime_internal::Scan(message, 0, listed, found);
  if (!s.ok()) return s;
  if (found.buffers.size() != buffers.size()) {
    return absl::InvalidArgumentError(
        "a Buffer in the transfer list is not inside the message (list pointers to the "
        "message's own Buffers)");
  }
  if (found.ports.size() != listed.ports.size()) {
    return absl::InvalidArgumentError(runtime_internal::CloneError(
        "a MessagePort in the transfer list is not inside the message (list the boxed port: "
        "value.GetPort())"));
  }
  Value copy;
  runtime_internal::PendingMoves moves;
  s = runtime_internal::CloneInto(message, copy, listed, moves);
  if (!s.ok()) {
    if (absl::IsFailedPrecondition(s)) {
      return absl::InvalidArgumentError(runtime_internal::CloneError(std::string(s.message())));
    }
    return s;
  }
  // The copy succeeded: now move the transferred Buffers and ports (cannot
  // fail). A port leaves its loop first: its handlers are dropped.
  for (const auto& m : moves.buffers) *m.dst = Value(std::move(*m.src));
  for (const auto& m : moves.ports) {
    runtime_internal::PortAccess::DetachForTransfer(*m.src->get());
    *m.dst = Value(m.src->Take());  // the sender's slot keeps an empty port
  }
  // Send takes `copy` by reference and moves from it only into the queue, so
  // after a failed send (closed meanwhile, full) it is intact: give the
  // Buffers and ports back to the sender (the ports stay stopped).
  s = Send(std::move(copy));
  if (!s.ok()) {
    for (const auto& m : moves.buffers) *m.src = std::move(*m.dst->GetBuffer());
    for (const auto& m : moves.ports) *m.src = std::move(*m.dst->GetPortSlot());
  }
  return runtime_internal::ThrowIfInterrupted(std::move(s));
}

std::optional<Value> MessagePort::TryReceive() {
  if (core_ == nullptr) return std::nullopt;
  Inbox& in = core_->inbox[side_];
  Value v;
  if (!in.TryTake(v)) return std::nullopt;
  runtime_internal::TookOne(in);
  return v;
}

namespace {
// How long Receive() watches the queue before sleeping (see Receive).
constexpr absl::Duration kReceiveSpin = absl::Microseconds(20);
}  // namespace

absl::StatusOr<Value> MessagePort::Receive(absl::Duration timeout) {
  if (core_ == nullptr) return absl::FailedPreconditionError("empty MessagePort");
  Inbox& in = core_->inbox[side_];
  const absl::Time deadline =
      timeout == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + timeout;
  Value v;
  if (in.TryTake(v)) {  // the busy receiver's path: no clock, no wait
    runtime_internal::TookOne(in);
    return v;
  }
  // Spin first: a reply from a peer running on another CPU usually arrives
  // within a few µs, while a futex sleep+wake hand-off costs 7-12 µs each way
  // on the 2-core VM (//bench:port_bench ping-pong: 14.9 µs per round trip with
  // only the event count's ~100-pause spin). An idle receiver pays the spin
  // once per Receive, then sleeps. The spin polls only the queue (its producer
  // indices: read-only, no line is taken from the sender) and looks at the
  // closed state once per round.
  absl::Time spin_end = absl::InfiniteFuture();  // read the clock only if the spin lasts
  for (bool spinning = true; spinning;) {
    for (int i = 0; i < 64; ++i) {
      if (in.Ready()) {
        spinning = false;
        break;
      }
      sync_internal::CpuRelax();
    }
    if (!spinning) break;
    if (in.Drained()) break;
    const absl::Time now = absl::Now();
    if (spin_end == absl::InfiniteFuture()) spin_end = std::min(deadline, now + kReceiveSpin);
    if (now >= spin_end) spinning = false;
  }
  for (;;) {
    if (in.TryTake(v)) break;
    if (in.Drained()) return absl::CancelledError("port closed");
    const sync_internal::EventCount::Key key = in.ready.PrepareWait();
    if (in.TryTake(v)) {
      in.ready.CancelWait();
      break;
    }
    if (in.Drained()) {
      in.ready.CancelWait();
      return absl::CancelledError("port closed");
    }
    if (!in.ready.CommitWaitInterruptible(key, deadline) && absl::Now() >= deadline) {
      if (in.TryTake(v)) break;
      return absl::DeadlineExceededError("no message before the timeout");
    }
  }
  runtime_internal::TookOne(in);
  return v;
}

void MessagePort::OnMessage(std::function<void(Value)> handler) {
  if (core_ == nullptr) return;
  Inbox& in = core_->inbox[side_];
  in.on_message = std::move(handler);
  ++in.on_message_gen;
  if (!in.started && in.on_message && EventLoop::Current() != nullptr) {
    (void)Start(*EventLoop::Current());
    return;
  }
  runtime_internal::UpdateRef(in);
  if (in.started) runtime_internal::ScheduleDrain(core_, side_);
}

void MessagePort::OnMessageError(std::function<void(absl::Status)> handler) {
  if (core_ == nullptr) return;
  core_->inbox[side_].on_message_error = std::move(handler);
}

void MessagePort::OnClose(std::function<void()> handler) {
  if (core_ == nullptr) return;
  Inbox& in = core_->inbox[side_];
  in.on_close = std::move(handler);
  if (in.started) runtime_internal::ScheduleDrain(core_, side_);  // already closed?
}

absl::Status MessagePort::Start() {
  EventLoop* loop = EventLoop::Current();
  if (loop == nullptr) {
    return absl::FailedPreconditionError("MessagePort::Start(): no EventLoop runs on this thread");
  }
  return Start(*loop);
}

absl::Status MessagePort::Start(EventLoop& loop) {
  if (core_ == nullptr) return absl::FailedPreconditionError("empty MessagePort");
  Inbox& in = core_->inbox[side_];
  if (in.started) {
    if (in.owner_loop != &loop) {
      return absl::FailedPreconditionError("MessagePort already started on another EventLoop");
    }
    return absl::OkStatus();
  }
  in.started = true;
  in.owner_loop = &loop;
  {
    UninterruptibleLock<Mutex> lock(in.mu);
    in.loop = &loop;
    in.attached.store(true, std::memory_order_seq_cst);
  }
  sync_internal::HeavyFence();  // see Inbox::attached
  runtime_internal::UpdateRef(in);
  runtime_internal::ScheduleDrain(core_, side_);
  return absl::OkStatus();
}

void MessagePort::Ref() {
  if (core_ == nullptr) return;
  Inbox& in = core_->inbox[side_];
  in.want_ref = true;
  runtime_internal::UpdateRef(in);
}

void MessagePort::Unref() {
  if (core_ == nullptr) return;
  Inbox& in = core_->inbox[side_];
  in.want_ref = false;
  runtime_internal::UpdateRef(in);
}

}  // namespace wharf

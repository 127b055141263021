#include "wharf/runtime/message_port.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "wharf/runtime/codec.h"
#include "wharf/runtime/internal/loop_access.h"
#include "wharf/runtime/internal/loop_source.h"
#include "wharf/runtime/internal/port_access.h"
#include "wharf/runtime/internal/port_transport.h"
#include "wharf/runtime/internal/receiving_end.h"
#include "wharf/sync/internal/spin.h"
#include "wharf/sync/interrupt.h"

namespace wharf {
namespace runtime_internal {

struct PortCore;

// One end of a channel in this process: the per-process state over the
// transport — handlers, the loop it is started on, its ref, its delivery (a
// LoopSource of that loop). Owner thread only (the loop's thread once
// started); the transport is what other threads touch.
//
// The per-loop part (loop, core reference, handler, ref) is a ReceivingEnd:
// Deliver() takes no reference per message and touches nothing of the
// endpoint after the handler returns — the handler may replace itself,
// close, transfer (another thread may own the endpoint the moment the
// handler's PostMessage returns) or destroy its own port.
struct PortEndpoint final : LoopSource {
  PortCore* core = nullptr;
  int side = 0;

  ReceivingEnd receiving;  // OnMessage's handler, the loop, the ref
  std::function<void(absl::Status)> on_message_error;
  std::function<void()> on_close;
  bool close_fired = false;

  bool Pending() override;
  bool Deliver() override;
  int ArmSleep(std::span<FutexWaitEntry> out) override;
  void DisarmSleep(int woken) override;
  void LoopGone() override;

  void UpdateRef() { receiving.UpdateRef(!close_fired); }
  // Leaves the loop (if started): no more deliveries, no ref, senders ring
  // the transport's own doorbell.
  void Detach();
  // Detach, and drop the handlers: the port leaves its owner (transferred or
  // destroyed).
  void Reset();
  void FireClose();
};

// The transports of one channel over its life: the one it was made with
// and — at most once, when one end of an in-process channel leaves for
// another process (Migrate) — the shared-memory link it moves to. The same
// surface as PortTransport; a send goes to the current transport (retrying
// there when it raced the move), a receive drains what was queued on the
// first one before it looks at the link.
//
// Protocol of the move (Migrate, on the thread sending the leaving end):
// seal the first transport (no send accepted, none in flight: kMoved),
// take the leaving side's queue, write it into a fresh link, make the link
// current (release), then wake the staying side's receiver. Senders that got
// kMoved wait for `current_` to change (acquire) and send there. The staying
// side's receiver (its owner thread) reads `current_` (acquire) and, once it
// moved, first empties its side of the first transport (nothing can arrive
// there any more), then uses the link: FIFO per sender holds across the
// move, and nothing is lost or doubled.
class PortChannel {
 public:
  explicit PortChannel(size_t capacity) : first_(capacity) {}
  PortChannel(ShmChannelEnd end, int local_side, size_t capacity)
      : first_(std::move(end), local_side, capacity) {}

  PortTransport& now() { return *current_.load(std::memory_order_acquire); }
  const PortTransport& now() const { return *current_.load(std::memory_order_acquire); }

  SendResult TrySend(int to, Value& v, absl::Status& why) {
    for (;;) {
      PortTransport* t = current_.load(std::memory_order_acquire);
      const SendResult r = t->TrySend(to, v, why);
      if (r != SendResult::kMoved) return r;
      // A move is being published (or failed: the next try says kClosed).
      std::this_thread::yield();
    }
  }
  bool TryTake(int side, Value& out) {
    if (PortTransport* old = Old(side)) {
      if (old->TryTake(side, out)) return true;
      old_done_[side] = true;  // sealed: nothing more can arrive there
    }
    return now().TryTake(side, out);
  }
  bool TakeError(int side, absl::Status& out) { return now().TakeError(side, out); }
  bool Readable(int side) {
    PortTransport* old = Old(side);
    return (old != nullptr && old->Readable(side)) || now().Readable(side);
  }
  bool Drained(int side) {
    PortTransport* old = Old(side);
    if (old != nullptr && old->Readable(side)) return false;
    return now().Drained(side);
  }
  void Close() { now().Close(); }
  bool closed() const { return now().closed(); }
  absl::Status CloseCause(int side) const { return now().CloseCause(side); }
  bool WaitReadable(int side, absl::Time deadline) {
    PortTransport* old = Old(side);
    if (old != nullptr && old->Readable(side)) return true;
    return now().WaitReadable(side, deadline);
  }
  bool WaitWritable(int to, absl::Time deadline) { return now().WaitWritable(to, deadline); }
  void AttachLoop(int side, EventLoop* loop) {
    first_.AttachLoop(side, loop);  // its doorbell is what Migrate rings
    if (PortTransport* moved = moved_.get(); moved != nullptr && moved == &now()) {
      moved->AttachLoop(side, loop);
    }
  }
  int ArmSleep(int side, std::span<FutexWaitEntry> out) {
    armed_[side] = &now();
    return armed_[side]->ArmSleep(side, out);
  }
  void DisarmSleep(int side, int woken) {
    if (armed_[side] != nullptr) armed_[side]->DisarmSleep(side, woken);
    armed_[side] = nullptr;
  }
  ShmChannel* shm() { return now().shm(); }
  const ShmChannel* shm() const { return now().shm(); }
  // Whether side `side` still has messages from before a move to take.
  bool HasOld(int side) {
    PortTransport* old = Old(side);
    return old != nullptr && old->Readable(side);
  }

  // Moves the channel to a fresh link because side `leaving` goes to
  // another process; returns the link (the leaving side is its end 1).
  // Callers serialise (move_mu_). FailedPrecondition once moved.
  absl::StatusOr<std::shared_ptr<ShmLink>> Migrate(int leaving, const PortOptions& options);

  Mutex move_mu_;  // Migrate and hand-offs of this channel's ends

 private:
  PortTransport* Old(int side) {
    return current_.load(std::memory_order_acquire) != &first_ && !old_done_[side] ? &first_
                                                                                   : nullptr;
  }

  PortTransport first_;
  std::unique_ptr<PortTransport> moved_;  // set once, before current_ points to it
  std::atomic<PortTransport*> current_{&first_};
  bool old_done_[2] = {false, false};           // receiver-owned, per side
  PortTransport* armed_[2] = {nullptr, nullptr};  // receiver-owned: what ArmSleep armed
};

absl::StatusOr<std::shared_ptr<ShmLink>> PortChannel::Migrate(int leaving,
                                                              const PortOptions& options) {
  InProcessChannel* first = first_.in_process();
  if (first == nullptr || current_.load(std::memory_order_acquire) != &first_) {
    return absl::FailedPreconditionError("the channel already left this process");
  }
  first->SealForMigration();
  std::vector<Value> backlog;
  size_t bytes = 0;
  for (Value v; first->TryTake(leaving, v);) {
    absl::StatusOr<std::string> size_probe = EncodeValue(std::as_const(v));
    bytes += (size_probe.ok() ? size_probe->size() : 0) + 64;
    backlog.push_back(std::move(v));
  }
  // A ring that holds the whole backlog (no reader exists yet to make room):
  // records up to a quarter of it inline, larger ones out of line.
  size_t capacity = ShmLink::kDefaultRingCapacity;
  while (capacity < 4 * bytes && capacity < ShmRing::kMaxCapacity) capacity *= 2;
  absl::StatusOr<std::shared_ptr<ShmLink>> link = ShmLink::Create(capacity);
  absl::StatusOr<ShmChannelEnd> end =
      link.ok() ? ShmChannelEnd::Open(*link, 0) : absl::StatusOr<ShmChannelEnd>(link.status());
  if (!end.ok()) {
    // Cannot move: the channel closes (the leaving end's owner gets the error).
    first->AbortMigration();
    return end.status();
  }
  moved_ = std::make_unique<PortTransport>(*std::move(end), 1 - leaving, options.capacity);
  for (Value& v : backlog) {
    absl::Status why;
    if (moved_->TrySend(leaving, v, why) != SendResult::kOk) {
      moved_->shm()->WriteErrorRecord(why.ok() ? std::string("the link had no room for it")
                                               : std::string(why.message()));
    }
  }
  current_.store(moved_.get(), std::memory_order_release);
  first->WakeAll();  // receivers and blocked senders look again (now at the link)
  return *std::move(link);
}

struct PortCore {
  explicit PortCore(const PortOptions& o) : options(o), transport(o.capacity) { Init(); }
  // Over a link: this process holds side `local_side` only.
  PortCore(const PortOptions& o, ShmChannelEnd link_end, int local_side)
      : options(o), transport(std::move(link_end), local_side, o.capacity) {
    Init();
  }
  void Init() {
    for (int side = 0; side < 2; ++side) {
      end[side].core = this;
      end[side].side = side;
    }
  }
  const PortOptions options;
  PortChannel transport;
  PortEndpoint end[2];
};

bool PortEndpoint::Pending() {
  PortChannel& t = core->transport;
  // Polled while the loop spins (Drained is one load on an open channel).
  return (receiving.has_handler() && t.Readable(side)) || (!close_fired && t.Drained(side));
}

bool PortEndpoint::Deliver() {
  PortChannel& t = core->transport;
  if (receiving.has_handler()) {
    Value v;
    if (t.TryTake(side, v)) {
      receiving.Deliver(std::move(v));
      return true;  // `this` may belong to another owner now: touch nothing
    }
    absl::Status error;
    if (t.TakeError(side, error)) {
      // messageerror, in its place in the order; dropped without a handler.
      if (std::function<void(absl::Status)> h = on_message_error) h(std::move(error));
      return true;
    }
  }
  if (!close_fired && t.Drained(side)) {
    FireClose();
    return true;
  }
  return false;
}

int PortEndpoint::ArmSleep(std::span<FutexWaitEntry> out) {
  return core->transport.ArmSleep(side, out);
}

void PortEndpoint::DisarmSleep(int woken) { core->transport.DisarmSleep(side, woken); }

void PortEndpoint::LoopGone() {
  core->transport.AttachLoop(side, nullptr);
  receiving.LoopGone();  // may destroy *this: last
}

void PortEndpoint::Detach() {
  if (receiving.loop() == nullptr) return;
  core->transport.AttachLoop(side, nullptr);
  receiving.Stop(this);  // may be the last core reference: *this dies after the callback
}

void PortEndpoint::Reset() {
  receiving.SetHandler(nullptr);  // before Stop: deferred on the loop it runs on
  Detach();
  receiving.SetWantRef(true);
  on_message_error = nullptr;
  on_close = nullptr;
}

void PortEndpoint::FireClose() {
  close_fired = true;
  std::function<void()> cb = std::move(on_close);
  on_close = nullptr;
  Detach();
  if (cb) cb();
}

namespace {

// The link end under a port over shared memory, or null.
const ShmChannelEnd* LinkEnd(const std::shared_ptr<PortCore>& core) {
  if (core == nullptr) return nullptr;
  const ShmChannel* shm = core->transport.shm();
  return shm != nullptr ? &shm->end() : nullptr;
}

}  // namespace

bool PortAccess::Same(const MessagePort& a, const MessagePort& b) {
  if (a.core_ == b.core_) return a.core_ == nullptr || a.side_ == b.side_;
  // Each end of a link has its own core: the two ends of one link in this
  // process are one channel.
  const ShmChannelEnd* la = LinkEnd(a.core_);
  const ShmChannelEnd* lb = LinkEnd(b.core_);
  return la != nullptr && lb != nullptr && la->link == lb->link && la->end == lb->end;
}

bool PortAccess::SameChannel(const MessagePort& a, const MessagePort& b) {
  if (a.core_ == nullptr) return false;
  if (a.core_ == b.core_) return true;
  const ShmChannelEnd* la = LinkEnd(a.core_);
  const ShmChannelEnd* lb = LinkEnd(b.core_);
  return la != nullptr && lb != nullptr && la->link == lb->link;
}

void PortAccess::DetachForTransfer(MessagePort& port) { port.core_->end[port.side_].Reset(); }

namespace {

// The port hooks of the shared-memory transport (shm_channel.h).
absl::Status CheckLeaving(const PortSlot& slot) {
  MessagePort* port = slot.get();
  if (port == nullptr || !port->valid()) {
    return absl::InvalidArgumentError("DataCloneError: an empty MessagePort cannot be sent");
  }
  return PortAccess::CheckLeaving(*port);
}

absl::StatusOr<ExportedPort> ExportSlot(PortSlot& slot) {
  return PortAccess::Export(*slot.get());
}

PortSlot ImportPort(ExportedPort e);

const PortHooks kPortHooks = {
    .check = &CheckLeaving,
    .export_port = &ExportSlot,
    .import_port = &ImportPort,
};
[[maybe_unused]] const bool kPortHooksSet = (SetPortHooks(&kPortHooks), true);

PortOptions OptionsOf(const ExportedPort& e) {
  PortOptions o;
  o.capacity = static_cast<size_t>(e.capacity);
  o.on_full = e.on_full == 1 ? PortOptions::OnFull::kBlock : PortOptions::OnFull::kFail;
  o.block_timeout =
      e.block_timeout_ns < 0 ? absl::InfiniteDuration() : absl::Nanoseconds(e.block_timeout_ns);
  return o;
}

ExportedPort ExportOf(std::shared_ptr<ShmLink> link, int end, const PortOptions& o) {
  return ExportedPort{std::move(link), end, o.capacity,
                      o.on_full == PortOptions::OnFull::kBlock ? 1u : 0u,
                      o.block_timeout == absl::InfiniteDuration()
                          ? -1
                          : absl::ToInt64Nanoseconds(o.block_timeout)};
}

}  // namespace

absl::Status PortAccess::CheckLeaving(const MessagePort& port) {
  PortCore& core = *port.core_;
  if (core.transport.HasOld(port.side_)) {
    return absl::InvalidArgumentError(
        "DataCloneError: this port's channel has just moved to another process and it still "
        "holds messages from before; receive them before sending the port on");
  }
  return absl::OkStatus();
}

absl::StatusOr<ExportedPort> PortAccess::Export(MessagePort& port) {
  std::shared_ptr<PortCore> core = port.core_;
  const int side = port.side_;
  ExportedPort out;
  {
    MutexLock lock(core->transport.move_mu_);
    if (ShmChannel* shm = core->transport.shm()) {
      // Already over a link: the end itself moves on (the link's state is
      // all in the shared memory), nothing to close here.
      shm->Leaving();
      out = ExportOf(shm->end().link, shm->end().end, core->options);
    } else {
      absl::StatusOr<std::shared_ptr<ShmLink>> link =
          core->transport.Migrate(side, core->options);
      if (!link.ok()) return link.status();
      out = ExportOf(*std::move(link), 1, core->options);
    }
  }
  // The port leaves without closing its channel: drop this process's end.
  core->end[side].Reset();
  port.core_.reset();
  return out;
}

void PortAccess::UnwatchPeer(MessagePort& port) {
  if (ShmChannel* shm = Shm(port)) shm->StopWatchingPeer();
}

absl::Status PortAccess::TryPostNow(MessagePort& port, Value& message) {
  if (port.core_ == nullptr) return absl::FailedPreconditionError("port closed (empty MessagePort)");
  absl::Status why;
  switch (port.core_->transport.TrySend(1 - port.side_, message, why)) {
    case SendResult::kOk:
      return absl::OkStatus();
    case SendResult::kClosed:
      return absl::FailedPreconditionError("port closed");
    case SendResult::kMoved:  // PortChannel::TrySend retries it itself
    case SendResult::kFull:
    case SendResult::kBusy:
      return absl::ResourceExhaustedError("port full: no room at the receiver now");
    case SendResult::kNoMemory:
      return absl::ResourceExhaustedError("out of memory queueing a message");
    case SendResult::kInvalid:
      return why;
  }
  return absl::InternalError("unknown send result");
}

MessagePort PortAccess::OverLink(ShmChannelEnd end, const PortOptions& options) {
  // Side 0 here by convention: the transport ignores sides (it has one).
  return MessagePort(std::make_shared<PortCore>(options, std::move(end), 0), 0);
}

ShmChannel* PortAccess::Shm(MessagePort& port) {
  return port.core_ == nullptr ? nullptr : port.core_->transport.shm();
}

absl::StatusOr<std::pair<MessagePort, MessagePort>> PortAccess::ShmPairForTesting(
    const PortOptions& options) {
  absl::StatusOr<std::shared_ptr<ShmLink>> link = ShmLink::Create();
  if (!link.ok()) return link.status();
  absl::StatusOr<ShmChannelEnd> a = ShmChannelEnd::Open(*link, 0);
  if (!a.ok()) return a.status();
  absl::StatusOr<ShmChannelEnd> b = ShmChannelEnd::Open(*link, 1);
  if (!b.ok()) return b.status();
  return std::make_pair(OverLink(*std::move(a), options), OverLink(*std::move(b), options));
}

namespace {

const PortSlot::Ops kPortOps = {
    .destroy = [](MessagePort* port) { delete port; },
    .take = [](MessagePort* port) { return new MessagePort(std::move(*port)); },
    .same = [](const MessagePort& a, const MessagePort& b) { return PortAccess::Same(a, b); },
    .valid = [](const MessagePort& port) { return port.valid(); },
};

PortSlot ImportPort(ExportedPort e) {
  const PortOptions options = OptionsOf(e);
  absl::StatusOr<ShmChannelEnd> end = ShmChannelEnd::Open(e.link, e.end);
  if (!end.ok()) return PortSlot(new MessagePort(), &kPortOps);  // an empty port
  return PortSlot(new MessagePort(PortAccess::OverLink(*std::move(end), options)), &kPortOps);
}

// How a send ended: a status, or an interruption of a kBlock wait (reported
// so that the caller gives transferred items back before it throws).
struct SendOutcome {
  absl::Status status;
  bool interrupted = false;
};

}  // namespace
}  // namespace runtime_internal

Value::Value(MessagePort&& port)
    : rep_(PortSlot(new MessagePort(std::move(port)), &runtime_internal::kPortOps)) {}

using runtime_internal::PortCore;
using runtime_internal::PortEndpoint;
using runtime_internal::SendOutcome;
using runtime_internal::SendResult;

namespace {

SendOutcome Send(PortCore& core, int to, Value& message) {
  const PortOptions& opt = core.options;
  absl::Time deadline = absl::InfiniteFuture();
  absl::Status why;
  for (bool first = true;; first = false) {
    switch (core.transport.TrySend(to, message, why)) {
      case SendResult::kOk:
        return {};
      case SendResult::kClosed:
        return {absl::FailedPreconditionError("port closed")};
      case SendResult::kNoMemory:
        return {absl::ResourceExhaustedError("out of memory queueing a message")};
      case SendResult::kInvalid:
        return {std::move(why)};
      case SendResult::kBusy:
        // The transport's own limit (a ring between processes), not the
        // port's capacity: wait for the receiver whatever on_full says.
        try {
          (void)core.transport.WaitWritable(to, absl::InfiniteFuture());
        } catch (const Interrupted&) {
          return {absl::AbortedError("interrupted"), true};
        }
        continue;
      case SendResult::kMoved:  // PortChannel::TrySend retries it itself
        continue;
      case SendResult::kFull:
        break;
    }
    if (opt.on_full == PortOptions::OnFull::kFail) {
      return {absl::ResourceExhaustedError(
          "port full: the receiver's queue holds capacity messages")};
    }
    if (first && opt.block_timeout != absl::InfiniteDuration()) {
      deadline = absl::Now() + opt.block_timeout;
    }
    bool room;
    try {
      room = core.transport.WaitWritable(to, deadline);
    } catch (const Interrupted&) {
      return {absl::AbortedError("interrupted"), true};
    }
    if (!room && absl::Now() >= deadline) {
      // One last try: room may have appeared at the deadline.
      if (core.transport.TrySend(to, message, why) == SendResult::kOk) return {};
      return {absl::DeadlineExceededError("port full: timed out waiting for room")};
    }
  }
}

// Sends a prepared clone; on failure gives its transferred items back, and
// throws Interrupted after doing so if the send was interrupted.
absl::Status SendClone(PortCore& core, int to, StructuredClone& clone) {
  SendOutcome out = Send(core, to, clone.Commit());
  if (out.status.ok()) return out.status;
  clone.Rollback();
  if (out.interrupted) sync_internal::ThrowInterrupted();
  return out.status;
}

}  // namespace

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
  // The core may die with this port (the peer gone too): keep it until the
  // end of this function.
  std::shared_ptr<PortCore> core = std::move(core_);
  core->end[side_].Reset();
  // Nobody can receive these any more. Destroying them now also closes the
  // ports travelling in them, which breaks ownership cycles (port A queued
  // at B's channel while B is queued at A's).
  Value v;
  while (core->transport.TryTake(side_, v)) v = Value();
}

bool MessagePort::closed() const { return core_ == nullptr || core_->transport.closed(); }

void MessagePort::Close() {
  if (core_ != nullptr) core_->transport.Close();
}

absl::Status MessagePort::PostMessage(Value&& message) {
  if (core_ == nullptr) return absl::FailedPreconditionError("port closed (empty MessagePort)");
  const Value::Kind kind = message.kind();
  if (kind != Value::Kind::kArray && kind != Value::Kind::kMap && kind != Value::Kind::kPort) {
    // No port can be inside: the plain move, the hot path.
    SendOutcome out = Send(*core_, 1 - side_, message);
    if (out.interrupted) sync_internal::ThrowInterrupted();
    return out.status;
  }
  absl::StatusOr<StructuredClone> clone = StructuredClone::Move(std::move(message), this);
  if (!clone.ok()) return clone.status();
  // Do not detach the ports for a send that cannot succeed.
  if (closed()) return absl::FailedPreconditionError("port closed");
  return SendClone(*core_, 1 - side_, *clone);
}

absl::Status MessagePort::PostMessage(Value& message, std::span<const Transferable> transfer) {
  if (core_ == nullptr) return absl::FailedPreconditionError("port closed (empty MessagePort)");
  if (closed()) return absl::FailedPreconditionError("port closed");
  absl::StatusOr<StructuredClone> clone = StructuredClone::Copy(message, transfer, this);
  if (!clone.ok()) return clone.status();
  return SendClone(*core_, 1 - side_, *clone);
}

std::optional<Value> MessagePort::TryReceive() {
  if (core_ == nullptr) return std::nullopt;
  Value v;
  if (core_->transport.TryTake(side_, v)) return v;
  absl::Status dropped;  // a message error has no place in TryReceive's answer
  while (core_->transport.TakeError(side_, dropped)) {
    if (core_->transport.TryTake(side_, v)) return v;
  }
  return std::nullopt;
}

absl::StatusOr<Value> MessagePort::Receive(absl::Duration timeout) {
  if (core_ == nullptr) return absl::FailedPreconditionError("empty MessagePort");
  runtime_internal::PortChannel& t = core_->transport;
  Value v;
  if (t.TryTake(side_, v)) return v;  // the busy receiver's path: no clock, no wait
  if (absl::Status error; t.TakeError(side_, error)) return error;
  const absl::Time deadline =
      timeout == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + timeout;
  // Spin first (kReplySpin), polling only the queue (read-only: no line is
  // taken from the sender) and the closed state (one load while open).
  (void)sync_internal::SpinFor(sync_internal::kReplySpin, deadline,
                               [&t, this] { return t.Readable(side_) || t.Drained(side_); });
  absl::Status error;
  for (;;) {
    if (t.TryTake(side_, v)) return v;
    if (t.TakeError(side_, error)) return error;  // messageerror, in its place
    if (t.Drained(side_)) return t.CloseCause(side_);
    if (!t.WaitReadable(side_, deadline) && absl::Now() >= deadline) {
      if (t.TryTake(side_, v)) return v;
      return absl::DeadlineExceededError("no message before the timeout");
    }
  }
}

void MessagePort::OnMessage(std::function<void(Value)> handler) {
  if (core_ == nullptr) return;
  PortEndpoint& e = core_->end[side_];
  e.receiving.SetHandler(std::move(handler));
  if (e.receiving.loop() == nullptr && e.receiving.has_handler() &&
      EventLoop::Current() != nullptr) {
    (void)Start(*EventLoop::Current());
    return;
  }
  e.UpdateRef();
}

void MessagePort::OnMessageError(std::function<void(absl::Status)> handler) {
  if (core_ != nullptr) core_->end[side_].on_message_error = std::move(handler);
}

void MessagePort::OnClose(std::function<void()> handler) {
  if (core_ != nullptr) core_->end[side_].on_close = std::move(handler);
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
  PortEndpoint& e = core_->end[side_];
  if (e.receiving.loop() != nullptr) {
    if (e.receiving.loop() != &loop) {
      return absl::FailedPreconditionError("MessagePort already started on another EventLoop");
    }
    return absl::OkStatus();
  }
  if (e.close_fired) return absl::OkStatus();  // closed and delivered: nothing to start
  core_->transport.AttachLoop(side_, &loop);
  e.receiving.Start(loop, &e, core_);
  e.UpdateRef();
  return absl::OkStatus();
}

void MessagePort::Ref() {
  if (core_ == nullptr) return;
  PortEndpoint& e = core_->end[side_];
  e.receiving.SetWantRef(true);
  e.UpdateRef();
}

void MessagePort::Unref() {
  if (core_ == nullptr) return;
  PortEndpoint& e = core_->end[side_];
  e.receiving.SetWantRef(false);
  e.UpdateRef();
}

bool MessagePort::HasRef() const {
  return core_ != nullptr && core_->end[side_].receiving.HasRef();
}

}  // namespace wharf

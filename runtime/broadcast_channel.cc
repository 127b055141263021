#include "wharf/runtime/broadcast_channel.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <exception>
#include <optional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "wharf/runtime/internal/broadcast_relay.h"
#include "wharf/runtime/internal/loop_access.h"
#include "wharf/runtime/internal/loop_source.h"
#include "wharf/runtime/internal/receiving_end.h"
#include "wharf/sync/internal/event_count.h"
#include "wharf/sync/internal/str_cat.h"
#include "wharf/sync/interrupt.h"
#include "wharf/sync/mutex.h"

namespace wharf {
namespace runtime_internal {

using sync_internal::EventCount;

// One BroadcastChannel object's receiving side: a dispatcher source of its
// loop. Shared by the object, the registry (while open), and its loop (while
// started: the ReceivingEnd's owner reference), so a delivery racing a
// Close() or a destruction finds it alive and sees `closed`.
//
// Senders (any thread) push under `mu` and ring the loop's doorbell (`loop`,
// a copy of the receiving end's loop for senders, read under `mu`, which
// Close() clears before the loop may die) and `ready` (for Receive). `queued` mirrors the queue's size for the loop's lock-free poll:
// written under mu, read relaxed; the doorbell's fences order it (the pair of
// loop_source.h).
struct BroadcastMember final : LoopSource {
  BroadcastMember(std::string n, size_t backlog) : name(std::move(n)), max_backlog(backlog) {}
  const std::string name;
  const size_t max_backlog;

  // A message, or a gap: `dropped` messages that never reached this channel
  // (its own backlog was full, or — `remote` — they were dropped on the way
  // from another process). A gap is one entry however long.
  struct Entry {
    Value value;
    uint64_t dropped = 0;
    bool remote = false;
  };

  Mutex mu;
  std::deque<Entry> queue;        // guarded by mu
  EventLoop* loop = nullptr;      // guarded by mu: the senders' copy of receiving.loop()
  std::atomic<size_t> queued{0};  // queue.size(), written under mu
  std::atomic<bool> closed{false};  // set under mu
  EventCount ready{FutexScope::kPrivate, EventCount::Fences::kAsymmetric};

  // Owner / loop thread: OnMessage's and OnMessageError's handlers, the
  // loop, the ref.
  ReceivingEnd receiving;
  std::function<void(absl::Status)> on_message_error;

  bool Pending() override { return queued.load(std::memory_order_relaxed) != 0; }
  bool Deliver() override {
    std::optional<Entry> e = Take();
    if (!e.has_value()) return false;
    if (e->dropped != 0) {
      // messageerror, in its place; dropped without a handler.
      if (std::function<void(absl::Status)> h = on_message_error) h(GapStatus(*e));
      return true;
    }
    // A handler may close or destroy its own channel (ReceivingEnd).
    if (receiving.has_handler()) receiving.Deliver(std::move(e->value));
    return true;  // with no handler the message is dropped, as in Node
  }

  void LoopGone() override {
    {
      MutexLock lock(mu);
      loop = nullptr;
    }
    receiving.LoopGone();  // may destroy *this: last
  }

  void UpdateRef() { receiving.UpdateRef(!closed.load(std::memory_order_relaxed)); }

  absl::Status GapStatus(const Entry& e) const {
    if (e.remote) {
      return absl::DataLossError(sync_internal::Cat(
          "BroadcastChannel \"", name, "\": ", e.dropped,
          " message(s) dropped on the way from another process: this process fell behind "
          "(its link's ring was full)"));
    }
    return absl::DataLossError(sync_internal::Cat(
        "BroadcastChannel \"", name, "\": ", e.dropped,
        " message(s) dropped: this channel fell behind (max_backlog = ", max_backlog,
        " messages queued)"));
  }

  std::optional<Entry> Take() {
    MutexLock lock(mu);
    if (queue.empty()) return std::nullopt;
    Entry e = std::move(queue.front());
    queue.pop_front();
    queued.store(queue.size(), std::memory_order_relaxed);
    return e;
  }

  void Enqueue(Value v) {
    MutexLock lock(mu);
    if (closed.load(std::memory_order_relaxed)) return;  // v dies after unlock
    if (queue.size() >= max_backlog) {
      AddGapLocked(1, /*remote=*/false);
      return;
    }
    queue.push_back(Entry{std::move(v)});
    WakeLocked();
  }

  void EnqueueGap(uint64_t dropped) {
    MutexLock lock(mu);
    if (closed.load(std::memory_order_relaxed)) return;
    AddGapLocked(dropped, /*remote=*/true);
  }

 private:
  // Extends a gap at the back, or appends one (past max_backlog by at most
  // one entry).
  void AddGapLocked(uint64_t dropped, bool remote) {
    if (!queue.empty() && queue.back().dropped != 0 && queue.back().remote == remote) {
      queue.back().dropped += dropped;
      return;
    }
    queue.push_back(Entry{Value(), dropped, remote});
    WakeLocked();
  }
  void WakeLocked() {
    queued.store(queue.size(), std::memory_order_relaxed);
    if (loop != nullptr) LoopAccess::Doorbell(*loop).Notify();
    ready.Notify();
  }
};

namespace {

struct Registry {
  Mutex mu;
  std::unordered_map<std::string, std::vector<std::shared_ptr<BroadcastMember>>> groups;
};

Registry& GetRegistry() {
  static Registry* registry = new Registry;  // never destroyed: safe at exit
  return *registry;
}

std::shared_ptr<BroadcastMember> Join(std::string name, const BroadcastOptions& options) {
  auto m = std::make_shared<BroadcastMember>(std::move(name), std::max<size_t>(1, options.max_backlog));
  Registry& r = GetRegistry();
  MutexLock lock(r.mu);
  r.groups[m->name].push_back(m);
  return m;
}

// The open channels of `name` but `except`.
std::vector<std::shared_ptr<BroadcastMember>> MembersOf(const std::string& name,
                                                        const BroadcastMember* except) {
  std::vector<std::shared_ptr<BroadcastMember>> out;
  Registry& r = GetRegistry();
  MutexLock lock(r.mu);
  auto it = r.groups.find(name);
  if (it != r.groups.end()) {
    out.reserve(it->second.size());
    for (const auto& m : it->second) {
      if (m.get() != except) out.push_back(m);
    }
  }
  return out;
}

// One clone per receiver, the last one gets `message` itself.
void DeliverTo(const std::vector<std::shared_ptr<BroadcastMember>>& targets, Value message) {
  for (size_t i = 0; i < targets.size(); ++i) {
    if (i + 1 == targets.size()) {
      targets[i]->Enqueue(std::move(message));
      return;
    }
    absl::StatusOr<Value> copy = message.Clone();  // cannot fail: cloned once already
    if (copy.ok()) targets[i]->Enqueue(*std::move(copy));
  }
}

}  // namespace

void DeliverToLocalChannels(const std::string& name, Value message) {
  DeliverTo(MembersOf(name, nullptr), std::move(message));
}

void ReportGapToLocalChannels(const std::string& name, uint64_t dropped) {
  for (const auto& m : MembersOf(name, nullptr)) m->EnqueueGap(dropped);
}

}  // namespace runtime_internal

using runtime_internal::BroadcastMember;

BroadcastChannel::BroadcastChannel(std::string name, BroadcastOptions options)
    : member_(runtime_internal::Join(std::move(name), options)) {
  if (EventLoop* loop = EventLoop::Current()) (void)Start(*loop);
}

BroadcastChannel::BroadcastChannel(std::string name, EventLoop& loop, BroadcastOptions options)
    : member_(runtime_internal::Join(std::move(name), options)) {
  (void)Start(loop);
}

BroadcastChannel::BroadcastChannel(BroadcastChannel&& other) noexcept
    : member_(std::move(other.member_)) {}

BroadcastChannel& BroadcastChannel::operator=(BroadcastChannel&& other) noexcept {
  if (this != &other) {
    Close();
    member_ = std::move(other.member_);
  }
  return *this;
}

BroadcastChannel::~BroadcastChannel() { Close(); }

const std::string& BroadcastChannel::name() const {
  static const std::string* const empty = new std::string;
  return member_ == nullptr ? *empty : member_->name;
}

bool BroadcastChannel::closed() const {
  return member_ == nullptr || member_->closed.load(std::memory_order_acquire);
}

absl::Status BroadcastChannel::PostMessage(const Value& message) {
  if (closed()) return absl::FailedPreconditionError("BroadcastChannel closed");
  absl::StatusOr<Value> first = message.Clone();
  if (!first.ok()) {
    return absl::InvalidArgumentError(
        sync_internal::Cat("DataCloneError: ", first.status().message()));
  }
  // Other processes first: a message that cannot leave the process is
  // refused before anyone has it.
  runtime_internal::BroadcastRelay& relay = runtime_internal::BroadcastRelay::Get();
  if (relay.HasLinks()) {
    if (absl::Status s = relay.Forward(member_->name, *first, 0); !s.ok()) return s;
  }
  runtime_internal::DeliverTo(runtime_internal::MembersOf(member_->name, member_.get()),
                              *std::move(first));
  return absl::OkStatus();
}

void BroadcastChannel::OnMessage(std::function<void(Value)> handler) {
  if (member_ == nullptr) return;
  EventLoop* current = EventLoop::Current();
  member_->receiving.SetHandler(std::move(handler));
  if (member_->receiving.loop() == nullptr && member_->receiving.has_handler() &&
      current != nullptr) {
    (void)Start(*current);
    return;
  }
  member_->UpdateRef();
}

absl::Status BroadcastChannel::Start(EventLoop& loop) {
  if (closed()) return absl::FailedPreconditionError("BroadcastChannel closed");
  {
    MutexLock lock(member_->mu);
    if (member_->loop != nullptr) {
      if (member_->loop != &loop) {
        return absl::FailedPreconditionError("BroadcastChannel already has another EventLoop");
      }
      return absl::OkStatus();
    }
    member_->loop = &loop;
  }
  member_->receiving.Start(loop, member_.get(), member_);
  member_->UpdateRef();
  return absl::OkStatus();
}

void BroadcastChannel::OnMessageError(std::function<void(absl::Status)> handler) {
  if (member_ != nullptr) member_->on_message_error = std::move(handler);
}

void BroadcastChannel::Ref() {
  if (member_ == nullptr) return;
  member_->receiving.SetWantRef(true);
  member_->UpdateRef();
}

void BroadcastChannel::Unref() {
  if (member_ == nullptr) return;
  member_->receiving.SetWantRef(false);
  member_->UpdateRef();
}

std::optional<Value> BroadcastChannel::TryReceive() {
  if (member_ == nullptr) return std::nullopt;
  // A gap has no place in TryReceive's answer: skipped (Receive reports it).
  while (std::optional<BroadcastMember::Entry> e = member_->Take()) {
    if (e->dropped == 0) return std::move(e->value);
  }
  return std::nullopt;
}

absl::StatusOr<Value> BroadcastChannel::Receive(absl::Duration timeout) {
  if (member_ == nullptr) return absl::FailedPreconditionError("moved-from BroadcastChannel");
  BroadcastMember& m = *member_;
  const absl::Time deadline =
      timeout == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + timeout;
  const auto answer = [&m](BroadcastMember::Entry e) -> absl::StatusOr<Value> {
    if (e.dropped != 0) return m.GapStatus(e);  // messageerror, in its place
    return std::move(e.value);
  };
  for (;;) {
    if (std::optional<BroadcastMember::Entry> e = m.Take()) return answer(*std::move(e));
    if (closed()) return absl::CancelledError("BroadcastChannel closed");
    const sync_internal::EventCount::Key key = m.ready.PrepareWait();
    if (m.queued.load(std::memory_order_relaxed) != 0 || closed()) {
      m.ready.CancelWait();
      continue;
    }
    if (!m.ready.CommitWaitInterruptible(key, deadline) && absl::Now() >= deadline) {
      if (std::optional<BroadcastMember::Entry> e = m.Take()) return answer(*std::move(e));
      return absl::DeadlineExceededError("no message before the timeout");
    }
  }
}

void BroadcastChannel::Close() {
  if (member_ == nullptr) return;
  BroadcastMember& m = *member_;
  std::deque<BroadcastMember::Entry> dropped;
  {
    MutexLock lock(m.mu);
    if (m.closed.load(std::memory_order_relaxed)) return;
    m.closed.store(true, std::memory_order_release);
    dropped.swap(m.queue);
    m.queued.store(0, std::memory_order_relaxed);
    m.loop = nullptr;
  }
  m.ready.NotifyAll();  // a Receive() returns Cancelled
  {
    runtime_internal::Registry& r = runtime_internal::GetRegistry();
    MutexLock lock(r.mu);
    auto it = r.groups.find(m.name);
    if (it != r.groups.end()) {
      auto& members = it->second;
      members.erase(std::remove(members.begin(), members.end(), member_), members.end());
      if (members.empty()) r.groups.erase(it);
    }
  }
  // A handler may be closing its own channel: the handler and the member
  // survive its return (ReceivingEnd); `member_` may hold the last reference.
  m.receiving.SetHandler(nullptr);
  m.on_message_error = nullptr;
  m.receiving.Stop(&m);
}

}  // namespace wharf

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
  explicit BroadcastMember(std::string n) : name(std::move(n)) {}
  const std::string name;

  Mutex mu;
  std::deque<Value> queue;        // guarded by mu
  EventLoop* loop = nullptr;      // guarded by mu: the senders' copy of receiving.loop()
  std::atomic<size_t> queued{0};  // queue.size(), written under mu
  std::atomic<bool> closed{false};  // set under mu
  EventCount ready{FutexScope::kPrivate, EventCount::Fences::kAsymmetric};

  // Owner / loop thread: OnMessage's handler, the loop, the ref.
  ReceivingEnd receiving;

  bool Pending() override { return queued.load(std::memory_order_relaxed) != 0; }
  bool Deliver() override {
    std::optional<Value> v = Take();
    if (!v.has_value()) return false;
    // A handler may close or destroy its own channel (ReceivingEnd).
    if (receiving.has_handler()) receiving.Deliver(std::move(*v));
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

  std::optional<Value> Take() {
    MutexLock lock(mu);
    if (queue.empty()) return std::nullopt;
    Value v = std::move(queue.front());
    queue.pop_front();
    queued.store(queue.size(), std::memory_order_relaxed);
    return v;
  }

  void Enqueue(Value v) {
    MutexLock lock(mu);
    if (closed.load(std::memory_order_relaxed)) return;  // v dies after unlock
    queue.push_back(std::move(v));
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

std::shared_ptr<BroadcastMember> Join(std::string name) {
  auto m = std::make_shared<BroadcastMember>(std::move(name));
  Registry& r = GetRegistry();
  MutexLock lock(r.mu);
  r.groups[m->name].push_back(m);
  return m;
}

}  // namespace
}  // namespace runtime_internal

using runtime_internal::BroadcastMember;

BroadcastChannel::BroadcastChannel(std::string name)
    : member_(runtime_internal::Join(std::move(name))) {
  if (EventLoop* loop = EventLoop::Current()) (void)Start(*loop);
}

BroadcastChannel::BroadcastChannel(std::string name, EventLoop& loop)
    : member_(runtime_internal::Join(std::move(name))) {
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
  std::vector<std::shared_ptr<BroadcastMember>> targets;
  {
    runtime_internal::Registry& r = runtime_internal::GetRegistry();
    MutexLock lock(r.mu);
    auto it = r.groups.find(member_->name);
    if (it != r.groups.end()) {
      targets.reserve(it->second.size());
      for (const auto& m : it->second) {
        if (m != member_) targets.push_back(m);
      }
    }
  }
  for (size_t i = 0; i < targets.size(); ++i) {
    Value v;
    if (i + 1 == targets.size()) {
      v = *std::move(first);
    } else {
      absl::StatusOr<Value> copy = first->Clone();  // cannot fail: `first` cloned already
      if (!copy.ok()) return copy.status();
      v = *std::move(copy);
    }
    targets[i]->Enqueue(std::move(v));
  }
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
  return member_->Take();
}

absl::StatusOr<Value> BroadcastChannel::Receive(absl::Duration timeout) {
  if (member_ == nullptr) return absl::FailedPreconditionError("moved-from BroadcastChannel");
  BroadcastMember& m = *member_;
  const absl::Time deadline =
      timeout == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + timeout;
  for (;;) {
    if (std::optional<Value> v = m.Take()) return *std::move(v);
    if (closed()) return absl::CancelledError("BroadcastChannel closed");
    const sync_internal::EventCount::Key key = m.ready.PrepareWait();
    if (m.queued.load(std::memory_order_relaxed) != 0 || closed()) {
      m.ready.CancelWait();
      continue;
    }
    if (!m.ready.CommitWaitInterruptible(key, deadline) && absl::Now() >= deadline) {
      if (std::optional<Value> v = m.Take()) return *std::move(v);
      return absl::DeadlineExceededError("no message before the timeout");
    }
  }
}

void BroadcastChannel::Close() {
  if (member_ == nullptr) return;
  BroadcastMember& m = *member_;
  std::deque<Value> dropped;
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
  m.receiving.Stop(&m);
}

}  // namespace wharf

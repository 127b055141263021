#include "wharf/runtime/broadcast_channel.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <exception>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "wharf/sync/interrupt.h"
#include "wharf/sync/mutex.h"

namespace wharf {
namespace runtime_internal {

// One BroadcastChannel object's receiving side. Shared by the object, the
// registry (while open) and the drain tasks queued on its loop, so a delivery
// racing a Close() or a destruction finds it alive and sees `closed`.
struct BroadcastMember {
  explicit BroadcastMember(std::string n) : name(std::move(n)) {}
  const std::string name;

  Mutex mu;
  std::deque<Value> queue;  // guarded by mu: waiting for the drain task
  EventLoop* loop = nullptr;  // guarded by mu (written by the owner only)
  bool scheduled = false;  // guarded by mu: a drain task is queued on `loop`
  std::atomic<bool> closed{false};  // set under mu

  // Owner / loop thread.
  std::function<void(Value)> on_message;
  EventLoop::RefHandle ref;
  bool want_ref = true;
};

namespace {

constexpr int kDrainBatch = 1024;

struct Registry {
  Mutex mu;
  std::unordered_map<std::string, std::vector<std::shared_ptr<BroadcastMember>>> groups;
};

Registry& GetRegistry() {
  static Registry* registry = new Registry;  // never destroyed: safe at exit
  return *registry;
}

void Drain(const std::shared_ptr<BroadcastMember>& m);

// Needs m->mu held.
void ScheduleLocked(const std::shared_ptr<BroadcastMember>& m) {
  if (m->loop == nullptr || m->scheduled || m->queue.empty()) return;
  m->scheduled = true;
  m->loop->Post([m] { Drain(m); });
}

void Drain(const std::shared_ptr<BroadcastMember>& m) {
  // If a handler throws, the loop reports it and goes on: reschedule so the
  // rest is not stranded.
  struct Rescheduler {
    const std::shared_ptr<BroadcastMember>& m;
    int uncaught = std::uncaught_exceptions();
    ~Rescheduler() {
      if (std::uncaught_exceptions() > uncaught) {
        UninterruptibleLock<Mutex> lock(m->mu);
        m->scheduled = false;
        ScheduleLocked(m);
      }
    }
  } rescheduler{m};
  for (int n = 0;; ++n) {
    Value v;
    {
      UninterruptibleLock<Mutex> lock(m->mu);
      if (m->queue.empty() || m->closed.load(std::memory_order_relaxed) || n == kDrainBatch) {
        m->scheduled = false;
        if (n == kDrainBatch) ScheduleLocked(m);  // yield to the loop's other work
        return;
      }
      v = std::move(m->queue.front());
      m->queue.pop_front();
    }
    if (m->on_message) {
      std::function<void(Value)> handler = m->on_message;  // survives its replacement
      handler(std::move(v));
    }
  }
}

void Enqueue(const std::shared_ptr<BroadcastMember>& m, Value v) {
  UninterruptibleLock<Mutex> lock(m->mu);
  if (m->closed.load(std::memory_order_relaxed)) return;  // v dies after unlock
  m->queue.push_back(std::move(v));
  ScheduleLocked(m);
}

std::shared_ptr<BroadcastMember> Join(std::string name, EventLoop* loop) {
  auto m = std::make_shared<BroadcastMember>(std::move(name));
  m->loop = loop;
  Registry& r = GetRegistry();
  UninterruptibleLock<Mutex> lock(r.mu);
  r.groups[m->name].push_back(m);
  return m;
}

}  // namespace
}  // namespace runtime_internal

using runtime_internal::BroadcastMember;

BroadcastChannel::BroadcastChannel(std::string name)
    : member_(runtime_internal::Join(std::move(name), EventLoop::Current())) {}

BroadcastChannel::BroadcastChannel(std::string name, EventLoop& loop)
    : member_(runtime_internal::Join(std::move(name), &loop)) {}

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
        std::string("DataCloneError: ") + std::string(first.status().message()));
  }
  std::vector<std::shared_ptr<BroadcastMember>> targets;
  {
    runtime_internal::Registry& r = runtime_internal::GetRegistry();
    UninterruptibleLock<Mutex> lock(r.mu);
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
    runtime_internal::Enqueue(targets[i], std::move(v));
  }
  return absl::OkStatus();
}

void BroadcastChannel::OnMessage(std::function<void(Value)> handler) {
  if (member_ == nullptr) return;
  member_->on_message = std::move(handler);
  EventLoop* current = EventLoop::Current();
  bool has_loop;
  {
    UninterruptibleLock<Mutex> lock(member_->mu);
    has_loop = member_->loop != nullptr;
  }
  if (!has_loop && member_->on_message && current != nullptr) {
    (void)Start(*current);
    return;
  }
  UpdateRef();
}

absl::Status BroadcastChannel::Start(EventLoop& loop) {
  if (closed()) return absl::FailedPreconditionError("BroadcastChannel closed");
  {
    UninterruptibleLock<Mutex> lock(member_->mu);
    if (member_->loop != nullptr) {
      if (member_->loop != &loop) {
        return absl::FailedPreconditionError("BroadcastChannel already has another EventLoop");
      }
      return absl::OkStatus();
    }
    member_->loop = &loop;
    runtime_internal::ScheduleLocked(member_);
  }
  UpdateRef();
  return absl::OkStatus();
}

void BroadcastChannel::Ref() {
  if (member_ == nullptr) return;
  member_->want_ref = true;
  UpdateRef();
}

void BroadcastChannel::Unref() {
  if (member_ == nullptr) return;
  member_->want_ref = false;
  UpdateRef();
}

void BroadcastChannel::UpdateRef() {
  BroadcastMember& m = *member_;
  EventLoop* loop;
  {
    UninterruptibleLock<Mutex> lock(m.mu);
    loop = m.loop;
  }
  const bool want = loop != nullptr && m.on_message && m.want_ref &&
                    !m.closed.load(std::memory_order_relaxed);
  if (want && m.ref.loop() == nullptr) {
    m.ref = EventLoop::RefHandle(*loop);
  } else if (!want) {
    m.ref.Reset();
  }
}

void BroadcastChannel::Close() {
  if (member_ == nullptr) return;
  BroadcastMember& m = *member_;
  std::deque<Value> dropped;
  {
    UninterruptibleLock<Mutex> lock(m.mu);
    if (m.closed.load(std::memory_order_relaxed)) return;
    m.closed.store(true, std::memory_order_release);
    dropped.swap(m.queue);
  }
  {
    runtime_internal::Registry& r = runtime_internal::GetRegistry();
    UninterruptibleLock<Mutex> lock(r.mu);
    auto it = r.groups.find(m.name);
    if (it != r.groups.end()) {
      auto& members = it->second;
      members.erase(std::remove(members.begin(), members.end(), member_), members.end());
      if (members.empty()) r.groups.erase(it);
    }
  }
  m.ref.Reset();
  m.on_message = nullptr;
}

}  // namespace wharf

#include "wharf/runtime/internal/broadcast_relay.h"

#include <exception>
#include <map>
#include <thread>
#include <utility>

#include "wharf/runtime/internal/port_access.h"
#include "wharf/runtime/internal/shm_channel.h"
#include "wharf/sync/internal/str_cat.h"

namespace wharf::runtime_internal {
namespace {

// The first element of a link record (see the header).
constexpr int64_t kMessageRecord = 0;
constexpr int64_t kGapRecord = 1;

}  // namespace

// One link. Sends come from any thread (posters, and the relay thread
// relaying), serialised by `mu` so that a gap report goes out before the
// message that follows it; receiving belongs to the relay thread. `port` is
// destroyed on the relay thread (Drop), under `mu`, so a sender holding a
// snapshot finds it gone rather than destroyed under it.
struct BroadcastRelay::Link {
  uint64_t id = 0;
  Mutex mu;
  MessagePort port;                       // guarded by mu for sending
  std::map<std::string, uint64_t> gaps;   // guarded by mu: dropped, not yet reported
  bool gone = false;                      // guarded by mu

  // Sends the reports owed; false if one still does not fit.
  bool FlushGapsLocked() {
    while (!gaps.empty()) {
      auto it = gaps.begin();
      Value record = Value::Array(kGapRecord, it->first, static_cast<int64_t>(it->second));
      if (!PortAccess::TryPostNow(port, record).ok()) return false;
      gaps.erase(it);
    }
    return true;
  }
};

BroadcastRelay& BroadcastRelay::Get() {
  static BroadcastRelay* relay = new BroadcastRelay;  // never destroyed: safe at exit
  return *relay;
}

EventLoop& BroadcastRelay::LoopLocked() {
  if (loop_ == nullptr) {
    loop_ = new EventLoop;  // never destroyed, like the relay
    loop_->AddRef();        // Run() serves for the life of the process
    std::thread([loop = loop_] {
      for (;;) {
        try {
          loop->Run();
        } catch (...) {
          // A user's handler cannot run here; nothing of ours throws. Serve on.
        }
      }
    }).detach();
  }
  return *loop_;
}

uint64_t BroadcastRelay::Add(MessagePort port) {
  auto link = std::make_shared<Link>();
  link->port = std::move(port);
  EventLoop* loop;
  {
    MutexLock lock(mu_);
    link->id = next_id_++;
    links_.push_back(link);
    links_now_.store(links_.size(), std::memory_order_relaxed);
    loop = &LoopLocked();
  }
  const uint64_t id = link->id;
  loop->Post([this, link, loop] {
    std::weak_ptr<Link> weak = link;
    link->port.OnMessage([this, weak](Value record) {
      if (std::shared_ptr<Link> from = weak.lock()) OnRecord(from, std::move(record));
    });
    // A damaged record: what it held is unknown, so there is no gap to report.
    link->port.OnMessageError([](absl::Status) {});
    link->port.OnClose([this, loop, id = link->id] { loop->Post([this, id] { Drop(id); }); });
    (void)link->port.Start(*loop);
  });
  return id;
}

void BroadcastRelay::Remove(uint64_t id, absl::Status cause) {
  EventLoop* loop;
  {
    MutexLock lock(mu_);
    if (loop_ == nullptr) return;
    loop = loop_;
  }
  // On the relay thread, after Add's start (the loop runs posts in order):
  // what the process posted is delivered, then OnClose drops the link. The
  // cause is rebuilt there, not shared: a Status's reference count lives in
  // (uninstrumented) Abseil, so TSan could not see its ordering.
  loop->Post([this, id, code = cause.code(), message = std::string(cause.message())] {
    const absl::Status cause(code, message);
    std::shared_ptr<Link> link;
    {
      MutexLock lock(mu_);
      for (const std::shared_ptr<Link>& l : links_) {
        if (l->id == id) link = l;
      }
    }
    if (link == nullptr) return;
    if (ShmChannel* shm = PortAccess::Shm(link->port)) {
      shm->PeerGone(cause);
    } else {
      link->port.Close();
    }
  });
}

void BroadcastRelay::Drop(uint64_t id) {
  std::shared_ptr<Link> link;
  {
    MutexLock lock(mu_);
    for (auto it = links_.begin(); it != links_.end(); ++it) {
      if ((*it)->id == id) {
        link = *it;
        links_.erase(it);
        break;
      }
    }
    links_now_.store(links_.size(), std::memory_order_relaxed);
  }
  if (link == nullptr) return;
  MessagePort port;
  {
    MutexLock lock(link->mu);
    link->gone = true;
    port = std::move(link->port);
  }
  // `port` is destroyed here, on its owner's thread.
}

std::vector<std::shared_ptr<BroadcastRelay::Link>> BroadcastRelay::Snapshot(uint64_t except) {
  std::vector<std::shared_ptr<Link>> out;
  MutexLock lock(mu_);
  out.reserve(links_.size());
  for (const std::shared_ptr<Link>& l : links_) {
    if (l->id != except) out.push_back(l);
  }
  return out;
}

absl::Status BroadcastRelay::Forward(const std::string& name, const Value& message,
                                     uint64_t except) {
  for (const std::shared_ptr<Link>& l : Snapshot(except)) {
    MutexLock lock(l->mu);
    if (l->gone) continue;
    if (!l->FlushGapsLocked()) {
      ++l->gaps[name];  // after an unreported gap nothing may overtake it
      continue;
    }
    absl::StatusOr<Value> copy = message.Clone();  // the send consumes its message
    if (!copy.ok()) {
      return absl::InvalidArgumentError(
          sync_internal::Cat("DataCloneError: ", copy.status().message()));
    }
    Value record = Value::Array(kMessageRecord, name, *std::move(copy));
    absl::Status sent = PortAccess::TryPostNow(l->port, record);
    if (sent.ok()) continue;
    if (sent.code() == absl::StatusCode::kInvalidArgument) return sent;  // cannot be encoded
    if (sent.code() == absl::StatusCode::kResourceExhausted) ++l->gaps[name];
    // FailedPrecondition: the link is closing (its process ended); it leaves.
  }
  return absl::OkStatus();
}

void BroadcastRelay::ForwardGap(const std::string& name, uint64_t count, uint64_t except) {
  for (const std::shared_ptr<Link>& l : Snapshot(except)) {
    MutexLock lock(l->mu);
    if (l->gone) continue;
    l->gaps[name] += count;
    (void)l->FlushGapsLocked();
  }
}

void BroadcastRelay::OnRecord(const std::shared_ptr<Link>& from, Value record) {
  ValueArray* fields = record.GetArray();
  // Anything else is not a record of ours (the link carries nothing else).
  if (fields == nullptr || fields->size() != 3 || !(*fields)[0].IsInt() ||
      !(*fields)[1].IsString()) {
    return;
  }
  const int64_t kind = *(*fields)[0].AsInt();
  const std::string name = *(*fields)[1].GetString();
  if (kind == kMessageRecord) {
    (void)Forward(name, (*fields)[2], from->id);
    DeliverToLocalChannels(name, std::move((*fields)[2]));
  } else if (kind == kGapRecord) {
    absl::StatusOr<int64_t> count = (*fields)[2].AsInt();
    if (!count.ok() || *count <= 0) return;
    ForwardGap(name, static_cast<uint64_t>(*count), from->id);
    ReportGapToLocalChannels(name, static_cast<uint64_t>(*count));
  }
}

}  // namespace wharf::runtime_internal

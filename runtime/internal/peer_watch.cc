#include "wharf/runtime/internal/peer_watch.h"

#include <algorithm>
#include <thread>
#include <vector>

#include "wharf/runtime/internal/shm_channel.h"
#include "wharf/sync/cond_var.h"
#include "wharf/sync/mutex.h"

namespace wharf::runtime_internal {
namespace {

struct Registry {
  Mutex mu;
  CondVar changed;
  std::vector<ShmChannel*> channels;  // guarded by mu
  bool thread_started = false;        // guarded by mu
};

Registry& GetRegistry() {
  static Registry* r = new Registry;  // never destroyed: its thread may run at exit
  return *r;
}

// The checks run under the registry's lock, so Remove (from a channel's
// destructor) cannot return while its channel is being looked at.
void WatchLoop() {
  Registry& r = GetRegistry();
  MutexLock lock(r.mu);
  for (;;) {
    while (r.channels.empty()) (void)r.changed.Wait(r.mu);
    for (ShmChannel* c : r.channels) c->CheckPeer();
    (void)r.changed.WaitFor(r.mu, PeerWatch::kCheckPeriod);
  }
}

}  // namespace

void PeerWatch::Add(ShmChannel* channel) {
  Registry& r = GetRegistry();
  MutexLock lock(r.mu);
  r.channels.push_back(channel);
  if (!r.thread_started) {
    r.thread_started = true;
    std::thread(WatchLoop).detach();
  }
  r.changed.Signal();
}

void PeerWatch::Remove(ShmChannel* channel) {
  Registry& r = GetRegistry();
  MutexLock lock(r.mu);
  r.channels.erase(std::remove(r.channels.begin(), r.channels.end(), channel), r.channels.end());
}

}  // namespace wharf::runtime_internal

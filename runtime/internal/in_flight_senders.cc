#include "wharf/runtime/internal/in_flight_senders.h"

#include <sched.h>

#include "wharf/sync/internal/spin.h"

namespace wharf::runtime_internal {

namespace {

std::atomic<InFlightSenders::Record*> head{nullptr};

// Gives the thread's record back when the thread exits.
struct Releaser {
  InFlightSenders::Record* record = nullptr;
  ~Releaser();
};
thread_local Releaser releaser;

}  // namespace

thread_local InFlightSenders::Record* InFlightSenders::tls_record_ = nullptr;

void InFlightSenders::Release() {
  if (tls_record_ != nullptr) tls_record_->in_use.store(false, std::memory_order_release);
  // A send from a later thread_local destructor takes a fresh record (never
  // this one, which another thread may own by then).
  tls_record_ = nullptr;
}

Releaser::~Releaser() { InFlightSenders::Release(); }

InFlightSenders::Record* InFlightSenders::Acquire() {
  Record* r = nullptr;
  for (Record* it = head.load(std::memory_order_acquire); it != nullptr; it = it->next) {
    bool expected = false;
    if (!it->in_use.load(std::memory_order_relaxed) &&
        it->in_use.compare_exchange_strong(expected, true, std::memory_order_acquire)) {
      r = it;
      break;
    }
  }
  if (r == nullptr) {
    r = new Record;  // never freed: AnyIn may be walking the list
    r->in_use.store(true, std::memory_order_relaxed);
    Record* old = head.load(std::memory_order_relaxed);
    do {
      r->next = old;
    } while (!head.compare_exchange_weak(old, r, std::memory_order_release,
                                         std::memory_order_relaxed));
  }
  tls_record_ = r;
  releaser.record = r;  // odr-use: registers the thread-exit destructor
  return r;
}

void InFlightSenders::WaitForLeavers(const void* queue) {
  struct Seen {
    Record* record;
    uint32_t entries;
  };
  // A handful at a time (a window is a few instructions: they rarely wait).
  for (Record* it = head.load(std::memory_order_acquire); it != nullptr; it = it->next) {
    if (it->target.load(std::memory_order_acquire) != queue) continue;
    const Seen seen{it, it->entries.load(std::memory_order_relaxed)};
    for (int spins = 0; seen.record->target.load(std::memory_order_acquire) == queue &&
                        seen.record->entries.load(std::memory_order_relaxed) == seen.entries;
         ++spins) {
      if (spins < 1000) {
        sync_internal::CpuRelax();
      } else {
        sched_yield();  // a sender preempted inside its window
      }
    }
  }
}

bool InFlightSenders::AnyIn(const void* queue) {
  for (Record* it = head.load(std::memory_order_acquire); it != nullptr; it = it->next) {
    if (it->target.load(std::memory_order_acquire) == queue) return true;
  }
  return false;
}

}  // namespace wharf::runtime_internal

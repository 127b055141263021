// Mutex microbenchmarks: wharf::Mutex next to its peers, in one binary.
//
//   BM_Mutex_Uncontended/<peer>  one thread: lock(); unlock();
//   BM_Mutex_Contended/<peer>    two threads on one mutex, each op:
//                                lock(); ++shared_counter; unlock();
//                                time is wall time per op over both threads;
//                                thread i is pinned to CPU i (bench/ping_pong.h);
//                                handoffs_per_kop: how often the lock changed
//                                hands, per 1000 ops.
//
// Peers: wharf::Mutex (always robust and process-shared) through the standard
// lock()/unlock() that std::scoped_lock calls ("wharf") and through the inline
// Lock()/Unlock() ("wharf_Lock"); std::mutex; pthread_mutex_t default;
// pthread_mutex_t robust + PTHREAD_PROCESS_SHARED (the like-for-like peer);
// absl::Mutex; boost::interprocess::interprocess_mutex.
//
// The process starts one thread before any benchmark (see `registered`).
//
// Results and commands: docs/benchmarks.md.

#include <pthread.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "benchmark/benchmark.h"
#include "bench/ping_pong.h"
#include "bench/pthread_robust_mutex.h"
#include "boost/interprocess/sync/interprocess_mutex.hpp"
#include "wharf/sync/mutex.h"

namespace {

// --- Adapters: each exposes lock()/unlock() -------------------------------

struct WharfStd {
  static constexpr const char* kName = "wharf";
  wharf::Mutex mu;
  void lock() { mu.lock(); }
  void unlock() { mu.unlock(); }
};

struct WharfInline {
  static constexpr const char* kName = "wharf_Lock";
  wharf::Mutex mu;
  void lock() {
    if (mu.Lock() != wharf::LockResult::kOk) std::abort();
  }
  void unlock() { mu.Unlock(); }
};

struct Std {
  static constexpr const char* kName = "std";
  std::mutex mu;
  void lock() { mu.lock(); }
  void unlock() { mu.unlock(); }
};

struct PthreadDefault {
  static constexpr const char* kName = "pthread";
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  void lock() { pthread_mutex_lock(&mu); }
  void unlock() { pthread_mutex_unlock(&mu); }
};

struct PthreadRobustShared : wharf::bench::PthreadRobustMutex {
  static constexpr const char* kName = "pthread_robust_pshared";
};

struct Absl {
  static constexpr const char* kName = "absl";
  absl::Mutex mu;
  void lock() { mu.Lock(); }
  void unlock() { mu.Unlock(); }
};

struct BoostInterprocess {
  static constexpr const char* kName = "boost_interprocess";
  boost::interprocess::interprocess_mutex mu;
  void lock() { mu.lock(); }
  void unlock() { mu.unlock(); }
};

// --- Benchmarks ------------------------------------------------------------

template <class M>
void BM_Mutex_Uncontended(benchmark::State& state) {
  static M m;
  for (auto _ : state) {
    m.lock();
    benchmark::ClobberMemory();
    m.unlock();
  }
}

// The mutex and the counter it protects, on separate cache lines.
template <class M>
struct Contended {
  alignas(64) M m;
  alignas(64) uint64_t counter = 0;
  int last_thread = -1;  // who ran the critical section last
  uint64_t handoffs = 0;  // critical sections run by another thread than the last
};

template <class M>
void BM_Mutex_Contended(benchmark::State& state) {
  static Contended<M> shared;  // both benchmark threads use this one
  const int me = state.thread_index();
  // One thread per CPU: left to the scheduler on this 2-CPU machine, the two
  // threads sometimes share a CPU, the lock is then almost never contended,
  // and the result flips between two modes from run to run.
  const wharf_bench::ScopedPinToCpu pin(me);
  if (me == 0) shared.handoffs = 0;  // before the start barrier of the loop
  for (auto _ : state) {
    shared.m.lock();
    ++shared.counter;
    if (shared.last_thread != me) {
      shared.last_thread = me;
      ++shared.handoffs;
    }
    benchmark::ClobberMemory();
    shared.m.unlock();
  }
  // How often the lock changed hands: a fair lock hands off on most ops and
  // pays a cache-line transfer each time; an unfair one lets the running
  // thread re-take it while the other sleeps.
  if (me == 0) {
    // Both threads run the same number of iterations, but thread 1 may not
    // have finished its last few: an approximate count, read under the lock.
    shared.m.lock();
    const double handoffs = static_cast<double>(shared.handoffs);
    shared.m.unlock();
    state.counters["handoffs_per_kop"] = benchmark::Counter(
        handoffs * 1000.0 / (2.0 * static_cast<double>(state.iterations())));
  }
}

template <class M>
void RegisterUncontended() {
  benchmark::RegisterBenchmark(
      (std::string("BM_Mutex_Uncontended/") + M::kName).c_str(),
      BM_Mutex_Uncontended<M>)
      ->MinTime(0.2);
}

template <class M>
void RegisterContended() {
  benchmark::RegisterBenchmark(
      (std::string("BM_Mutex_Contended/") + M::kName).c_str(),
      BM_Mutex_Contended<M>)
      ->Threads(2)
      ->UseRealTime()
      ->MinTime(0.3);
}

template <class... Ms>
void RegisterAll() {
  (RegisterUncontended<Ms>(), ...);
  (RegisterContended<Ms>(), ...);
}

const bool registered = [] {
  // glibc drops the lock prefix from pthread mutexes (so std::mutex) while the
  // process has never started a thread (__libc_single_threaded): uncontended
  // std::mutex would measure ~4 ns instead of what any program that needs a
  // mutex pays. Start and join one thread first so every peer runs as in a
  // multi-threaded program. (The flag never goes back to true.)
  std::thread([] {}).join();
  // Debian's libabsl is built without NDEBUG, so absl::Mutex runs its
  // deadlock detector on every Lock() (46 ns instead of 14 uncontended).
  // Measure absl as its release builds ship: detection off.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  RegisterAll<WharfStd, WharfInline, Std, PthreadDefault, PthreadRobustShared,
              Absl, BoostInterprocess>();
  return true;
}();

}  // namespace

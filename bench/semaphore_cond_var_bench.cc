// Semaphore and CondVar hand-off microbenchmarks, wharf next to its peers.
//
//   BM_SemaphorePingPong_{Threads,Processes}/<peer>
//       two semaphores at 0: ping releases `ping` and acquires `pong`; pong
//       acquires `ping` and releases `pong`. One iteration = one round trip.
//   BM_CondVarPingPong_{Threads,Processes}/<peer>
//       one mutex, one condition variable and a turn flag: ping sets turn = 1
//       and notifies under the mutex, then waits for turn == 0; pong mirrors
//       it. One iteration = one round trip.
//
// Peers: wharf::Semaphore vs std::counting_semaphore (libstdc++: an atomic
// wait with a short spin) and POSIX sem_t (pshared = 1); wharf::Mutex +
// wharf::CondVar vs std::mutex + std::condition_variable, pthread robust +
// process-shared mutex + process-shared pthread_cond_t (the like-for-like
// peer: glibc's condvar over a lock of the same guarantees), and absl::Mutex
// + absl::CondVar. Between processes only the process-shared peers run (std's
// futexes are private and never wake another process; absl has no
// process-shared mode).
//
// Ping and pong are pinned to two CPUs and the process ping-pong forks;
// see bench/ping_pong.h. Results and commands: docs/benchmarks.md.

#include <pthread.h>
#include <semaphore.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <semaphore>
#include <string>

#include "absl/synchronization/mutex.h"
#include "benchmark/benchmark.h"
#include "bench/ping_pong.h"
#include "bench/pthread_robust_mutex.h"
#include "wharf/sync/cond_var.h"
#include "wharf/sync/mutex.h"
#include "wharf/sync/semaphore.h"

namespace {

// --- Semaphores: each peer has acquire() / release() ------------------------

struct WharfSemaphore {
  static std::string Name() { return "wharf"; }
  wharf::Semaphore sem{0};
  void acquire() { sem.acquire(); }
  void release() { sem.release(); }
};

struct StdSemaphore {
  static std::string Name() { return "std"; }
  std::counting_semaphore<> sem{0};
  void acquire() { sem.acquire(); }
  void release() { sem.release(); }
};

struct PosixSemaphore {
  static std::string Name() { return "posix_sem_pshared"; }
  sem_t sem;
  PosixSemaphore() {
    if (sem_init(&sem, /*pshared=*/1, 0) != 0) std::abort();
  }
  ~PosixSemaphore() { sem_destroy(&sem); }
  void acquire() {
    while (sem_wait(&sem) != 0) {
    }
  }
  void release() { sem_post(&sem); }
};

template <class S>
struct SemaphoreShared {
  alignas(64) S ping;
  alignas(64) S pong;
  alignas(64) int32_t stop = 0;
  int64_t echoes = 0;  // written by pong only, read by ping after the end
  alignas(64) int32_t pong_ready = 0;
};

template <class S>
void SemaphorePing(benchmark::State& state, SemaphoreShared<S>& s) {
  for (auto _ : state) {
    s.ping.release();
    s.pong.acquire();
  }
  std::atomic_ref<int32_t>(s.stop).store(1);
  s.ping.release();
  // Every round trip must have gone through pong (a semaphore that let an
  // acquire through without a permit would show here).
  s.pong.acquire();
  if (std::atomic_ref<int64_t>(s.echoes).load() != state.iterations()) {
    state.SkipWithError("pong's echoes do not match the iterations");
  }
}

template <class S>
void SemaphorePong(SemaphoreShared<S>& s) {
  for (;;) {
    s.ping.acquire();
    if (std::atomic_ref<int32_t>(s.stop).load() != 0) {
      s.pong.release();  // the final handshake: ping checks `echoes` after it
      return;
    }
    std::atomic_ref<int64_t>(s.echoes).fetch_add(1, std::memory_order_relaxed);
    s.pong.release();
  }
}

template <class S>
void BM_SemaphorePingPong_Threads(benchmark::State& state) {
  wharf_bench::PingPongThreads<SemaphoreShared<S>>(state, SemaphorePing<S>,
                                                   SemaphorePong<S>);
}

template <class S>
void BM_SemaphorePingPong_Processes(benchmark::State& state) {
  wharf_bench::PingPongProcesses<SemaphoreShared<S>>(state, SemaphorePing<S>,
                                                     SemaphorePong<S>);
}

// --- Condition variables: each peer has a Mutex (Lockable) and a CondVar
// with wait(std::unique_lock<Mutex>&, pred) and notify_one() ----------------

struct WharfCondVar {
  static std::string Name() { return "wharf"; }
  using Mutex = wharf::Mutex;
  using CondVar = wharf::CondVar;
};

struct StdCondVar {
  static std::string Name() { return "std"; }
  using Mutex = std::mutex;
  using CondVar = std::condition_variable;
};

struct PthreadCondVar {
  static std::string Name() { return "pthread_robust_pshared"; }
  using Mutex = wharf::bench::PthreadRobustMutex;

  struct CondVar {
    pthread_cond_t cv;
    CondVar() {
      pthread_condattr_t attr;
      pthread_condattr_init(&attr);
      pthread_condattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
      if (pthread_cond_init(&cv, &attr) != 0) std::abort();
      pthread_condattr_destroy(&attr);
    }
    ~CondVar() { pthread_cond_destroy(&cv); }
    template <class Pred>
    void wait(std::unique_lock<Mutex>& lock, Pred pred) {
      while (!pred()) {
        if (pthread_cond_wait(&cv, &lock.mutex()->mu) != 0) std::abort();
      }
    }
    void notify_one() { pthread_cond_signal(&cv); }
  };
};

struct AbslCondVar {
  static std::string Name() { return "absl"; }
  struct Mutex {
    absl::Mutex mu;
    void lock() { mu.Lock(); }
    void unlock() { mu.Unlock(); }
  };
  struct CondVar {
    absl::CondVar cv;
    template <class Pred>
    void wait(std::unique_lock<Mutex>& lock, Pred pred) {
      while (!pred()) cv.Wait(&lock.mutex()->mu);
    }
    void notify_one() { cv.Signal(); }
  };
};

template <class P>
struct CondVarShared {
  alignas(64) typename P::Mutex mu;
  alignas(64) typename P::CondVar cv;
  int32_t turn = 0;  // 1: pong's turn, 0: ping's; guarded by mu
  bool stop = false;  // guarded by mu
  int64_t echoes = 0;  // guarded by mu
  alignas(64) int32_t pong_ready = 0;
};

template <class P>
void CondVarPing(benchmark::State& state, CondVarShared<P>& s) {
  for (auto _ : state) {
    std::unique_lock<typename P::Mutex> lock(s.mu);
    s.turn = 1;
    s.cv.notify_one();
    s.cv.wait(lock, [&s] { return s.turn == 0; });
  }
  std::unique_lock<typename P::Mutex> lock(s.mu);
  if (s.echoes != static_cast<int64_t>(state.iterations())) {
    state.SkipWithError("pong's echoes do not match the iterations");
  }
  s.stop = true;
  s.turn = 1;
  s.cv.notify_one();
}

template <class P>
void CondVarPong(CondVarShared<P>& s) {
  std::unique_lock<typename P::Mutex> lock(s.mu);
  for (;;) {
    s.cv.wait(lock, [&s] { return s.turn == 1; });
    if (s.stop) return;
    ++s.echoes;
    s.turn = 0;
    s.cv.notify_one();
  }
}

template <class P>
void BM_CondVarPingPong_Threads(benchmark::State& state) {
  wharf_bench::PingPongThreads<CondVarShared<P>>(state, CondVarPing<P>, CondVarPong<P>);
}

template <class P>
void BM_CondVarPingPong_Processes(benchmark::State& state) {
  wharf_bench::PingPongProcesses<CondVarShared<P>>(state, CondVarPing<P>,
                                                   CondVarPong<P>);
}

// --- Registration: peers next to each other ---------------------------------

template <class P>
void Register(const char* family, void (*fn)(benchmark::State&)) {
  benchmark::RegisterBenchmark((std::string(family) + "/" + P::Name()).c_str(), fn)
      ->UseRealTime()
      ->MinTime(0.2);
}

const bool registered = [] {
  // Debian's libabsl is built without NDEBUG: absl::Mutex would run its
  // deadlock detector on every Lock(). Measure it as release builds ship.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  Register<WharfSemaphore>("BM_SemaphorePingPong_Threads",
                           BM_SemaphorePingPong_Threads<WharfSemaphore>);
  Register<StdSemaphore>("BM_SemaphorePingPong_Threads",
                         BM_SemaphorePingPong_Threads<StdSemaphore>);
  Register<PosixSemaphore>("BM_SemaphorePingPong_Threads",
                           BM_SemaphorePingPong_Threads<PosixSemaphore>);
  Register<WharfSemaphore>("BM_SemaphorePingPong_Processes",
                           BM_SemaphorePingPong_Processes<WharfSemaphore>);
  Register<PosixSemaphore>("BM_SemaphorePingPong_Processes",
                           BM_SemaphorePingPong_Processes<PosixSemaphore>);

  Register<WharfCondVar>("BM_CondVarPingPong_Threads",
                         BM_CondVarPingPong_Threads<WharfCondVar>);
  Register<StdCondVar>("BM_CondVarPingPong_Threads", BM_CondVarPingPong_Threads<StdCondVar>);
  Register<PthreadCondVar>("BM_CondVarPingPong_Threads",
                           BM_CondVarPingPong_Threads<PthreadCondVar>);
  Register<AbslCondVar>("BM_CondVarPingPong_Threads",
                        BM_CondVarPingPong_Threads<AbslCondVar>);
  Register<WharfCondVar>("BM_CondVarPingPong_Processes",
                         BM_CondVarPingPong_Processes<WharfCondVar>);
  Register<PthreadCondVar>("BM_CondVarPingPong_Processes",
                           BM_CondVarPingPong_Processes<PthreadCondVar>);
  return true;
}();

}  // namespace

// wharf::atomics::Wait/Notify microbenchmarks, with their floors in the same
// binary.
//
//   BM_PingPong_Threads/<peer>    one iteration = one round trip between two
//                                 threads: ping stores i and wakes pong; pong
//                                 stores i back and wakes ping.
//   BM_PingPong_Processes/<peer>  the same between two processes over a
//                                 MAP_SHARED|MAP_ANONYMOUS mapping made before
//                                 fork(); the child plays pong and _exit()s.
//   BM_IdleWaiter/<peer>          Wait(cell, expected, 100 ms, {.spin}) on a
//                                 cell nobody touches; reports the CPU time
//                                 the waiting thread used (CLOCK_THREAD_CPUTIME_ID)
//                                 next to a raw timed FUTEX_WAIT's.
//
// Peers: wharf plain (JS semantics: sleep at once), wharf with
// WaitOptions::spin of 2, 10 and 50 µs, a raw futex loop written here
// (FUTEX_WAIT/FUTEX_WAKE in shared scope, as wharf uses, and private scope as
// the threads-only floor), C++20 std::atomic::wait/notify_one (threads only:
// libstdc++ uses private futexes, which never wake another process), a pure
// spin (the physical floor: no syscall at all), and `announce_spin10us`: not a
// Wharf API, but what the same 10 µs spin costs when the waiter counts itself
// before sleeping so that the notifier can skip the futex wake (see
// WharfSpinAnnounce) — the gap between it and wharf_spin10us is the price of
// atomics::Notify's unconditional syscall.
//
// Every benchmark stops its partner in teardown (ping stores kStop and
// wakes). Placement of ping and pong, and the fork: bench/ping_pong.h.
// Results and commands: docs/benchmarks.md.

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <thread>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "bench/ping_pong.h"
#include "wharf/sync/atomics.h"
#include "wharf/sync/internal/spin.h"

namespace {

namespace atomics = wharf::atomics;

constexpr int32_t kStop = -1;  // ping's value that tells pong to exit

// One direction of a ping-pong: the cell, and a count of announced sleepers
// that only the `announce` peer uses. Alone on its cache line.
struct alignas(64) Word {
  int32_t value = 0;
  int32_t waiters = 0;
};

// The cells of a ping-pong. Plain data, so it can live in a shared mapping.
struct PingPongCells {
  Word ping;  // value written by ping only
  Word pong;  // value written by pong only
  alignas(64) std::atomic<int32_t> std_ping{0};  // the std::atomic peer's cells
  alignas(64) std::atomic<int32_t> std_pong{0};
  alignas(64) int32_t pong_ready = 0;  // pong has taken its CPU
};

// --- Peers. Each has Signal(cell, value): publish and wake, and
// WaitChange(cell, old): return once the cell no longer holds `old`. -------

struct WharfPlain {
  static std::string Name() { return "wharf"; }
  static void Signal(Word& w, int32_t v) {
    atomics::Store(w.value, v);
    atomics::Notify(w.value, 1);
  }
  static void WaitChange(Word& w, int32_t old) {
    while (atomics::Load(w.value) == old) (void)atomics::Wait(w.value, old);
  }
};

template <int kSpinMicros>
struct WharfSpin {
  static std::string Name() { return "wharf_spin" + std::to_string(kSpinMicros) + "us"; }
  static void Signal(Word& w, int32_t v) {
    atomics::Store(w.value, v);
    atomics::Notify(w.value, 1);
  }
  static void WaitChange(Word& w, int32_t old) {
    const wharf::WaitOptions options{.spin = absl::Microseconds(kSpinMicros)};
    while (atomics::Load(w.value) == old) {
      (void)atomics::Wait(w.value, old, absl::InfiniteDuration(), options);
    }
  }
};

// Threads only: private scope lets Notify skip its syscall when nobody sleeps
// (sync/internal/private_waiters.h), so a spinning waiter costs the notifier
// nothing either.
template <int kSpinMicros>
struct WharfPrivateSpin {
  static std::string Name() {
    return "wharf_private_spin" + std::to_string(kSpinMicros) + "us";
  }
  static void Signal(Word& w, int32_t v) {
    atomics::Store(w.value, v);
    atomics::Notify(w.value, 1, wharf::FutexScope::kPrivate);
  }
  static void WaitChange(Word& w, int32_t old) {
    const wharf::WaitOptions options{.spin = absl::Microseconds(kSpinMicros),
                                     .scope = wharf::FutexScope::kPrivate};
    while (atomics::Load(w.value) == old) {
      (void)atomics::Wait(w.value, old, absl::InfiniteDuration(), options);
    }
  }
};

template <bool kPrivate>
struct RawFutex {
  static std::string Name() { return kPrivate ? "raw_futex_private" : "raw_futex"; }
  static constexpr int kFlag = kPrivate ? FUTEX_PRIVATE_FLAG : 0;
  static void Signal(Word& w, int32_t v) {
    std::atomic_ref<int32_t>(w.value).store(v, std::memory_order_seq_cst);
    syscall(SYS_futex, &w.value, FUTEX_WAKE | kFlag, 1, nullptr, nullptr, 0);
  }
  static void WaitChange(Word& w, int32_t old) {
    while (std::atomic_ref<int32_t>(w.value).load(std::memory_order_seq_cst) == old) {
      syscall(SYS_futex, &w.value, FUTEX_WAIT | kFlag, old, nullptr, nullptr, 0);
    }
  }
};

struct PureSpin {
  static std::string Name() { return "pure_spin"; }
  static void Signal(Word& w, int32_t v) {
    std::atomic_ref<int32_t>(w.value).store(v, std::memory_order_release);
  }
  static void WaitChange(Word& w, int32_t old) {
    while (std::atomic_ref<int32_t>(w.value).load(std::memory_order_acquire) == old) {
      wharf::sync_internal::CpuRelax();
    }
  }
};

// Not a Wharf API: what a waiter that announces itself would cost. The waiter
// spins like WaitOptions::spin, then counts itself in `waiters` before
// sleeping, so the notifier calls futex wake only when someone sleeps (the
// event-count rule of ALGORITHMS.md); atomics::Notify cannot skip the syscall
// because a bare cell has no room for that count.
//   A (waiter): waiters += 1 (seq_cst), then load value (seq_cst). Matches B.
//   B (notifier): store value (seq_cst), then load waiters (seq_cst). Matches A.
// Either the waiter sees the new value and does not sleep, or the notifier
// sees the count and wakes it.
template <int kSpinMicros>
struct WharfSpinAnnounce {
  static std::string Name() {
    return "announce_spin" + std::to_string(kSpinMicros) + "us";
  }
  static void Signal(Word& w, int32_t v) {
    atomics::Store(w.value, v);                                  // B
    if (atomics::Load(w.waiters) != 0) atomics::Notify(w.value, 1);
  }
  static void WaitChange(Word& w, int32_t old) {
    const absl::Time spin_end = absl::Now() + absl::Microseconds(kSpinMicros);
    do {
      for (int i = 0; i < 64; ++i) {
        wharf::sync_internal::CpuRelax();
        if (atomics::Load(w.value) != old) return;
      }
    } while (absl::Now() < spin_end);
    while (atomics::Load(w.value) == old) {
      atomics::Add(w.waiters, 1);                                // A
      if (atomics::Load(w.value) == old) (void)atomics::Wait(w.value, old);
      atomics::Sub(w.waiters, 1);
    }
  }
};

// std::atomic<int32_t>::wait / notify_one. Uses its own cells (std::atomic,
// not atomic_ref), mapped onto the same interface.
struct StdAtomicWait {
  static std::string Name() { return "std_atomic_wait"; }
};

// The pong side: echo every ping until kStop.
template <class P>
void Pong(PingPongCells& c) {
  int32_t seen = 0;
  for (;;) {
    P::WaitChange(c.ping, seen);
    seen = atomics::Load(c.ping.value);
    if (seen == kStop) return;
    P::Signal(c.pong, seen);
  }
}

template <>
void Pong<StdAtomicWait>(PingPongCells& c) {
  int32_t seen = 0;
  for (;;) {
    c.std_ping.wait(seen);
    seen = c.std_ping.load();
    if (seen == kStop) return;
    c.std_pong.store(seen);
    c.std_pong.notify_one();
  }
}

// The ping side: one round trip per iteration.
template <class P>
void PingLoop(benchmark::State& state, PingPongCells& c) {
  int32_t i = 0;
  for (auto _ : state) {
    ++i;
    P::Signal(c.ping, i);
    P::WaitChange(c.pong, i - 1);
  }
  P::Signal(c.ping, kStop);
}

template <>
void PingLoop<StdAtomicWait>(benchmark::State& state, PingPongCells& c) {
  int32_t i = 0;
  for (auto _ : state) {
    ++i;
    c.std_ping.store(i);
    c.std_ping.notify_one();
    c.std_pong.wait(i - 1);
  }
  c.std_ping.store(kStop);
  c.std_ping.notify_one();
}

template <class P>
void BM_PingPong_Threads(benchmark::State& state) {
  wharf_bench::PingPongThreads<PingPongCells>(state, PingLoop<P>, Pong<P>);
}

template <class P>
void BM_PingPong_Processes(benchmark::State& state) {
  wharf_bench::PingPongProcesses<PingPongCells>(state, PingLoop<P>, Pong<P>);
}

// --- Idle waiter -----------------------------------------------------------

double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// A waiter nobody notifies: it should cost its spin once, then nothing but
// the sleep itself. `raw_futex` is the floor: the same 100 ms as a raw
// FUTEX_WAIT with a relative timeout (what going to sleep and being woken by
// the timer costs the thread on this VM, with no spin).
constexpr absl::Duration kIdleTimeout = absl::Milliseconds(100);

void ReportIdle(benchmark::State& state, double cpu_seconds) {
  const double waits = static_cast<double>(state.iterations());
  state.counters["cpu_us_per_100ms"] = benchmark::Counter(cpu_seconds * 1e6 / waits);
  state.counters["idle_cpu_pct"] = benchmark::Counter(
      100.0 * cpu_seconds / (waits * absl::ToDoubleSeconds(kIdleTimeout)));
}

void BM_IdleWaiter_Wharf(benchmark::State& state, int spin_us) {
  const wharf::WaitOptions options{.spin = absl::Microseconds(spin_us)};
  alignas(64) int32_t cell = 0;
  double cpu = 0;
  for (auto _ : state) {
    const double start = ThreadCpuSeconds();
    const wharf::WaitResult r = atomics::Wait(cell, 0, kIdleTimeout, options);
    cpu += ThreadCpuSeconds() - start;
    if (r != wharf::WaitResult::kTimedOut) state.SkipWithError("woken without a notify");
  }
  ReportIdle(state, cpu);
}

void BM_IdleWaiter_RawFutex(benchmark::State& state) {
  alignas(64) int32_t cell = 0;
  const timespec timeout = absl::ToTimespec(kIdleTimeout);
  double cpu = 0;
  for (auto _ : state) {
    const double start = ThreadCpuSeconds();
    syscall(SYS_futex, &cell, FUTEX_WAIT, 0, &timeout, nullptr, 0);
    cpu += ThreadCpuSeconds() - start;
  }
  ReportIdle(state, cpu);
}

// --- Registration: peers next to each other --------------------------------

template <class P>
void RegisterThreads() {
  benchmark::RegisterBenchmark(
      (std::string("BM_PingPong_Threads/") + P::Name()).c_str(), BM_PingPong_Threads<P>)
      ->UseRealTime()
      ->MinTime(0.2);
}

template <class P>
void RegisterProcesses() {
  benchmark::RegisterBenchmark(
      (std::string("BM_PingPong_Processes/") + P::Name()).c_str(),
      BM_PingPong_Processes<P>)
      ->UseRealTime()
      ->MinTime(0.2);
}

const bool registered = [] {
  RegisterThreads<WharfPlain>();
  RegisterThreads<RawFutex<false>>();
  RegisterThreads<RawFutex<true>>();
  RegisterThreads<StdAtomicWait>();
  RegisterThreads<WharfSpin<2>>();
  RegisterThreads<WharfSpin<10>>();
  RegisterThreads<WharfSpin<50>>();
  RegisterThreads<WharfPrivateSpin<0>>();
  RegisterThreads<WharfPrivateSpin<10>>();
  RegisterThreads<PureSpin>();
  RegisterThreads<WharfSpinAnnounce<10>>();

  RegisterProcesses<WharfPlain>();
  RegisterProcesses<RawFutex<false>>();
  RegisterProcesses<WharfSpin<2>>();
  RegisterProcesses<WharfSpin<10>>();
  RegisterProcesses<WharfSpin<50>>();
  RegisterProcesses<PureSpin>();
  RegisterProcesses<WharfSpinAnnounce<10>>();

  benchmark::RegisterBenchmark("BM_IdleWaiter/raw_futex", BM_IdleWaiter_RawFutex)
      ->Iterations(5)
      ->UseRealTime();
  for (int spin_us : {0, 2, 10, 50}) {
    benchmark::RegisterBenchmark(
        ("BM_IdleWaiter/wharf_spin" + std::to_string(spin_us) + "us").c_str(),
        BM_IdleWaiter_Wharf, spin_us)
        ->Iterations(5)
        ->UseRealTime();
  }
  return true;
}();

}  // namespace

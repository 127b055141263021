// Harness for ping-pong benchmarks: one side (ping) runs the benchmark loop on
// Google Benchmark's thread, its partner (pong) runs on a second thread or in
// a forked child process, and both share one plain `Shared` object.
//
//   struct Shared { ...; alignas(64) int32_t pong_ready = 0; };
//   void Ping(benchmark::State&, Shared&);  // the timed loop; it must make
//                                           // Pong return before it returns
//   void Pong(Shared&);                     // echoes until told to stop
//   wharf_bench::PingPongThreads<Shared>(state, Ping, Pong);
//   wharf_bench::PingPongProcesses<Shared>(state, Ping, Pong);
//
// Placement: ping runs on the first CPU the process may use and pong on the
// second (WHARF_BENCH_NO_PIN=1 leaves placement to the scheduler), so a
// round trip is a hand-off between two CPUs. Unpinned, the scheduler may put
// both on one CPU beside a busy process, and a spinning side then waits a
// whole scheduler tick (~4 ms) for its partner.
//
// Processes: `Shared` is constructed in a MAP_SHARED|MAP_ANONYMOUS mapping
// before fork(). fork() is safe because Google Benchmark runs a Threads(1)
// benchmark on the main thread and every ping-pong has joined its partner
// thread, so the process is single-threaded when it forks. The child dies with
// the parent (PR_SET_PDEATHSIG) and leaves with _exit().

#ifndef WHARF_BENCH_PING_PONG_H_
#define WHARF_BENCH_PING_PONG_H_

#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <thread>

#include "benchmark/benchmark.h"

namespace wharf_bench {

// Pins the calling thread to the `index`-th CPU it may use (wrapping around)
// and restores its affinity on destruction. Does nothing with
// WHARF_BENCH_NO_PIN=1 or a single allowed CPU.
class ScopedPinToCpu {
 public:
  explicit ScopedPinToCpu(int index) {
    sched_getaffinity(0, sizeof(original_), &original_);
    const int count = CPU_COUNT(&original_);
    if (std::getenv("WHARF_BENCH_NO_PIN") != nullptr || count < 2) return;
    index %= count;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (CPU_ISSET(cpu, &original_) && index-- == 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        pinned_ = sched_setaffinity(0, sizeof(set), &set) == 0;
        break;
      }
    }
  }
  ~ScopedPinToCpu() {
    if (pinned_) sched_setaffinity(0, sizeof(original_), &original_);
  }
  ScopedPinToCpu(const ScopedPinToCpu&) = delete;
  ScopedPinToCpu& operator=(const ScopedPinToCpu&) = delete;

 private:
  cpu_set_t original_;
  bool pinned_ = false;
};

class Placement {
 public:
  Placement() {
    sched_getaffinity(0, sizeof(original_), &original_);
    if (std::getenv("WHARF_BENCH_NO_PIN") != nullptr) return;
    for (int cpu = 0, found = 0; cpu < CPU_SETSIZE && found < 2; ++cpu) {
      if (CPU_ISSET(cpu, &original_)) cpus_[found++] = cpu;
    }
    pin_ = cpus_[1] >= 0;
  }
  ~Placement() {
    if (pin_) sched_setaffinity(0, sizeof(original_), &original_);
  }
  Placement(const Placement&) = delete;
  Placement& operator=(const Placement&) = delete;

  // Pong moves first, then ping once pong has (`pong_ready`): pong starts on
  // ping's CPU, and ping spinning there (at a real-time priority, under chrt)
  // would never let it run to move.
  void PinPong(int32_t& pong_ready) const {
    if (pin_) PinCurrentThread(cpus_[1]);
    std::atomic_ref<int32_t>(pong_ready).store(1, std::memory_order_release);
  }
  void PinPing(int32_t& pong_ready) const {
    while (std::atomic_ref<int32_t>(pong_ready).load(std::memory_order_acquire) == 0) {
      usleep(50);
    }
    if (pin_) PinCurrentThread(cpus_[0]);
  }

 private:
  static void PinCurrentThread(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof(set), &set);  // 0: the calling thread
  }
  cpu_set_t original_;
  int cpus_[2] = {-1, -1};
  bool pin_ = false;
};

template <class Shared, class Ping, class Pong>
void PingPongThreads(benchmark::State& state, Ping ping, Pong pong) {
  auto* shared = new Shared;
  {
    const Placement placement;
    std::thread partner([shared, &placement, pong] {
      placement.PinPong(shared->pong_ready);
      pong(*shared);
    });
    placement.PinPing(shared->pong_ready);
    ping(state, *shared);
    partner.join();
  }
  delete shared;
}

template <class Shared, class Ping, class Pong>
void PingPongProcesses(benchmark::State& state, Ping ping, Pong pong) {
  void* mem = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    state.SkipWithError("mmap failed");
    return;
  }
  auto* shared = new (mem) Shared;
  {
    const Placement placement;
    const pid_t parent = getpid();
    const pid_t child = fork();
    if (child < 0) {
      state.SkipWithError("fork failed");
    } else if (child == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(1);
      placement.PinPong(shared->pong_ready);
      pong(*shared);
      _exit(0);
    } else {
      placement.PinPing(shared->pong_ready);
      ping(state, *shared);
      int status = 0;
      waitpid(child, &status, 0);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        state.SkipWithError("the pong process failed");
      }
    }
  }
  shared->~Shared();
  munmap(mem, sizeof(Shared));
}

}  // namespace wharf_bench

#endif  // WHARF_BENCH_PING_PONG_H_

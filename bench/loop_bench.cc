// Event-loop ping-pong and idle-loop benchmarks: what users write (OnMessage
// handlers on EventLoops, as in examples/ping_pong) next to the blocking
// Receive() path and CAF's scheduled actors, in one binary, so that the
// ratios come from one run.
//
//   BM_LoopPingPong/wharf_workers
//       Two thread Workers ping-pong an int64 Value over a MessageChannel
//       whose ends they got by transfer; each side uses only OnMessage
//       handlers on its own EventLoop and never blocks — the pattern of
//       examples/ping_pong. The benchmark thread owns the workers on its own
//       EventLoop and only starts batches: it posts "n" to ping, ping does n
//       round trips with pong and posts "done" back (KeepRunningBatch(n) with
//       n = the iteration count Google Benchmark asked for, so a run is one
//       batch and the go/done hand-off is paid once per run, not per round
//       trip). Time per iteration = one round trip. Counters ping_cpu and
//       pong_cpu: CPU time of each worker thread per round trip (its
//       pthread_getcpuclockid clock), so a loop that spins shows it.
//   BM_LoopPingPong/wharf_main_loop
//       The same with the benchmark thread's own EventLoop as ping: a port
//       started on that loop with an OnMessage handler, the other end
//       transferred to a pong Worker. The loop runs (RunUntil) for the batch
//       and the handler Stop()s it after the n-th reply. ping_cpu here is
//       the benchmark thread's own CPU time (the CPU column says the same).
//   BM_LoopPingPong/wharf_blocking_receive
//       The reference: PostMessage + blocking Receive() on both sides between
//       the benchmark thread and a second thread (bench/port_bench's
//       BM_PingPong/wharf_port). One iteration = one round trip.
//   BM_LoopPingPong/caf
//       CAF 0.17 event_based actors ping and pong, scheduler limited to 2
//       worker threads (scheduler.max-threads, set from code), nothing
//       blocking inside the actors; pong replies by returning the value
//       (CAF's idiom), ping sends the next. The benchmark thread is a
//       scoped_actor that requests a batch of n round trips from ping and
//       waits for its reply, as in wharf_workers. Counter caf_cpu: CPU time
//       of both scheduler threads together per round trip (their clocks are
//       taken in a CAF thread_hook); caf_threads: how many were seen (2).
//   BM_IdleLoop/wharf_worker
//       A Worker whose parent_port() is started with an OnMessage handler and
//       receives nothing: each iteration sleeps 100 ms on the benchmark thread
//       and reads the worker thread's CPU clock (pthread_getcpuclockid)
//       before and after. Counter cpu_us = the worker's CPU time per 100 ms.
//       Measuring starts 20 ms after the entry ran, so the loop's bounded
//       spin after start-up (if it has one) is behind it.
//   BM_IdleLoop/caf
//       The peer: a CAF actor system (2 scheduler threads) with one idle
//       event_based actor; cpu_us = the CPU time of both scheduler threads
//       together per 100 ms.
//
// Placement: every wharf thread that takes part in a ping-pong is pinned, one
// side to the first CPU the process may use and the other to the second
// (bench/ping_pong.h's rule; WHARF_BENCH_NO_PIN=1 turns it off): ping on CPU
// 0, pong on CPU 1. In wharf_workers the benchmark thread is not pinned; it
// sleeps during a batch. CAF's two scheduler threads are pinned to CPU 0 and
// 1 the same way (from a thread_hook), but CAF decides which thread runs
// which actor: after ping sends to pong, pong is usually scheduled on the
// same worker thread (work stealing pushes it to the sender's local queue),
// so CAF's round trip need not cross CPUs at all: in a standalone check
// (2026-12-01) ping and pong ran on the same thread in 99.95% of 10^6 round
// trips, pinned or not.
//
// Every benchmark stops and joins what it started before it returns; each
// wait is bounded (kBatchTimeout) and a failed step reports SkipWithError.
// Results and commands: docs/benchmarks.md.

#include <pthread.h>
#include <sched.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "bench/ping_pong.h"
#include "bench/port_ping_pong.h"
#include "caf/all.hpp"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/message_port.h"
#include "wharf/runtime/value.h"
#include "wharf/runtime/worker.h"

namespace {

constexpr int64_t kStop = -1;
// Upper bound for one batch or one teardown: a hang becomes an error, not a
// stuck benchmark. A batch normally lasts about --benchmark_min_time.
constexpr absl::Duration kBatchTimeout = absl::Seconds(60);

// The CPUs the process may use, read before main() runs: a thread inherits
// its creator's affinity, so a worker started by a pinned benchmark thread
// would otherwise see only that thread's CPU.
const cpu_set_t& AllowedCpus() {
  static const cpu_set_t allowed = [] {
    cpu_set_t set;
    CPU_ZERO(&set);
    sched_getaffinity(0, sizeof(set), &set);
    return set;
  }();
  return allowed;
}
[[maybe_unused]] const bool kAllowedCpusRead = (AllowedCpus(), true);

// Pins the calling thread for the rest of its life to the `index`-th CPU the
// process may use (as bench/ping_pong.h does, without the restore: for
// threads that the benchmark starts and ends).
void PinCurrentThread(int index) {
  const cpu_set_t& allowed = AllowedCpus();
  if (std::getenv("WHARF_BENCH_NO_PIN") != nullptr || CPU_COUNT(&allowed) < 2) return;
  index %= CPU_COUNT(&allowed);
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &allowed) && index-- == 0) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpu, &set);
      sched_setaffinity(0, sizeof(set), &set);
      return;
    }
  }
}

// PinCurrentThread for the benchmark thread, undone on destruction.
class ScopedPin {
 public:
  explicit ScopedPin(int index) {
    sched_getaffinity(0, sizeof(original_), &original_);
    PinCurrentThread(index);
  }
  ~ScopedPin() { sched_setaffinity(0, sizeof(original_), &original_); }
  ScopedPin(const ScopedPin&) = delete;
  ScopedPin& operator=(const ScopedPin&) = delete;

 private:
  cpu_set_t original_;
};

double ClockSeconds(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// The CPU clock of a thread the benchmark does not run itself, published by
// that thread (Publish) and read by the benchmark thread once Wait saw it.
struct ThreadClock {
  std::atomic<bool> published{false};
  clockid_t clock{};

  void Publish() {
    if (pthread_getcpuclockid(pthread_self(), &clock) == 0) {
      published.store(true, std::memory_order_release);
    }
  }
  bool Wait() const {
    const absl::Time deadline = absl::Now() + kBatchTimeout;
    while (!published.load(std::memory_order_acquire)) {
      if (absl::Now() >= deadline) return false;
      absl::SleepFor(absl::Milliseconds(1));
    }
    return true;
  }
  double Seconds() const { return ClockSeconds(clock); }
};

// --- wharf: the worker side ----------------------------------------------------

// Takes the port out of a setup message {port} and keeps it in
// ctx.worker_data(), which lives as long as the worker (examples/ping_pong).
wharf::MessagePort* AdoptPort(wharf::WorkerContext& ctx, wharf::Value& setup) {
  wharf::Value* slot = setup["port"];
  if (slot == nullptr || !slot->IsPort()) return nullptr;
  ctx.worker_data() = std::move(*slot);
  return ctx.worker_data().GetPort();
}

// Sends an error text to the owner and ends the worker.
void Fail(wharf::WorkerContext& ctx, const char* what) {
  (void)ctx.parent_port().PostMessage(wharf::Value(what));
  ctx.Exit(2);
}

// pong: echoes every message on the port it is given; when the channel
// closes it closes parent_port() and the worker ends.
wharf::WorkerFunction PongEntry(int cpu, ThreadClock* clock) {
  return [cpu, clock](wharf::WorkerContext& ctx) {
    PinCurrentThread(cpu);
    clock->Publish();
    ctx.parent_port().OnMessage([&ctx](wharf::Value setup) {
      wharf::MessagePort* port = AdoptPort(ctx, setup);
      if (port == nullptr) return Fail(ctx, "pong: bad setup message");
      port->OnMessage([port](wharf::Value v) { (void)port->PostMessage(std::move(v)); });
      port->OnClose([&ctx] { ctx.parent_port().Close(); });
    });
  };
}

// ping: the first parent message is the setup {port}; each later one is a
// batch size n: ping sends 0, 1, 2, ... and sends the next only when the
// previous came back, and after n replies posts n to the owner. kStop closes
// the channel, which ends both workers.
wharf::WorkerFunction PingEntry(int cpu, ThreadClock* clock) {
  return [cpu, clock](wharf::WorkerContext& ctx) {
    PinCurrentThread(cpu);
    clock->Publish();
    struct Batch {
      wharf::MessagePort* port = nullptr;
      int64_t size = 0;
      int64_t next = 0;  // the value in flight
    };
    auto batch = std::make_shared<Batch>();  // handlers are copyable std::functions
    ctx.parent_port().OnMessage([&ctx, batch](wharf::Value msg) {
      if (batch->port == nullptr) {
        batch->port = AdoptPort(ctx, msg);
        if (batch->port == nullptr) return Fail(ctx, "ping: bad setup message");
        batch->port->OnMessage([&ctx, batch](wharf::Value v) {
          if (v.AsInt().value_or(kStop) != batch->next) return Fail(ctx, "ping: wrong reply");
          if (++batch->next < batch->size) {
            (void)batch->port->PostMessage(wharf::Value(batch->next));
          } else {
            (void)ctx.parent_port().PostMessage(wharf::Value(batch->size));
          }
        });
        batch->port->OnClose([&ctx] { ctx.parent_port().Close(); });
        return;
      }
      const int64_t n = msg.AsInt().value_or(kStop);
      if (n == kStop) return batch->port->Close();
      if (n < 1) return Fail(ctx, "ping: bad batch size");
      batch->size = n;
      batch->next = 0;
      if (!batch->port->PostMessage(wharf::Value(int64_t{0})).ok()) Fail(ctx, "ping: post failed");
    });
  };
}

// The owner's view of its workers: errors and exits, on the owner loop.
struct Owner {
  explicit Owner(wharf::EventLoop& l) : loop(l) {}
  wharf::EventLoop& loop;
  std::string error;
  int exits = 0;
  bool tearing_down = false;
  std::optional<int64_t> done;  // the last batch size ping reported

  void Watch(wharf::Worker& w, bool reports_batches) {
    w.OnMessage([this, reports_batches](wharf::Value v) {
      if (const std::string* s = v.GetString()) {
        error = *s;
      } else if (reports_batches) {
        done = v.AsInt().value_or(-1);
      }
      loop.Stop();
    });
    w.OnError([this](std::string what) {
      error = "worker error: " + what;
      loop.Stop();
    });
    w.OnExit([this](int code) {
      ++exits;
      if (!tearing_down && error.empty()) error = "a worker exited early";
      if (!tearing_down) loop.Stop();
    });
  }

  // Runs the owner loop until `expected` workers have exited.
  bool AwaitExits(int expected) {
    tearing_down = true;
    const absl::Time deadline = absl::Now() + kBatchTimeout;
    while (exits < expected && absl::Now() < deadline) {
      if (!loop.RunUntil(deadline)) break;
    }
    return exits >= expected;
  }
};

// Hands one end of a fresh channel to each worker by transfer.
absl::Status HandOver(wharf::Worker& w, wharf::MessagePort port) {
  wharf::Value setup = wharf::Value::Map();
  setup.GetMap()->Set("port", std::move(port));
  wharf::Transferable list[] = {setup["port"]->GetPort()};
  return w.PostMessage(setup, list);
}

// Counter: CPU seconds of a thread per round trip (shown as e.g. "5.1u").
benchmark::Counter CpuPerRoundTrip(double seconds) {
  return benchmark::Counter(seconds, benchmark::Counter::kAvgIterations);
}

void BM_LoopPingPong_WharfWorkers(benchmark::State& state) {
  ThreadClock ping_clock, pong_clock;  // outlive the workers that write them
  wharf::EventLoop loop;               // destroyed after the workers
  Owner owner(loop);
  auto ping = wharf::Worker::Start(PingEntry(0, &ping_clock), {.name = "bench_ping", .loop = &loop});
  auto pong = wharf::Worker::Start(PongEntry(1, &pong_clock), {.name = "bench_pong", .loop = &loop});
  if (!ping.ok() || !pong.ok()) {
    state.SkipWithError("Worker::Start failed");
    return;  // the Worker that started is terminated and joined by its destructor
  }
  owner.Watch(*ping, /*reports_batches=*/true);
  owner.Watch(*pong, /*reports_batches=*/false);
  auto [end1, end2] = wharf::MessageChannel::Create();
  if (!HandOver(*pong, std::move(end2)).ok() || !HandOver(*ping, std::move(end1)).ok()) {
    state.SkipWithError("handing over the ports failed");
  } else if (!ping_clock.Wait() || !pong_clock.Wait()) {
    state.SkipWithError("the workers did not start");
  }

  const int64_t n = static_cast<int64_t>(state.max_iterations);
  double ping_cpu = 0, pong_cpu = 0;
  while (state.KeepRunningBatch(n)) {
    owner.done.reset();
    const double ping0 = ping_clock.Seconds(), pong0 = pong_clock.Seconds();
    if (!ping->PostMessage(wharf::Value(n)).ok()) {
      state.SkipWithError("post to ping failed");
      continue;  // KeepRunningBatch returns false after SkipWithError
    }
    const bool ended = loop.RunUntil(absl::Now() + kBatchTimeout);
    ping_cpu += ping_clock.Seconds() - ping0;
    pong_cpu += pong_clock.Seconds() - pong0;
    if (!owner.error.empty()) {
      state.SkipWithError(owner.error.c_str());
    } else if (!ended || owner.done != n) {
      state.SkipWithError("the batch did not finish in time");
    }
  }
  state.counters["ping_cpu"] = CpuPerRoundTrip(ping_cpu);
  state.counters["pong_cpu"] = CpuPerRoundTrip(pong_cpu);

  (void)ping->PostMessage(wharf::Value(kStop));
  if (!owner.AwaitExits(2)) state.SkipWithError("the workers did not exit");
}

void BM_LoopPingPong_WharfMainLoop(benchmark::State& state) {
  const ScopedPin pin(0);  // this thread is ping
  ThreadClock pong_clock;                    // outlives the worker
  wharf::EventLoop loop;                     // destroyed after the port and the worker
  Owner owner(loop);
  auto pong = wharf::Worker::Start(PongEntry(1, &pong_clock), {.name = "bench_pong", .loop = &loop});
  if (!pong.ok()) {
    state.SkipWithError("Worker::Start failed");
    return;
  }
  owner.Watch(*pong, /*reports_batches=*/false);
  auto [mine, theirs] = wharf::MessageChannel::Create();
  if (!HandOver(*pong, std::move(theirs)).ok()) {
    state.SkipWithError("handing over the port failed");
  } else if (!pong_clock.Wait()) {
    state.SkipWithError("the worker did not start");
  }

  int64_t size = 0, next = 0;
  mine.OnMessage([&](wharf::Value v) {
    if (v.AsInt().value_or(kStop) != next) {
      owner.error = "main: wrong reply";
      loop.Stop();
    } else if (++next < size) {
      (void)mine.PostMessage(wharf::Value(next));
    } else {
      loop.Stop();
    }
  });
  if (!mine.Start(loop).ok()) state.SkipWithError("port Start failed");

  const int64_t n = static_cast<int64_t>(state.max_iterations);
  double ping_cpu = 0, pong_cpu = 0;
  while (state.KeepRunningBatch(n)) {
    size = n;
    next = 0;
    const double ping0 = ClockSeconds(CLOCK_THREAD_CPUTIME_ID), pong0 = pong_clock.Seconds();
    if (!mine.PostMessage(wharf::Value(int64_t{0})).ok()) {
      state.SkipWithError("post failed");
      continue;
    }
    const bool ended = loop.RunUntil(absl::Now() + kBatchTimeout);
    ping_cpu += ClockSeconds(CLOCK_THREAD_CPUTIME_ID) - ping0;
    pong_cpu += pong_clock.Seconds() - pong0;
    if (!owner.error.empty()) {
      state.SkipWithError(owner.error.c_str());
    } else if (!ended || next != n) {
      state.SkipWithError("the batch did not finish in time");
    }
  }
  state.counters["ping_cpu"] = CpuPerRoundTrip(ping_cpu);
  state.counters["pong_cpu"] = CpuPerRoundTrip(pong_cpu);

  mine.Close();  // pong's OnClose closes its parent_port: the worker ends
  if (!owner.AwaitExits(1)) state.SkipWithError("the worker did not exit");
}

// --- wharf: blocking Receive() (the reference) ---------------------------------

void BM_LoopPingPong_WharfBlockingReceive(benchmark::State& state) {
  wharf_bench::PortPingPongThreads(state, kBatchTimeout);
}

// --- CAF -----------------------------------------------------------------------

using go_atom = caf::atom_constant<caf::atom("go")>;

// Records the CPU clocks of CAF's scheduler threads ("caf.multiplexer"; not
// the timer thread "caf.clock") and pins the i-th of them to the i-th CPU.
struct CafThreads {
  std::mutex mu;
  std::vector<clockid_t> clocks;  // guarded by mu

  double CpuSeconds() {
    std::lock_guard<std::mutex> lock(mu);
    double total = 0;
    for (clockid_t c : clocks) total += ClockSeconds(c);
    return total;
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mu);
    return clocks.size();
  }
  // The threads register themselves once running: wait for `n` of them.
  bool WaitFor(size_t n) {
    const absl::Time deadline = absl::Now() + kBatchTimeout;
    while (count() < n) {
      if (absl::Now() >= deadline) return false;
      absl::SleepFor(absl::Milliseconds(1));
    }
    return true;
  }
};

constexpr int kCafThreads = 2;

class CafThreadHook : public caf::thread_hook {
 public:
  explicit CafThreadHook(CafThreads* threads) : threads_(threads) {}
  void init(caf::actor_system&) override {}
  void thread_started() override {
    char name[16] = {};
    pthread_getname_np(pthread_self(), name, sizeof(name));
    if (std::string_view(name) != "caf.multiplexer") return;
    clockid_t clock;
    if (pthread_getcpuclockid(pthread_self(), &clock) != 0) return;
    int index = 0;
    {
      std::lock_guard<std::mutex> lock(threads_->mu);
      index = static_cast<int>(threads_->clocks.size());
      threads_->clocks.push_back(clock);
    }
    PinCurrentThread(index);
  }
  void thread_terminates() override {}

 private:
  CafThreads* threads_;
};

struct CafPingState {
  int64_t size = 0;
  int64_t next = 0;  // the value in flight
  caf::response_promise done;
};

caf::behavior CafPong(caf::event_based_actor*) {
  return {[](int64_t v) { return v; }};  // the reply goes to the sender
}

caf::behavior CafPing(caf::stateful_actor<CafPingState>* self, caf::actor pong) {
  return {
      [self, pong](go_atom, int64_t n) {
        self->state.size = n;
        self->state.next = 0;
        self->state.done = self->make_response_promise();
        self->send(pong, int64_t{0});
      },
      [self, pong](int64_t v) {
        CafPingState& s = self->state;
        if (v != s.next) {
          s.done.deliver(caf::make_error(caf::sec::unexpected_response));
        } else if (++s.next < s.size) {
          self->send(pong, s.next);
        } else {
          s.done.deliver(s.size);
        }
      },
  };
}

void BM_LoopPingPong_Caf(benchmark::State& state) {
  CafThreads threads;
  std::string error;
  double cpu = 0;  // both scheduler threads together
  {
    caf::actor_system_config cfg;
    cfg.set("scheduler.max-threads", kCafThreads);
    cfg.add_thread_hook<CafThreadHook>(&threads);
    caf::actor_system system{cfg};
    caf::actor pong = system.spawn(CafPong);
    caf::actor ping = system.spawn(CafPing, pong);
    if (!threads.WaitFor(kCafThreads)) state.SkipWithError("caf: the scheduler did not start");
    {
      caf::scoped_actor self{system};
      const int64_t n = static_cast<int64_t>(state.max_iterations);
      const auto timeout = std::chrono::microseconds(absl::ToInt64Microseconds(kBatchTimeout));
      while (state.KeepRunningBatch(n)) {
        int64_t done = -1;
        const double cpu0 = threads.CpuSeconds();
        self->request(ping, timeout, go_atom::value, n)
            .receive([&](int64_t got) { done = got; },
                     [&](caf::error& e) { error = "caf: " + system.render(e); });
        cpu += threads.CpuSeconds() - cpu0;
        if (!error.empty()) {
          state.SkipWithError(error.c_str());
        } else if (done != n) {
          state.SkipWithError("caf: wrong batch reply");
        }
      }
      self->send_exit(ping, caf::exit_reason::user_shutdown);
      self->send_exit(pong, caf::exit_reason::user_shutdown);
    }
    // ~actor_system waits for every actor to finish, then joins its threads.
  }
  state.counters["caf_cpu"] = CpuPerRoundTrip(cpu);
  state.counters["caf_threads"] = static_cast<double>(threads.count());
}

// --- Idle loops ----------------------------------------------------------------

constexpr absl::Duration kIdle = absl::Milliseconds(100);
constexpr absl::Duration kSettle = absl::Milliseconds(20);

void BM_IdleLoop_WharfWorker(benchmark::State& state) {
  ThreadClock clock;      // outlives the worker
  wharf::EventLoop loop;  // destroyed after the worker
  Owner owner(loop);
  auto worker = wharf::Worker::Start(
      [&clock](wharf::WorkerContext& ctx) {
        ctx.parent_port().OnMessage([](wharf::Value) {});  // started, ref'd, never called
        clock.Publish();
      },
      {.name = "bench_idle", .loop = &loop});
  if (!worker.ok()) {
    state.SkipWithError("Worker::Start failed");
    return;
  }
  owner.Watch(*worker, /*reports_batches=*/false);
  if (!clock.Wait()) state.SkipWithError("the worker did not start");
  absl::SleepFor(kSettle);

  double cpu = 0;
  for (auto _ : state) {
    const double t0 = clock.Seconds();
    absl::SleepFor(kIdle);
    cpu += clock.Seconds() - t0;
  }
  state.counters["cpu_us"] = benchmark::Counter(cpu * 1e6, benchmark::Counter::kAvgIterations);

  (void)worker->Terminate();
  if (!owner.AwaitExits(1)) state.SkipWithError("the worker did not exit");
}

void BM_IdleLoop_Caf(benchmark::State& state) {
  CafThreads threads;
  double cpu = 0;
  {
    caf::actor_system_config cfg;
    cfg.set("scheduler.max-threads", kCafThreads);
    cfg.add_thread_hook<CafThreadHook>(&threads);
    caf::actor_system system{cfg};
    caf::actor idle = system.spawn(CafPong);
    if (!threads.WaitFor(kCafThreads)) state.SkipWithError("caf: the scheduler did not start");
    absl::SleepFor(kSettle);
    for (auto _ : state) {
      const double t0 = threads.CpuSeconds();
      absl::SleepFor(kIdle);
      cpu += threads.CpuSeconds() - t0;
    }
    caf::anon_send_exit(idle, caf::exit_reason::user_shutdown);
  }
  state.counters["cpu_us"] = benchmark::Counter(cpu * 1e6, benchmark::Counter::kAvgIterations);
  state.counters["caf_threads"] = static_cast<double>(threads.count());
}

BENCHMARK(BM_LoopPingPong_WharfWorkers)->Name("BM_LoopPingPong/wharf_workers")->UseRealTime();
BENCHMARK(BM_LoopPingPong_WharfMainLoop)->Name("BM_LoopPingPong/wharf_main_loop")->UseRealTime();
BENCHMARK(BM_LoopPingPong_WharfBlockingReceive)
    ->Name("BM_LoopPingPong/wharf_blocking_receive")
    ->UseRealTime();
BENCHMARK(BM_LoopPingPong_Caf)->Name("BM_LoopPingPong/caf")->UseRealTime();
BENCHMARK(BM_IdleLoop_WharfWorker)->Name("BM_IdleLoop/wharf_worker")->UseRealTime()->Iterations(5);
BENCHMARK(BM_IdleLoop_Caf)->Name("BM_IdleLoop/caf")->UseRealTime()->Iterations(5);

}  // namespace

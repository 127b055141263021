// pool_faults: what a process pool does when tasks go wrong. It submits a
// mix of tasks to a pool of process workers and prints each fault as the
// pool reported it (status code and message), then the pool's Stats, and
// checks that every other task returned the right value (exit 1 if not).
//
// The mix, submitted while every worker is held busy (so that it waits in
// the pool's queue):
//   - --tasks normal tasks, CollatzSteps(n): they all return the right value;
//   - 3 that throw (CollatzSteps of n <= 0): that task alone fails, kUnknown,
//     with the exception's type and message (TaskErrorRecord);
//   - 2 that crash their process (SIGSEGV): that task alone fails, kAborted,
//     naming the signal; the pool starts a replacement worker, and tasks the
//     dead worker had been handed but not started run elsewhere;
//   - 2 idempotent ones whose worker dies under them (they crash on their
//     first attempt): RunOptions::idempotent runs them once more; they succeed;
//   - 3 cancelled with Future::Cancel() while queued: removed, kCancelled.
//     Cancel() on a task a worker already has is refused (returns false).
// Then two tasks that hang past a 300 ms timeout: both fail with
// kDeadlineExceeded at once and their TaskContext::StopRequested() turns
// true. The cooperative one checks it and returns; the deaf one sleeps on,
// so cancel_grace later its worker is killed and replaced (Stats().abandoned).
//
// What it shows: a fault costs one task, never the pool; which status each
// kind of fault gives; what idempotent, Cancel and timeouts can and cannot
// do; and that Stats count every outcome.
//
// Run:  ./bazelw run //examples/pool_faults [-- --tasks=N --workers=N]  (--help)
#include <signal.h>
#include <sys/resource.h>

#include <charconv>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "wharf/runtime/available_parallelism.h"
#include "wharf/runtime/init_process.h"
#include "wharf/runtime/worker_pool.h"
#include "wharf/sync/atomics.h"
#include "wharf/sync/shared_buffer.h"

constexpr absl::Duration kHangTimeout = absl::Milliseconds(300);
constexpr absl::Duration kCancelGrace = absl::Milliseconds(500);

// --- The tasks (registered in every process: a worker is this program) -----

// The normal task: how many steps n takes to reach 1 (n -> n/2 or 3n+1).
// Throws for n <= 0: the exception fails this task only.
int64_t CollatzSteps(int64_t n) {
  if (n <= 0) throw std::invalid_argument(absl::StrCat("CollatzSteps(", n, "): n must be >= 1"));
  int64_t steps = 0;
  for (; n != 1; ++steps) n = n % 2 == 0 ? n / 2 : 3 * n + 1;
  return steps;
}
WHARF_TYPED_TASK(CollatzSteps);

// Kills this process with SIGSEGV, as a wild pointer would.
[[noreturn]] void CrashThisProcess() {
  const rlimit no_core = {0, 0};
  (void)setrlimit(RLIMIT_CORE, &no_core);  // no core file
  // ASan's and TSan's own SIGSEGV handler would print a report and exit(1)
  // instead: let the signal kill the process, as it does without them.
  std::signal(SIGSEGV, SIG_DFL);
  std::raise(SIGSEGV);
  std::abort();  // not reached
}

WHARF_TASK(segfault) { CrashThisProcess(); }

// [CollatzSteps(arg), attempt] — but its first attempt crashes the worker.
WHARF_TASK(crash_once) {
  if (ctx.attempt() == 1) CrashThisProcess();
  return wharf::Value::Array(CollatzSteps(arg.AsInt().value()), ctx.attempt());
}

// Keeps its worker busy until the parent opens the gate. `arg` is a
// SharedBuffer (shared with every worker, not copied): cell 0 counts the
// holds that started, cell 1 is the gate.
WHARF_TASK(hold) {
  const wharf::SharedBuffer* shared = arg.GetSharedBuffer();
  if (shared == nullptr) return absl::InvalidArgumentError("hold: expected a SharedBuffer");
  const std::span<int64_t> cells = shared->View<int64_t>().value();
  wharf::atomics::Add(cells[0], int64_t{1});
  while (wharf::atomics::Load(cells[1]) == 0 && !ctx.StopRequested()) {
    (void)wharf::atomics::Wait(cells[1], int64_t{0}, absl::Milliseconds(10));
  }
  return wharf::Value();
}

// The two that hang: each counts its start in cell 2 of the SharedBuffer
// `arg`, so that the parent knows it ran (rather than timing out queued).
void CountStart(const wharf::Value& arg) {
  if (const wharf::SharedBuffer* shared = arg.GetSharedBuffer()) {
    wharf::atomics::Add(shared->View<int64_t>().value()[2], int64_t{1});
  }
}

// Hangs until told to stop, then returns at once (the value is dropped: its
// future already failed with kDeadlineExceeded when the stop was raised).
WHARF_TASK(cooperative) {
  CountStart(arg);
  while (!ctx.StopRequested()) absl::SleepFor(absl::Milliseconds(1));
  return wharf::Value("stopped");
}

// Hangs and never looks at ctx.StopRequested().
WHARF_TASK(deaf) {
  CountStart(arg);
  absl::SleepFor(absl::Seconds(60));
  return wharf::Value("woke up");
}

namespace {

constexpr char kUsage[] = R"(usage: pool_faults [flags]
Runs normal tasks mixed with faulty ones (throwing, crashing, hanging,
cancelled) on a process pool, and reports how the pool handled each.
  --tasks=N    normal tasks (default 200)
  --workers=N  process workers (default: the CPUs available, AvailableParallelism())
  --help       this text
)";

struct Flags {
  int64_t tasks = 200;
  int64_t workers = 0;  // 0: AvailableParallelism()
};

// Parses --name=value flags; nullopt after printing why (or --help).
std::optional<Flags> ParseFlags(int argc, char** argv, int& exit_code) {
  Flags f;
  struct Spec {
    std::string_view name;
    int64_t* value;
    int64_t min, max;
  };
  const Spec specs[] = {{"--tasks", &f.tasks, 1, 1'000'000}, {"--workers", &f.workers, 1, 256}};
  exit_code = 2;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      exit_code = 0;
      return std::nullopt;
    }
    const std::string_view name = arg.substr(0, arg.find('='));
    const Spec* spec = nullptr;
    for (const Spec& s : specs) {
      if (s.name == name) spec = &s;
    }
    if (spec == nullptr) {
      std::fprintf(stderr, "pool_faults: unknown flag '%s' (see --help)\n", argv[i]);
      return std::nullopt;
    }
    if (name.size() == arg.size()) {
      std::fprintf(stderr, "pool_faults: %s needs a value: %s=N (see --help)\n", argv[i], argv[i]);
      return std::nullopt;
    }
    const std::string_view text = arg.substr(name.size() + 1);
    int64_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size() || v < spec->min || v > spec->max) {
      std::fprintf(stderr, "pool_faults: %s: want a whole number from %lld to %lld (see --help)\n",
                   argv[i], static_cast<long long>(spec->min), static_cast<long long>(spec->max));
      return std::nullopt;
    }
    *spec->value = v;
  }
  return f;
}

// Polls `done` until it is true or `limit` passes (hang detection only).
template <class F>
bool Eventually(F done, absl::Duration limit = absl::Seconds(60)) {
  const absl::Time give_up = absl::Now() + limit;
  while (!done()) {
    if (absl::Now() > give_up) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

// "CODE: message", as the pool reported it (without the status's payloads).
std::string Show(const absl::Status& s) {
  return absl::StrCat(absl::StatusCodeToString(s.code()), ": ", std::string(s.message()));
}

bool Contains(const absl::Status& s, std::string_view text) {
  return std::string_view(s.message().data(), s.message().size()).find(text) !=
         std::string_view::npos;
}

// "0.30 s", "287 ns", "1.2 ms": durations for people.
std::string Seconds(absl::Duration d) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f s", absl::ToDoubleSeconds(d));
  return text;
}
std::string Short(absl::Duration d) {
  char text[32];
  if (d < absl::Microseconds(1)) {
    std::snprintf(text, sizeof text, "%lld ns",
                  static_cast<long long>(absl::ToInt64Nanoseconds(d)));
  } else if (d < absl::Milliseconds(1)) {
    std::snprintf(text, sizeof text, "%.1f us", absl::ToDoubleMicroseconds(d));
  } else {
    std::snprintf(text, sizeof text, "%.1f ms", absl::ToDoubleMilliseconds(d));
  }
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  wharf::InitProcess(argc, argv);  // in a process worker: runs its tasks here, never returns

  int exit_code = 0;
  const std::optional<Flags> flags = ParseFlags(argc, argv, exit_code);
  if (!flags) return exit_code;
  const int workers =
      flags->workers > 0 ? static_cast<int>(flags->workers) : wharf::AvailableParallelism();
  const int64_t n = flags->tasks;
  bool ok = true;
  const auto fail = [&ok](const std::string& why) {
    std::fprintf(stderr, "FAILED: %s\n", why.c_str());
    ok = false;
  };

  absl::StatusOr<std::unique_ptr<wharf::WorkerPool>> created = wharf::WorkerPool::Create({
      .isolation = wharf::Isolation::kProcess,
      .max_workers = workers,
      .max_queue = static_cast<size_t>(n) + 64,  // the whole mix waits at once
      .cancel_grace = kCancelGrace,              // for a task told to stop
      .task_timeout = absl::Minutes(1),          // a backstop for every task, counted from Run
      .name = "faults",
  });
  if (!created.ok()) {
    std::fprintf(stderr, "FAILED: %s\n", created.status().ToString().c_str());
    return 1;
  }
  wharf::WorkerPool& pool = **created;

  enum Fault { kThrow, kCrash, kIdempotent, kCancel };
  const Fault faults[] = {kThrow,  kCrash,      kCancel, kIdempotent, kThrow,
                          kCancel, kIdempotent, kCrash,  kThrow,      kCancel};
  std::printf("pool_faults: %lld normal tasks and %zu faulty ones on %d process worker%s\n",
              static_cast<long long>(n), std::size(faults) + 2, workers, workers == 1 ? "" : "s");

  // 1. Hold every worker, so that what follows waits in the pool's queue:
  //    only there can Future::Cancel() remove a task.
  absl::StatusOr<wharf::SharedBuffer> gate_memory = wharf::SharedBuffer::Create(64);
  if (!gate_memory.ok()) {
    std::fprintf(stderr, "FAILED: %s\n", gate_memory.status().ToString().c_str());
    return 1;
  }
  const std::span<int64_t> gate = gate_memory->View<int64_t>().value();
  std::vector<wharf::Future<wharf::Value>> holds;
  for (int i = 0; i < workers; ++i) {
    holds.push_back(pool.Run("hold", wharf::Value(wharf::SharedBuffer(*gate_memory))));
  }
  if (!Eventually([&] { return wharf::atomics::Load(gate[0]) == workers; })) {
    fail("the hold tasks did not all start within a minute");
    return 1;
  }
  std::printf("1. a mix, queued while %d hold task%s keep%s every worker busy:\n", workers,
              workers == 1 ? "" : "s", workers == 1 ? "s" : "");
  std::printf(
      "  running    : Cancel() of a task a worker has: %s (it may be half done: stop a "
      "running task with RunOptions::cancel or a timeout)\n",
      holds[0].Cancel() ? "true" : "false");

  // The mix: the faults spread among the normal tasks.
  struct Typed {  // CollatzSteps(n)
    int64_t n;
    wharf::Future<int64_t> future;
  };
  struct Untyped {  // crash_once(n)
    int64_t n;
    wharf::Future<wharf::Value> future;
  };
  std::vector<Typed> normal, throwing, cancelled;
  std::vector<bool> cancel_said;  // what Cancel() returned
  std::vector<wharf::Future<wharf::Value>> crashing;
  std::vector<Untyped> idempotent;
  const int64_t spacing = std::max<int64_t>(1, n / static_cast<int64_t>(std::size(faults) + 1));
  size_t next_fault = 0;
  for (int64_t i = 1; i <= n || next_fault < std::size(faults); ++i) {
    if (i <= n) normal.push_back({i, pool.Submit(&CollatzSteps, i)});
    if (next_fault == std::size(faults) || (i % spacing != 0 && i < n)) continue;
    switch (faults[next_fault++]) {
      case kThrow: {
        const int64_t bad = -static_cast<int64_t>(throwing.size());  // 0, -1, -2
        throwing.push_back({bad, pool.Submit(&CollatzSteps, bad)});
        break;
      }
      case kCrash:
        crashing.push_back(pool.Run("segfault", wharf::Value()));
        break;
      case kIdempotent: {
        const int64_t m = 27 + static_cast<int64_t>(idempotent.size());
        idempotent.push_back({m, pool.Run("crash_once", wharf::Value(m), {.idempotent = true})});
        break;
      }
      case kCancel: {
        const int64_t m = 1000 + static_cast<int64_t>(cancelled.size());
        cancelled.push_back({m, pool.Submit(&CollatzSteps, m)});
        cancel_said.push_back(cancelled.back().future.Cancel());  // still queued: removed now
        break;
      }
    }
  }
  // Open the gate: the holds return and the workers take the mix.
  wharf::atomics::Store(gate[1], int64_t{1});
  (void)wharf::atomics::Notify(gate[1]);

  for (size_t i = 0; i < cancelled.size(); ++i) {
    const absl::Status s = cancelled[i].future.Get().status();
    std::printf("  cancelled  : Cancel() while queued: %s; %s\n", cancel_said[i] ? "true" : "false",
                Show(s).c_str());
    if (!cancel_said[i] || s.code() != absl::StatusCode::kCancelled) {
      fail("a queued task was not cancelled");
    }
  }
  for (Typed& t : throwing) {
    const absl::Status s = t.future.Get().status();
    const std::optional<wharf::ErrorRecord> record = wharf::TaskErrorRecord(s);
    std::printf("  throws     : %s\n", Show(s).c_str());
    if (s.code() != absl::StatusCode::kUnknown || !record ||
        record->type != "std::invalid_argument") {
      fail("a throwing task did not fail with kUnknown and its exception's record");
    }
  }
  for (wharf::Future<wharf::Value>& f : crashing) {
    const absl::Status s = f.Get().status();
    std::printf("  crashes    : %s\n", Show(s).c_str());
    if (s.code() != absl::StatusCode::kAborted || !Contains(s, "SIGSEGV")) {
      fail("a crashing task did not fail with kAborted naming SIGSEGV");
    }
  }
  for (Untyped& t : idempotent) {
    const absl::StatusOr<wharf::Value>& v = t.future.Get();
    const int64_t want = CollatzSteps(t.n);
    if (!v.ok()) {
      fail(absl::StrCat("idempotent crash_once(", t.n, "): ", Show(v.status())));
      continue;
    }
    const int64_t steps = v->At(0).value()->AsInt().value_or(-1);
    const int64_t attempt = v->At(1).value()->AsInt().value_or(-1);
    std::printf(
        "  idempotent : crash_once(%lld) crashed its worker, ran again: attempt %lld "
        "returned %lld\n",
        static_cast<long long>(t.n), static_cast<long long>(attempt),
        static_cast<long long>(steps));
    if (steps != want || attempt != 2) {
      fail(absl::StrCat("crash_once: want ", want, " on attempt 2"));
    }
  }
  int64_t right = 0;
  for (Typed& t : normal) {
    const absl::StatusOr<int64_t>& v = t.future.Get();
    if (v.ok() && *v == CollatzSteps(t.n)) {
      ++right;
    } else {
      fail(absl::StrCat("CollatzSteps(", t.n, ") gave ",
                        v.ok() ? absl::StrCat(*v) : Show(v.status())));
    }
  }
  for (auto& h : holds) {
    if (!h.Get().ok()) fail(absl::StrCat("a hold task: ", Show(h.Get().status())));
  }
  std::printf("  normal     : %lld of %lld returned the right value\n",
              static_cast<long long>(right), static_cast<long long>(n));

  // 2. Past a timeout (counted from Run), one at a time so each has a worker.
  std::printf("2. tasks that hang past their %s timeout (cancel_grace %s):\n",
              Short(kHangTimeout).c_str(), Short(kCancelGrace).c_str());
  for (const char* task : {"cooperative", "deaf"}) {
    const bool deaf = std::string_view(task) == "deaf";
    const int64_t started = wharf::atomics::Load(gate[2]);
    const absl::Time start = absl::Now();
    const absl::Status s =
        pool.Run(task, wharf::Value(wharf::SharedBuffer(*gate_memory)), {.timeout = kHangTimeout})
            .Get()
            .status();
    const absl::Time failed_at = absl::Now();
    // The task is still running: its worker is busy until it returns, or
    // until it is killed (Stats().abandoned counts that first).
    if (!Eventually([&] { return pool.Stats().busy_workers == 0; })) {
      fail("a hung task never ended");
    }
    const uint64_t abandoned = pool.Stats().abandoned;
    if (wharf::atomics::Load(gate[2]) != started + 1) fail(absl::StrCat(task, " never started"));
    std::printf(
        "  %-11s: %s, after %s; %s\n", task, Show(s).c_str(), Seconds(failed_at - start).c_str(),
        abandoned == 0 ? "it saw StopRequested() and returned: its worker was kept"
                       : absl::StrCat("it ignored StopRequested(): its worker was killed ",
                                      Seconds(absl::Now() - failed_at), " later and replaced")
                             .c_str());
    if (s.code() != absl::StatusCode::kDeadlineExceeded) fail(absl::StrCat(task, ": no timeout"));
    if (abandoned != (deaf ? 1u : 0u)) fail(absl::StrCat(task, ": abandoned = ", abandoned));
  }
  // And the pool carries on.
  std::vector<Typed> after;
  for (int i = 0; i < workers; ++i) {
    after.push_back({i + 2, pool.Submit(&CollatzSteps, int64_t{i + 2})});
  }
  for (Typed& t : after) {
    const absl::StatusOr<int64_t>& v = t.future.Get();
    if (!v.ok() || *v != CollatzSteps(t.n)) fail("a task after the hangs");
  }
  std::printf("  after      : %zu more task%s returned the right value\n", after.size(),
              after.size() == 1 ? "" : "s");

  // 3. Stats count every outcome: a timeout is "cancelled", a task that
  //    threw or crashed "failed"; a worker killed past cancel_grace "abandoned".
  //    The counters agree with the futures once Get() returned; the
  //    busy_workers gauge is updated just after a result is delivered, so
  //    it may lag the last Get() by a moment.
  if (!Eventually([&] { return pool.Stats().busy_workers == 0; })) fail("workers stay busy");
  const wharf::PoolStats st = pool.Stats();
  std::printf(
      "pool stats: %d worker%s, %d busy, %zu queued; %llu completed, %llu failed, "
      "%llu cancelled, %llu abandoned; run time p50 %s, max %s\n",
      st.workers, st.workers == 1 ? "" : "s", st.busy_workers, st.queued,
      static_cast<unsigned long long>(st.completed), static_cast<unsigned long long>(st.failed),
      static_cast<unsigned long long>(st.cancelled), static_cast<unsigned long long>(st.abandoned),
      Short(st.run_time.Quantile(0.5)).c_str(), Short(st.run_time.max).c_str());
  const uint64_t want_completed =
      static_cast<uint64_t>(n + workers) + idempotent.size() + after.size();
  const uint64_t want_failed = throwing.size() + crashing.size();
  const uint64_t want_cancelled = cancelled.size() + 2;
  if (st.completed != want_completed || st.failed != want_failed ||
      st.cancelled != want_cancelled || st.abandoned != 1 || st.queued != 0) {
    fail(absl::StrCat("Stats disagree with the futures: want ", want_completed, " completed, ",
                      want_failed, " failed, ", want_cancelled, " cancelled, 1 abandoned"));
  }
  if (!ok) return 1;
  std::printf(
      "OK: every fault cost only its own task; the other %llu tasks returned the right "
      "value and Stats agree\n",
      static_cast<unsigned long long>(want_completed));
  return 0;
}

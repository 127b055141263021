// shared_table: process workers update one table in a named SharedSegment
// under a robust wharf::Mutex; one of them is SIGKILLed holding the lock, in
// the middle of an update, and the others repair the table and carry on.
//
// The parent creates the segment "wharf_table_<pid>_<random>" holding a
// Table (a plain struct: the Mutex, K counters, and a mark for the update in
// progress), then starts P process workers and gives each the segment's name
// in worker_data. Each worker does R updates: lock; mark the update (its row
// and the row's old value); add 1 to the row; count the update and clear the
// mark; unlock. The doomed worker raises SIGKILL right after changing the
// row, with the lock held: the row has changed, the count has not. The next
// locker gets LockResult::kOwnerDied, finds the mark, rolls the row back,
// calls MarkConsistent() and goes on. At the end the parent checks the
// invariant: sum of the rows == updates counted == (P-1)*R + the doomed
// worker's updates before its death, with exactly one repair.
//
// What it shows:
//  - a SharedSegment named by the parent, opened by name in each worker
//    (the name travels in worker_data), and removed by the parent at the end;
//  - lock-and-data in shared memory as a plain struct;
//  - the robust-mutex protocol: Lock(), kOwnerDied → repair → MarkConsistent()
//    (std::lock_guard would take such a lock silently and then make it
//    unusable for good: see wharf/sync/mutex.h).
//
// Run:  ./bazelw run //examples/shared_table [-- [WORKERS>=2 [UPDATES>=2]]]
//       (defaults: 3 workers, 10000 updates each)
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/init_process.h"
#include "wharf/runtime/value.h"
#include "wharf/runtime/worker.h"
#include "wharf/sync/lock_result.h"
#include "wharf/sync/mutex.h"
#include "wharf/sync/shared_segment.h"

namespace {

constexpr int kRows = 8;
constexpr int64_t kNone = -1;
constexpr char kTableObject[] = "table";

// The shared data: a plain struct in the segment (no pointers, no std::
// containers). `mu` guards everything after it except `doomed_died`.
struct Table {
  wharf::Mutex mu;
  // The update in progress: set before a row changes, cleared once the update
  // is counted. A locker that finds it set after kOwnerDied rolls it back.
  int64_t pending_row = kNone;
  int64_t pending_old_value = 0;
  int64_t updates = 0;   // updates counted; the invariant: == the sum of rows
  int64_t repairs = 0;   // updates rolled back after their owner died
  int64_t gap_seen = 0;  // sum of rows - updates, as the repairer found it
  int64_t rows[kRows] = {};
  // Set by the doomed worker just before it dies; the others wait for it
  // halfway, so that some of their updates certainly come after the death.
  std::atomic<int64_t> doomed_died{0};
};
static_assert(std::atomic<int64_t>::is_always_lock_free, "atomics in shared memory");

int64_t SumOfRows(const Table& t) {
  int64_t sum = 0;
  for (int64_t r : t.rows) sum += r;
  return sum;
}

// After kOwnerDied: undo the half-done update its dead owner left.
void Repair(Table& t) {
  if (t.pending_row == kNone) return;  // it died between updates: nothing to undo
  t.gap_seen = SumOfRows(t) - t.updates;
  t.rows[t.pending_row] = t.pending_old_value;
  t.pending_row = kNone;
  ++t.repairs;
}

// One worker's R updates (see the file comment). Errors are thrown: they end
// the worker with exit code 1 and reach the parent's OnError.
void RunUpdates(Table& t, int64_t index, int64_t updates, int64_t die_at) {
  for (int64_t i = 0; i < updates; ++i) {
    if (die_at == kNone && i == updates / 2) {
      const absl::Time give_up = absl::Now() + absl::Seconds(20);
      while (t.doomed_died.load(std::memory_order_acquire) == 0) {
        if (absl::Now() > give_up) throw std::runtime_error("the doomed worker never died");
        absl::SleepFor(absl::Milliseconds(1));
      }
    }
    const wharf::LockResult r = t.mu.Lock();
    if (r == wharf::LockResult::kNotRecoverable) {
      throw std::runtime_error("the table's mutex is not recoverable");
    }
    if (r == wharf::LockResult::kOwnerDied) {
      Repair(t);
      if (absl::Status s = t.mu.MarkConsistent(); !s.ok()) {
        throw std::runtime_error("MarkConsistent: " + s.ToString());
      }
    }
    const int64_t row = (index + i) % kRows;
    // Step 1: mark the update. (The signal fences keep the compiler from
    // moving the steps' stores across each other: a process killed at any
    // instruction then leaves the table in one of the states Repair knows.)
    t.pending_old_value = t.rows[row];
    t.pending_row = row;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    // Step 2: change the row.
    t.rows[row] += 1;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    if (i == die_at) {  // the doomed worker: killed here, holding the lock
      t.doomed_died.store(1, std::memory_order_release);
      std::raise(SIGKILL);
    }
    // Step 3: count it and clear the mark.
    t.updates += 1;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t.pending_row = kNone;
    t.mu.Unlock();
  }
}

// A whole decimal number.
bool ParseInt(std::string_view s, int64_t& out) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

// worker_data: {"segment": name, "index": i, "updates": R, "die_at": n or -1}.
WHARF_WORKER_ENTRY(updater) {
  const wharf::Value& d = ctx.worker_data();
  const std::string segment_name(d["segment"]->AsString().value());
  auto segment = wharf::SharedSegment::Open(segment_name);
  if (!segment.ok()) throw std::runtime_error("Open: " + segment.status().ToString());
  auto table = segment->Find<Table>(kTableObject);
  if (!table.ok()) throw std::runtime_error("Find: " + table.status().ToString());
  RunUpdates(**table, d["index"]->AsInt().value(), d["updates"]->AsInt().value(),
             d["die_at"]->AsInt().value());
}

int main(int argc, char** argv) {
  wharf::InitProcess(argc, argv);  // in a worker process: runs its entry, never returns
  int64_t workers = 3, updates = 10000;
  if (argc > 3 || (argc > 1 && (!ParseInt(argv[1], workers) || workers < 2)) ||
      (argc > 2 && (!ParseInt(argv[2], updates) || updates < 2))) {
    std::fprintf(stderr, "usage: %s [WORKERS>=2 [UPDATES>=2]]\n", argv[0]);
    return 2;
  }
  const int64_t die_at = updates / 2;  // the doomed worker's updates before its death

  // Unique: the pid alone is not (in a PID namespace, such as Bazel's test
  // sandbox, programs run side by side can have the same pid and share one
  // /dev/shm).
  const std::string name = "wharf_table_" + std::to_string(::getpid()) + "_" +
                           std::to_string(std::random_device()() & 0xffffff);
  auto segment = wharf::SharedSegment::Create(name, 64 * 1024);
  if (!segment.ok()) {
    std::fprintf(stderr, "FAILED: SharedSegment::Create: %s\n",
                 segment.status().ToString().c_str());
    return 1;
  }
  // The name outlives every handle: remove it whichever way main returns.
  struct RemoveAtEnd {
    const std::string& name;
    ~RemoveAtEnd() { (void)wharf::SharedSegment::Remove(name); }
  } remove_at_end{name};
  auto table_or = segment->Construct<Table>(kTableObject);
  if (!table_or.ok()) {
    std::fprintf(stderr, "FAILED: Construct: %s\n", table_or.status().ToString().c_str());
    return 1;
  }
  Table& table = **table_or;

  wharf::EventLoop loop;  // before the Workers: they must be destroyed first
  bool ok = true;
  std::vector<wharf::Worker> started;
  std::vector<std::optional<wharf::ErrorRecord>> errors(workers);
  std::vector<int> codes(workers, -1);
  for (int64_t i = 0; i < workers; ++i) {
    const bool doomed = i == 0;
    wharf::Value data = wharf::Value::Map();
    data.GetMap()->Set("segment", name);
    data.GetMap()->Set("index", i);
    data.GetMap()->Set("updates", updates);
    data.GetMap()->Set("die_at", doomed ? die_at : kNone);
    auto w = wharf::Worker::Start("updater", wharf::WorkerOptions{
                                                 .worker_data = std::move(data),
                                                 .name = "updater" + std::to_string(i),
                                                 .loop = &loop,
                                                 .isolation = wharf::Isolation::kProcess,
                                             });
    if (!w.ok()) {
      std::fprintf(stderr, "FAILED: Worker::Start: %s\n", w.status().ToString().c_str());
      return 1;
    }
    w->OnError([&errors, i](const wharf::ErrorRecord& e) { errors[i] = e; });
    w->OnExit([&codes, i](int code) { codes[i] = code; });
    started.push_back(*std::move(w));
  }
  const wharf::TimerId watchdog = loop.SetTimeout(absl::Seconds(60), [&] {
    std::fprintf(stderr, "FAILED: the workers had not all ended after 60 s\n");
    ok = false;
    for (wharf::Worker& w : started) (void)w.Terminate();
  });
  loop.UnrefTimer(watchdog);

  std::printf(
      "shared_table: %lld process workers, %lld updates each, in %s; updater0 is "
      "SIGKILLed holding the lock after %lld\n",
      static_cast<long long>(workers), static_cast<long long>(updates), name.c_str(),
      static_cast<long long>(die_at));
  loop.Run();  // returns once every worker has exited

  for (int64_t i = 0; i < workers; ++i) {
    const std::optional<wharf::ErrorRecord>& e = errors[i];
    std::printf("  updater%lld exited with code %d%s%s\n", static_cast<long long>(i), codes[i],
                e ? " after " : "", e ? e->ToString().c_str() : "");
    const bool as_expected = i == 0 ? codes[i] == 128 + SIGKILL && e &&
                                          e->type == "wharf::WorkerKilled" &&
                                          e->message.find("signal 9 (SIGKILL)") != std::string::npos
                                    : codes[i] == 0 && !e;
    if (!as_expected) {
      std::fprintf(stderr, "FAILED: updater%lld should have %s\n", static_cast<long long>(i),
                   i == 0 ? "been killed by SIGKILL (code 137)" : "exited 0 without an error");
      ok = false;
    }
  }

  // Every worker is gone: the lock must be free and consistent.
  const wharf::LockResult r = table.mu.Lock();
  if (r != wharf::LockResult::kOk) {
    std::fprintf(stderr, "FAILED: the parent's Lock() gave '%s', 'ok' expected\n",
                 std::string(wharf::LockResultName(r)).c_str());
    if (r == wharf::LockResult::kOwnerDied) (void)table.mu.MarkConsistent();
    if (wharf::Acquired(r)) table.mu.Unlock();
    return 1;
  }
  const int64_t sum = SumOfRows(table);
  const int64_t expected = (workers - 1) * updates + die_at;
  std::printf("  rows      :");
  for (int64_t v : table.rows) std::printf(" %lld", static_cast<long long>(v));
  std::printf(
      "\n  sum %lld, updates counted %lld, expected %lld; %lld repair(s), which found "
      "the rows %lld ahead of the count\n",
      static_cast<long long>(sum), static_cast<long long>(table.updates),
      static_cast<long long>(expected), static_cast<long long>(table.repairs),
      static_cast<long long>(table.gap_seen));
  if (sum != table.updates || table.updates != expected || table.pending_row != kNone) {
    std::fprintf(stderr, "FAILED: the table is inconsistent\n");
    ok = false;
  }
  if (table.repairs != 1 || table.gap_seen != 1) {
    std::fprintf(stderr, "FAILED: expected exactly one repair, of a one-update gap\n");
    ok = false;
  }
  table.mu.Unlock();
  if (!ok) return 1;
  std::printf(
      "OK: the half-done update of the killed worker was rolled back once; "
      "sum of rows == %lld updates\n",
      static_cast<long long>(expected));
  return 0;
}

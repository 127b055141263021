// Process workers: what only a process can show — deaths by signal (one
// holding a robust Mutex in shared memory among them), limits, Terminate's
// grace period, a child dying with its parent, memory shared through a
// message, records too large for the ring, hostile records, and nothing left
// behind in /dev/shm. (Everything both isolations do is in the
// typed suite of worker_test.cc, which runs for processes too.)
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/unique_name.h"
#include "tests/testing/watchdog.h"
#include "wharf/runtime/codec.h"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/init_process.h"
#include "wharf/runtime/internal/port_access.h"
#include "wharf/runtime/internal/process_backend.h"
#include "wharf/runtime/internal/shm_channel.h"
#include "wharf/runtime/internal/shm_link.h"
#include "wharf/runtime/internal/shm_ring.h"
#include "wharf/runtime/message_port.h"
#include "wharf/runtime/value.h"
#include "wharf/runtime/worker.h"
#include "wharf/sync/lock_result.h"
#include "wharf/sync/mutex.h"
#include "wharf/sync/shared_buffer.h"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

extern char** environ;

namespace wharf {
namespace {

using ::wharf::testing::Watchdog;

// --- Entries -----------------------------------------------------------------

// Posts its pid, then 0, 1, 2, ... as fast as the port takes them, forever.
WHARF_WORKER_ENTRY(pw_pid_then_flood) {
  (void)ctx.parent_port().PostMessage(Value(static_cast<int64_t>(::getpid())));
  for (int64_t i = 0;; ++i) {
    if (!ctx.parent_port().PostMessage(Value(i)).ok()) return;
  }
}

// Posts its pid, then waits for messages until its port closes.
WHARF_WORKER_ENTRY(pw_pid_then_wait) {
  (void)ctx.parent_port().PostMessage(Value(static_cast<int64_t>(::getpid())));
  while (ctx.parent_port().Receive().ok()) {
  }
}

WHARF_WORKER_ENTRY(pw_segv) {
  (void)ctx.parent_port().PostMessage(Value("about to crash"));
  ::raise(SIGSEGV);
}

// Allocates (and touches) 16 MiB blocks until the allocation fails.
WHARF_WORKER_ENTRY(pw_hog) {
  std::vector<std::unique_ptr<char[]>> blocks;
  for (;;) {
    auto block = std::make_unique<char[]>(16 << 20);
    std::memset(block.get(), 1, 16 << 20);
    blocks.push_back(std::move(block));
  }
}

WHARF_WORKER_ENTRY(pw_spin) {
  volatile uint64_t x = 0;
  for (;;) x = x + 1;
}

// Blocks outside any Wharf wait: Terminate cannot reach it, only SIGKILL.
WHARF_WORKER_ENTRY(pw_deaf) {
  (void)ctx.parent_port().PostMessage(Value("deaf"));
  for (;;) ::usleep(100000);
}

// worker_data {"leaf": an entry name}: posts its own pid, starts a process
// worker of its own running the leaf (pw_pid_then_wait, pw_pid_then_flood:
// its first message is its pid), posts [own pid, m] for every message m the
// leaf posts, and stays.
WHARF_WORKER_ENTRY(pw_middle) {
  (void)ctx.parent_port().PostMessage(Value(static_cast<int64_t>(::getpid())));
  Value* entry = ctx.worker_data()["leaf"];
  if (entry == nullptr || !entry->AsString().ok()) throw std::invalid_argument("no leaf");
  auto leaf = Worker::Start(std::string(*entry->AsString()),
                            WorkerOptions{.isolation = Isolation::kProcess});
  if (!leaf.ok()) throw std::runtime_error(std::string(leaf.status().message()));
  auto* keep = new Worker(*std::move(leaf));  // lives until this process dies
  keep->OnMessage([&ctx](Value m) {
    (void)ctx.parent_port().PostMessage(
        Value::Array(static_cast<int64_t>(::getpid()), std::move(m)));
  });
}

// The lock fault test's shared data: a plain struct at the start of a
// SharedBuffer (all-zero bytes are an unlocked Mutex). `mu` guards the rest.
struct LockedCounter {
  Mutex mu;
  int64_t count;   // how many lockers reached their critical section
  int64_t holder;  // the pid of the process inside it; 0 when none is
};
static_assert(std::is_trivially_destructible_v<LockedCounter>);

LockedCounter& CounterIn(SharedBuffer& sb) {
  return *std::launder(reinterpret_cast<LockedCounter*>(sb.data()));
}

// worker_data: a SharedBuffer holding a LockedCounter. Locks it (plainly: a
// repaired mutex is expected), counts itself in and marks itself the holder,
// posts its pid, then blocks holding the lock, outside any Wharf wait, until
// it is killed.
WHARF_WORKER_ENTRY(pw_lock_and_hold) {
  SharedBuffer* sb = ctx.worker_data().GetSharedBuffer();
  if (sb == nullptr || sb->size() < sizeof(LockedCounter)) {
    throw std::invalid_argument("no SharedBuffer");
  }
  LockedCounter& c = CounterIn(*sb);
  const LockResult r = c.mu.Lock();
  if (r != LockResult::kOk) throw std::runtime_error("Lock: " + std::string(LockResultName(r)));
  ++c.count;
  c.holder = ::getpid();
  (void)ctx.parent_port().PostMessage(Value(static_cast<int64_t>(::getpid())));
  for (;;) ::usleep(100000);
}

// worker_data: a SharedBuffer; writes 0..255 into its first 256 bytes and
// replies "written".
WHARF_WORKER_ENTRY(pw_fill_shared) {
  SharedBuffer* sb = ctx.worker_data().GetSharedBuffer();
  if (sb == nullptr || sb->size() < 256) throw std::invalid_argument("no SharedBuffer");
  for (int i = 0; i < 256; ++i) sb->data()[i] = static_cast<std::byte>(i);
  (void)ctx.parent_port().PostMessage(Value("written"));
}


// Takes the Buffer in worker_data, checks it is in shared memory and holds
// its index in every byte's position, adds 1 to every byte in place, and
// transfers it back.
WHARF_WORKER_ENTRY(pw_bump_shared_buffer) {
  Buffer* b = ctx.worker_data().GetBuffer();
  if (b == nullptr || !b->shared()) throw std::invalid_argument("no shared Buffer");
  for (size_t i = 0; i < b->size(); ++i) {
    if (b->data()[i] != static_cast<std::byte>(i & 0xff)) throw std::runtime_error("bad bytes");
    b->data()[i] = static_cast<std::byte>((i + 1) & 0xff);
  }
  (void)ctx.parent_port().PostMessage(std::move(ctx.worker_data()));  // transferred back
}

WHARF_WORKER_ENTRY(pw_echo) {
  ctx.parent_port().OnMessage([&ctx](Value v) {
    (void)ctx.parent_port().PostMessage(std::move(v));
    ctx.parent_port().Close();
  });
}


// worker_data {"port": a port}: echoes every message on that port until it
// closes, then ends.
WHARF_WORKER_ENTRY(pw_echo_port) {
  Value* slot = ctx.worker_data()["port"];
  if (slot == nullptr || !slot->IsPort()) throw std::invalid_argument("no port");
  MessagePort& port = *slot->GetPort();
  for (;;) {
    absl::StatusOr<Value> v = port.Receive();
    if (!v.ok()) return;
    if (!port.PostMessage(*std::move(v)).ok()) return;
  }
}

// worker_data {"port"}: posts its pid on the port, then echoes as
// pw_echo_port.
WHARF_WORKER_ENTRY(pw_pid_then_echo_port) {
  MessagePort& port = *ctx.worker_data()["port"]->GetPort();
  if (!port.PostMessage(Value(static_cast<int64_t>(::getpid()))).ok()) return;
  for (;;) {
    absl::StatusOr<Value> v = port.Receive();
    if (!v.ok()) return;
    if (!port.PostMessage(*std::move(v)).ok()) return;
  }
}

// worker_data {"port", "n"}: posts 0..n-1 on the port, then reports "sent".
WHARF_WORKER_ENTRY(pw_send_n_on_port) {
  MessagePort& port = *ctx.worker_data()["port"]->GetPort();
  const int64_t n = *ctx.worker_data()["n"]->AsInt();
  for (int64_t i = 0; i < n; ++i) {
    if (!port.PostMessage(Value(i)).ok()) throw std::runtime_error("post failed");
  }
  (void)ctx.parent_port().PostMessage(Value("sent"));
}

// worker_data {"port", "n"}: receives n messages on the port, checks they
// are 0..n-1 in order, and reports how many were right.
WHARF_WORKER_ENTRY(pw_count_on_port) {
  MessagePort& port = *ctx.worker_data()["port"]->GetPort();
  const int64_t n = *ctx.worker_data()["n"]->AsInt();
  int64_t right = 0;
  for (int64_t i = 0; i < n; ++i) {
    absl::StatusOr<Value> v = port.Receive(absl::Seconds(60));
    if (!v.ok()) break;
    if (v->AsInt().value_or(-1) == i) ++right;
  }
  (void)ctx.parent_port().PostMessage(Value(right));
}

// Gets a port in worker_data and hands it on to a process worker of its own
// (pw_echo_port): the port hops child -> grandchild.
WHARF_WORKER_ENTRY(pw_hop) {
  Value data = Value::Map();
  data.GetMap()->Set("port", std::move(*ctx.worker_data()["port"]));
  const Value* leaf_entry = ctx.worker_data()["leaf"];
  auto leaf = Worker::Start(leaf_entry != nullptr ? std::string(*leaf_entry->AsString())
                                                  : std::string("pw_echo_port"),
                            WorkerOptions{.worker_data = std::move(data),
                                          .isolation = Isolation::kProcess});
  if (!leaf.ok()) throw std::runtime_error(std::string(leaf.status().message()));
  auto* keep = new Worker(*std::move(leaf));
  keep->OnExit([&ctx](int) { ctx.parent_port().Close(); });
}

// The producer of the hand-off test: worker_data {"id"}; each message on its
// parent port is {"port": S, "from": k, "count": c}: posts [id, k..k+c-1]
// on S, then gives S back to the parent.
WHARF_WORKER_ENTRY(pw_producer) {
  const int64_t id = *ctx.worker_data()["id"]->AsInt();
  ctx.parent_port().OnMessage([&ctx, id](Value job) {
    Value* slot = job["port"];
    MessagePort port = std::move(*slot->GetPort());
    const int64_t from = *job["from"]->AsInt();
    const int64_t count = *job["count"]->AsInt();
    for (int64_t i = from; i < from + count; ++i) {
      if (!port.PostMessage(Value::Array(id, i)).ok()) throw std::runtime_error("post failed");
    }
    Value back = Value::Map();
    back.GetMap()->Set("port", std::move(port));
    if (!ctx.parent_port().PostMessage(std::move(back)).ok()) throw std::runtime_error("give back");
  });
}

// --- Helpers -----------------------------------------------------------------

// /dev/shm apart from other tests' names (they run beside this one).
std::vector<std::string> ShmNames() { return ::wharf::testing::ShmEntriesExceptTestNames(); }

// Polls `done` every 10 ms until it holds (true) or `within` has passed
// (false): an upper bound for hang detection, not a speed requirement.
template <class Predicate>
bool Eventually(absl::Duration within, Predicate done) {
  const absl::Time until = absl::Now() + within;
  for (;;) {
    if (done()) return true;
    if (absl::Now() >= until) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

bool ProcessGone(pid_t pid, absl::Duration within) {
  return Eventually(within, [pid] { return ::kill(pid, 0) != 0 && errno == ESRCH; });
}

// The live processes whose command line is that of a process worker started
// by `owner` (ProcessWorkerArgs holds the owner's pid): they are found from
// their exec on, before they could post their pid. A zombie's command line is
// empty: the dead are not counted.
std::vector<pid_t> ProcessWorkersOf(pid_t owner) {
  std::vector<pid_t> found;
  DIR* d = ::opendir("/proc");
  if (d == nullptr) return found;
  while (dirent* e = ::readdir(d)) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    // read(2), not a stream: a process that ends meanwhile fails the read
    // (ESRCH), which libstdc++'s filebuf throws.
    std::string cmdline;
    const int fd = ::open((std::string("/proc/") + e->d_name + "/cmdline").c_str(),
                          O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    char chunk[4096];
    for (ssize_t n; (n = ::read(fd, chunk, sizeof chunk)) > 0;) cmdline.append(chunk, n);
    ::close(fd);
    std::vector<char*> argv;  // into cmdline: each argument ends with '\0'
    for (size_t i = 0; i < cmdline.size();) {
      argv.push_back(&cmdline[i]);
      const size_t nul = cmdline.find('\0', i);
      if (nul == std::string::npos) break;
      i = nul + 1;
    }
    argv.push_back(nullptr);
    const auto args = runtime_internal::ProcessWorkerArgs::Parse(
        static_cast<int>(argv.size() - 1), argv.data());
    if (args.ok() && args->has_value() && (*args)->parent_pid == owner) {
      found.push_back(static_cast<pid_t>(pid));
    }
  }
  ::closedir(d);
  return found;
}

struct Ending {
  std::optional<ErrorRecord> error;
  int code = -100;
  std::vector<std::string> order;
  void Attach(Worker& w) {
    w.OnError([this](const ErrorRecord& e) {
      error = e;
      order.push_back("error");
    });
    w.OnExit([this](int c) {
      code = c;
      order.push_back("exit");
    });
  }
};

// The end of a worker killed with SIGKILL: OnError naming the signal, then
// OnExit(128 + 9).
::testing::AssertionResult KilledBySigkill(const Ending& end) {
  if (!end.error.has_value()) return ::testing::AssertionFailure() << "no OnError";
  if (end.error->type != "wharf::WorkerKilled" ||
      end.error->message != "worker killed by signal 9 (SIGKILL)") {
    return ::testing::AssertionFailure() << "OnError: " << end.error->ToString();
  }
  if (end.code != 128 + SIGKILL) return ::testing::AssertionFailure() << "OnExit(" << end.code << ")";
  if (end.order != std::vector<std::string>{"error", "exit"}) {
    return ::testing::AssertionFailure() << "OnError and OnExit out of order";
  }
  return ::testing::AssertionSuccess();
}

WorkerOptions Process(EventLoop& loop, Value data = Value()) {
  return WorkerOptions{.worker_data = std::move(data), .loop = &loop,
                       .isolation = Isolation::kProcess};
}

// --- Start errors --------------------------------------------------------------

TEST(ProcessWorkerTest, StartErrorsAreClear) {
  EventLoop loop;
  auto callable = Worker::Start([](WorkerContext&) {}, Process(loop));
  ASSERT_EQ(callable.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(callable.status().message().find("WHARF_WORKER_ENTRY"), std::string::npos)
      << callable.status();
  EXPECT_EQ(Worker::Start("pw_no_such_entry", Process(loop)).status().code(),
            absl::StatusCode::kNotFound);
  WorkerOptions missing = Process(loop);
  missing.executable = "/nonexistent/wharf-worker";
  EXPECT_EQ(Worker::Start("pw_echo", std::move(missing)).status().code(),
            absl::StatusCode::kNotFound);
  WorkerOptions limited{.loop = &loop, .resource_limits = {.max_memory_bytes = 1 << 30}};
  EXPECT_EQ(Worker::Start("pw_echo", std::move(limited)).status().code(),
            absl::StatusCode::kInvalidArgument);  // limits need a process
  // worker_data that cannot cross processes starts nothing.
  EXPECT_EQ(Worker::Start("pw_echo", Process(loop, Value(std::string("\xff\xfe")))).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ProcessWorkerTest, InvalidUtf8MessageIsADataCloneError) {
  Watchdog dog("utf8", absl::Seconds(30));
  EventLoop loop;
  auto w = Worker::Start("pw_echo", Process(loop));
  ASSERT_TRUE(w.ok()) << w.status();
  absl::Status s = w->PostMessage(Value(std::string("\xc3\x28")));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("DataCloneError"), std::string::npos) << s;
  std::optional<std::string> echoed;
  w->OnMessage([&](Value v) { echoed = std::string(*v.AsString()); });
  ASSERT_TRUE(w->PostMessage(Value("fine")).ok());
  loop.Run();
  EXPECT_EQ(echoed, "fine");
}

// --- Deaths -------------------------------------------------------------------

// SIGKILL while the child is writing records as fast as it can (so, at any
// step of a record): what arrived is in order with no gap or duplicate, the
// end is OnError naming the signal then OnExit(137), and the owner goes on.
TEST(ProcessWorkerTest, SigkillMidStreamLosesNothingPublishedAndIsReported) {
  Watchdog dog("sigkill loop", absl::Seconds(240));
  const std::vector<std::string> shm_before = ShmNames();
  const int rounds = kSanitized ? 30 : 100;
  for (int round = 0; round < rounds; ++round) {
    EventLoop loop;
    auto w = Worker::Start("pw_pid_then_flood", Process(loop));
    ASSERT_TRUE(w.ok()) << w.status();
    Ending end;
    end.Attach(*w);
    pid_t pid = 0;
    int64_t next = 0;
    const int64_t kill_after = 1 + (round * 7919) % 5000;
    bool in_order = true;
    w->OnMessage([&](Value v) {
      if (pid == 0) {
        pid = static_cast<pid_t>(*v.AsInt());
        return;
      }
      in_order = in_order && *v.AsInt() == next;
      if (++next == kill_after) ::kill(pid, SIGKILL);
    });
    loop.Run();
    ASSERT_TRUE(in_order) << "round " << round;
    ASSERT_GE(next, kill_after);
    ASSERT_TRUE(KilledBySigkill(end)) << "round " << round;
  }
  EXPECT_EQ(ShmNames(), shm_before) << "a killed worker left something in /dev/shm";
}

// SIGKILL of a process worker that holds a robust Mutex in shared memory:
// the next locker (here, the parent) gets the lock within a bounded time,
// told that the owner died (kOwnerDied), with what the dead owner wrote in
// place; it repairs, marks the mutex consistent and unlocks, and the next
// lock is plain. The parent locks at three moments: asleep in Lock() before
// the kill, right after the kill (the owner may still be dying), and once
// the worker's end was reported (it was reaped). One mutex serves every
// round, so each round also starts from the previous repair.
TEST(ProcessWorkerTest, SigkillOfALockHolderHandsTheLockOnAsOwnerDied) {
  Watchdog dog("sigkill lock holder loop", absl::Seconds(240));
  const std::vector<std::string> shm_before = ShmNames();
  const int rounds = kSanitized ? 30 : 102;  // a third per moment
  enum Moment { kAsleepBeforeTheKill, kRightAfterTheKill, kAfterTheEnd };
  SharedBuffer sb = SharedBuffer::Create(sizeof(LockedCounter)).value();
  LockedCounter& c = *new (sb.data()) LockedCounter{};
  for (int round = 0; round < rounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const Moment moment = static_cast<Moment>(round % 3);
    EventLoop loop;
    auto w = Worker::Start("pw_lock_and_hold", Process(loop, Value(sb)));
    ASSERT_TRUE(w.ok()) << w.status();
    Ending end;
    end.Attach(*w);
    // The parent's take-over, on the thread that locks. The bound is for
    // hang detection: a dead owner is replaced within ~2 check periods.
    LockResult taken = LockResult::kBusy;
    int64_t count = -1, holder = -1;
    absl::Status consistent = absl::UnknownError("not marked");
    auto take_over = [&] {
      taken = c.mu.LockFor(absl::Seconds(10));
      if (!Acquired(taken)) return;
      count = c.count;
      holder = c.holder;
      c.holder = 0;  // the repair: nobody is inside any more
      if (taken == LockResult::kOwnerDied) consistent = c.mu.MarkConsistent();
      c.mu.Unlock();
    };
    pid_t pid = 0;
    std::thread asleep;
    w->OnMessage([&](Value v) {  // the worker holds the lock
      pid = static_cast<pid_t>(*v.AsInt());
      if (moment == kAsleepBeforeTheKill) {
        asleep = std::thread(take_over);
        // Kill once the locker has announced itself: it sleeps on the word.
        while ((c.mu.RawWordForTesting() & Mutex::kWaitersBit) == 0) {
          absl::SleepFor(absl::Microseconds(100));
        }
      }
      ASSERT_EQ(::kill(pid, SIGKILL), 0);
      if (moment == kRightAfterTheKill) take_over();
    });
    loop.Run();
    if (asleep.joinable()) asleep.join();
    if (moment == kAfterTheEnd) take_over();
    ASSERT_TRUE(KilledBySigkill(end));
    ASSERT_EQ(taken, LockResult::kOwnerDied) << LockResultName(taken);
    EXPECT_TRUE(consistent.ok()) << consistent;
    EXPECT_EQ(count, round + 1);  // the dead owner's writes are there
    EXPECT_EQ(holder, pid);
    // Repaired: the next lock is plain, and sees the repair.
    ASSERT_EQ(c.mu.LockFor(absl::Seconds(10)), LockResult::kOk);
    EXPECT_EQ(c.holder, 0);
    EXPECT_EQ(c.mu.MarkConsistent().code(), absl::StatusCode::kFailedPrecondition);
    c.mu.Unlock();
  }
  EXPECT_EQ(c.mu.RawWordForTesting(), 0u);
  EXPECT_EQ(ShmNames(), shm_before) << "a killed worker left something in /dev/shm";
}

TEST(ProcessWorkerTest, SegfaultIsReportedAndOtherWorkersCarryOn) {
  Watchdog dog("segv", absl::Seconds(60));
  EventLoop loop;
  WorkerOptions crash_options = Process(loop);
  if (kSanitized) {
    // A sanitizer's own SIGSEGV handler would turn the crash into an exit
    // code: the child's environment (an `env` option) switches it off.
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      std::string var = *e;
      if (var.rfind("TSAN_OPTIONS=", 0) == 0 || var.rfind("ASAN_OPTIONS=", 0) == 0) continue;
      env.push_back(std::move(var));
    }
    const char* tsan = std::getenv("TSAN_OPTIONS");
    const char* asan = std::getenv("ASAN_OPTIONS");
    env.push_back(std::string("TSAN_OPTIONS=") + (tsan ? tsan : "") + ":handle_segv=0");
    env.push_back(std::string("ASAN_OPTIONS=") + (asan ? asan : "") + ":handle_segv=0");
    crash_options.env = std::move(env);
  }
  auto crash = Worker::Start("pw_segv", std::move(crash_options));
  auto healthy = Worker::Start("pw_echo", Process(loop));
  ASSERT_TRUE(crash.ok() && healthy.ok());
  Ending end;
  end.Attach(*crash);
  std::vector<std::string> from_crash;
  crash->OnMessage([&](Value v) { from_crash.emplace_back(*v.AsString()); });
  std::optional<std::string> echoed;
  healthy->OnMessage([&](Value v) { echoed = std::string(*v.AsString()); });
  crash->OnExit([&](int code) {
    end.code = code;
    (void)healthy->PostMessage(Value("still here"));  // after the crash
  });
  loop.Run();
  EXPECT_EQ(from_crash, std::vector<std::string>{"about to crash"});  // delivered before the end
  ASSERT_TRUE(end.error.has_value());
  EXPECT_EQ(end.error->message.rfind("worker killed by signal 11 (SIGSEGV)", 0), 0u)
      << end.error->message;
  EXPECT_EQ(end.code, 128 + SIGSEGV);
  EXPECT_EQ(echoed, "still here");
}

TEST(ProcessWorkerTest, MemoryLimitEndsOnlyThatWorkerAndSaysSo) {
  if (kSanitized) GTEST_SKIP() << "RLIMIT_AS cannot be combined with a sanitizer's shadow memory";
  Watchdog dog("memory limit", absl::Seconds(60));
  EventLoop loop;
  WorkerOptions o = Process(loop);
  o.resource_limits.max_memory_bytes = size_t{512} << 20;
  auto w = Worker::Start("pw_hog", std::move(o));
  ASSERT_TRUE(w.ok()) << w.status();
  Ending end;
  end.Attach(*w);
  loop.Run();
  ASSERT_TRUE(end.error.has_value());
  EXPECT_EQ(end.error->type, "std::bad_alloc");
  EXPECT_NE(end.error->message.find("resource_limits.max_memory_bytes = 536870912"),
            std::string::npos)
      << end.error->message;
  EXPECT_EQ(end.code, 1);
}

TEST(ProcessWorkerTest, CpuLimitIsReportedAsSuch) {
  Watchdog dog("cpu limit", absl::Seconds(60));
  EventLoop loop;
  WorkerOptions o = Process(loop);
  o.resource_limits.max_cpu_time = absl::Seconds(1);
  auto w = Worker::Start("pw_spin", std::move(o));
  ASSERT_TRUE(w.ok()) << w.status();
  Ending end;
  end.Attach(*w);
  loop.Run();
  ASSERT_TRUE(end.error.has_value());
  EXPECT_NE(end.error->message.find("SIGXCPU"), std::string::npos) << end.error->message;
  EXPECT_NE(end.error->message.find("resource_limits.max_cpu_time = 1s"), std::string::npos)
      << end.error->message;
}

// A worker that never reaches a Wharf wait is killed when the grace period
// ends; that is a termination (exit code 1, no error), and Terminate().Get()
// does not need the owner's loop to run.
TEST(ProcessWorkerTest, TerminateKillsADeafWorkerAfterTheGracePeriod) {
  Watchdog dog("grace", absl::Seconds(60));
  EventLoop loop;
  WorkerOptions o = Process(loop);
  o.terminate_grace = absl::Milliseconds(200);
  auto w = Worker::Start("pw_deaf", std::move(o));
  ASSERT_TRUE(w.ok()) << w.status();
  Ending end;
  end.Attach(*w);
  std::optional<Future<int>> terminated;
  w->OnMessage([&](Value) { terminated = w->Terminate(); });  // it runs its entry now
  while (!terminated.has_value()) loop.RunOnce();
  const absl::Time start = absl::Now();
  EXPECT_EQ(terminated->Get().value(), 1);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(150));
  loop.Run();
  EXPECT_FALSE(end.error.has_value()) << end.error->ToString();
  EXPECT_EQ(end.code, 1);
}

// A process worker may start process workers of its own; when it is
// SIGKILLed, its own child dies with it (PR_SET_PDEATHSIG), whatever stage
// the child is at. The middle process is killed right after it started
// (after a delay varied per round over the time its child takes to start:
// before the spawn, in it, in the child's start-up or its entry), once its
// child is online, or while the child's messages flow through it. Each time
// no process it started survives it, and nothing is left in /dev/shm.
TEST(ProcessWorkerTest, GrandchildDiesWithItsParent) {
  Watchdog dog("pdeathsig loop", absl::Seconds(240));
  const std::vector<std::string> shm_before = ShmNames();
  const int rounds = kSanitized ? 30 : 102;  // a third per moment
  // The longest start of a child seen so far (the middle's pid to the
  // leaf's), over which the kills of the first moment are spread.
  absl::Duration child_start = absl::Milliseconds(20);
  enum Moment { kWhileItStartsItsChild, kOnceItsChildIsOnline, kWhileMessagesFlow };
  for (int round = 0; round < rounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const Moment moment = static_cast<Moment>(round % 3);
    EventLoop loop;
    Value data = Value::Map();
    data.GetMap()->Set("leaf", moment == kWhileMessagesFlow ? "pw_pid_then_flood"
                                                            : "pw_pid_then_wait");
    auto w = Worker::Start("pw_middle", Process(loop, std::move(data)));
    ASSERT_TRUE(w.ok()) << w.status();
    Ending end;
    end.Attach(*w);
    const absl::Duration delay = child_start * (((round * 7919) % 1000) / 1000.0);
    const int64_t kill_after = 1 + (round * 7919) % 2000;  // messages from the leaf
    pid_t middle = 0, leaf = 0;
    absl::Time middle_started;
    std::vector<pid_t> leaf_found;  // by ProcessWorkersOf, while alive
    int64_t flowed = 0;
    bool killed = false;
    auto kill_middle = [&] {
      killed = true;
      ASSERT_EQ(::kill(middle, SIGKILL), 0);
    };
    w->OnMessage([&](Value v) {
      if (middle == 0) {  // its pid, before it starts its child
        middle = static_cast<pid_t>(*v.AsInt());
        middle_started = absl::Now();
        if (moment == kWhileItStartsItsChild) {
          absl::SleepFor(delay);
          kill_middle();
        }
        return;
      }
      if (leaf == 0) {  // the leaf's pid: it is online
        leaf = static_cast<pid_t>(*(*v.GetArray())[1].AsInt());
        if (killed) return;
        child_start = std::max(child_start, absl::Now() - middle_started);
        leaf_found = ProcessWorkersOf(middle);
        if (moment == kOnceItsChildIsOnline) kill_middle();
        return;
      }
      if (!killed && ++flowed == kill_after) kill_middle();
    });
    loop.Run();
    ASSERT_NE(middle, 0);
    ASSERT_TRUE(killed);
    ASSERT_TRUE(KilledBySigkill(end));
    if (moment != kWhileItStartsItsChild) {
      ASSERT_EQ(leaf_found, std::vector<pid_t>{leaf}) << "ProcessWorkersOf cannot see the leaf";
    }
    if (leaf != 0) {
      EXPECT_TRUE(ProcessGone(leaf, absl::Seconds(10))) << "the grandchild outlived its parent";
    }
    EXPECT_TRUE(Eventually(absl::Seconds(10), [&] { return ProcessWorkersOf(middle).empty(); }))
        << "a process the killed middle started outlived it";
  }
  EXPECT_EQ(ShmNames(), shm_before) << "a killed worker left something in /dev/shm";
}

// --- What crosses -------------------------------------------------------------

TEST(ProcessWorkerTest, SharedBufferIsSharedNotCopied) {
  Watchdog dog("shared buffer", absl::Seconds(30));
  EventLoop loop;
  SharedBuffer sb = SharedBuffer::Create(4096).value();
  auto w = Worker::Start("pw_fill_shared", Process(loop, Value(sb)));
  ASSERT_TRUE(w.ok()) << w.status();
  std::optional<std::string> reply;
  w->OnMessage([&](Value v) { reply = std::string(*v.AsString()); });
  loop.Run();
  ASSERT_EQ(reply, "written");
  for (int i = 0; i < 256; ++i) ASSERT_EQ(sb.data()[i], static_cast<std::byte>(i)) << i;
}


// A Buffer in shared memory crosses as that memory (the sender is left
// detached), and comes back the same way.
TEST(ProcessWorkerTest, SharedMemoryBufferIsTransferredNotCopied) {
  Watchdog dog("shared Buffer", absl::Seconds(30));
  EventLoop loop;
  Buffer b = Buffer::AllocateShared(1 << 20).value();
  ASSERT_TRUE(b.shared());
  for (size_t i = 0; i < b.size(); ++i) b.data()[i] = static_cast<std::byte>(i & 0xff);
  Value data(std::move(b));
  auto w = Worker::Start("pw_bump_shared_buffer", Process(loop, std::move(data)));
  ASSERT_TRUE(w.ok()) << w.status();
  std::optional<Value> back;
  w->OnMessage([&](Value v) { back = std::move(v); });
  Ending end;
  end.Attach(*w);
  loop.Run();
  ASSERT_FALSE(end.error.has_value()) << end.error->ToString();
  ASSERT_TRUE(back.has_value());
  Buffer* got = back->GetBuffer();
  ASSERT_NE(got, nullptr);
  EXPECT_TRUE(got->shared());
  ASSERT_EQ(got->size(), size_t{1} << 20);
  for (size_t i = 0; i < got->size(); ++i) {
    ASSERT_EQ(got->data()[i], static_cast<std::byte>((i + 1) & 0xff)) << i;
  }
}

TEST(ProcessWorkerTest, LargeMessagesTravelOutOfLine) {
  Watchdog dog("large", absl::Seconds(60));
  EventLoop loop;
  auto w = Worker::Start("pw_echo", Process(loop));
  ASSERT_TRUE(w.ok()) << w.status();
  std::string big(3 << 20, 'x');  // 3 MiB: far above the ring's 64 KiB record limit
  for (size_t i = 0; i < big.size(); i += 4093) big[i] = static_cast<char>('a' + i % 26);
  Value msg = Value::Map();
  msg.GetMap()->Set("s", big);
  Buffer buf = Buffer::Allocate(300000).value();
  buf.data()[299999] = std::byte{7};
  msg.GetMap()->Set("b", std::move(buf));
  ASSERT_TRUE(w->PostMessage(std::move(msg)).ok());
  std::optional<Value> back;
  w->OnMessage([&](Value v) { back = std::move(v); });
  loop.Run();
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*(*back)["s"]->AsString(), big);
  ASSERT_NE((*back)["b"]->GetBuffer(), nullptr);
  EXPECT_EQ((*back)["b"]->GetBuffer()->size(), 300000u);
  EXPECT_EQ((*back)["b"]->GetBuffer()->data()[299999], std::byte{7});
}


// --- Ports across processes ----------------------------------------------------

// A port whose peer stays here goes to a process worker: messages queued at
// it before it left arrive there, in order, once; then both sides talk
// directly over the link the channel moved to.
TEST(ProcessPortTest, PortSentToAProcessKeepsWhatWasQueuedAndTalks) {
  Watchdog dog("port to process", absl::Seconds(60));
  EventLoop loop;
  auto [here, there] = MessageChannel::Create();
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(here.PostMessage(Value(i)).ok());  // queued at `there`
  Value data = Value::Map();
  data.GetMap()->Set("port", std::move(there));
  auto w = Worker::Start("pw_echo_port", Process(loop, std::move(data)));
  ASSERT_TRUE(w.ok()) << w.status();
  for (int i = 100; i < 200; ++i) ASSERT_TRUE(here.PostMessage(Value(i)).ok());  // after the move
  for (int i = 0; i < 200; ++i) {
    absl::StatusOr<Value> v = here.Receive(absl::Seconds(30));
    ASSERT_TRUE(v.ok()) << v.status() << " at " << i;
    ASSERT_EQ(v->AsInt().value(), i);
  }
  here.Close();  // the worker's Receive ends: it exits
  int code = -1;
  w->OnExit([&](int c) { code = c; });
  loop.Run();
  EXPECT_EQ(code, 0);
}

// Two children talk over a channel the parent made, directly: the parent
// holds neither end once they are sent.
TEST(ProcessPortTest, ChildToChildDirectly) {
  Watchdog dog("child to child", absl::Seconds(120));
  const int64_t n = kSanitized ? 20000 : 200000;
  EventLoop loop;
  auto [x, y] = MessageChannel::Create();
  Value to_sender = Value::Map();
  to_sender.GetMap()->Set("port", std::move(x));
  to_sender.GetMap()->Set("n", n);
  Value to_counter = Value::Map();
  to_counter.GetMap()->Set("port", std::move(y));
  to_counter.GetMap()->Set("n", n);
  auto counter = Worker::Start("pw_count_on_port", Process(loop, std::move(to_counter)));
  auto sender = Worker::Start("pw_send_n_on_port", Process(loop, std::move(to_sender)));
  ASSERT_TRUE(counter.ok() && sender.ok());
  int64_t right = -1;
  counter->OnMessage([&](Value v) { right = *v.AsInt(); });
  sender->OnMessage([](Value) {});
  loop.Run();
  EXPECT_EQ(right, n);
}

// A port hops child -> grandchild; the parent talks to the grandchild.
TEST(ProcessPortTest, PortHopsToAGrandchild) {
  Watchdog dog("hop", absl::Seconds(60));
  EventLoop loop;
  auto [here, there] = MessageChannel::Create();
  Value data = Value::Map();
  data.GetMap()->Set("port", std::move(there));
  auto w = Worker::Start("pw_hop", Process(loop, std::move(data)));
  ASSERT_TRUE(w.ok()) << w.status();
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(here.PostMessage(Value(i)).ok());
    absl::StatusOr<Value> v = here.Receive(absl::Seconds(30));
    ASSERT_TRUE(v.ok()) << v.status();
    ASSERT_EQ(v->AsInt().value(), i);
  }
  here.Close();
  loop.Run();
}

// A port whose other end is held by a process no Worker of ours watches —
// a child's (the port is not its Worker's own) or, after a hop, a
// grandchild's — closes when that process is SIGKILLed: Receive returns
// Aborted naming its pid (PeerWatch), within a bounded time, and a post
// fails.
TEST(ProcessPortTest, PortClosesWhenTheProcessHoldingItsOtherEndDies) {
  Watchdog dog("holder death", absl::Seconds(120));
  const std::vector<std::string> shm_before = ShmNames();
  for (int round = 0; round < 6; ++round) {
    const bool hop = round % 2 == 1;
    EventLoop loop;
    auto [here, there] = MessageChannel::Create();
    Value data = Value::Map();
    data.GetMap()->Set("port", std::move(there));
    if (hop) data.GetMap()->Set("leaf", "pw_pid_then_echo_port");
    auto w = Worker::Start(hop ? "pw_hop" : "pw_pid_then_echo_port",
                           Process(loop, std::move(data)));
    ASSERT_TRUE(w.ok()) << w.status();
    Ending end;
    end.Attach(*w);
    absl::StatusOr<Value> pid = here.Receive(absl::Seconds(30));
    ASSERT_TRUE(pid.ok()) << pid.status();
    ASSERT_TRUE(here.PostMessage(Value("ping")).ok());
    ASSERT_EQ(*here.Receive(absl::Seconds(30))->AsString(), "ping");
    ASSERT_EQ(::kill(static_cast<pid_t>(*pid->AsInt()), SIGKILL), 0);
    const absl::Time killed = absl::Now();
    absl::StatusOr<Value> after = here.Receive(absl::Seconds(30));
    EXPECT_LT(absl::Now() - killed, absl::Seconds(10)) << "round " << round;
    ASSERT_EQ(after.status().code(), absl::StatusCode::kAborted) << after.status();
    EXPECT_NE(after.status().message().find(absl::StrCat("(pid ", *pid->AsInt(), ") died")),
              std::string::npos)
        << after.status();
    EXPECT_TRUE(here.closed());
    EXPECT_FALSE(here.PostMessage(Value("late")).ok());
    loop.Run();  // the worker (or the middle, once its leaf ended) reports its end
    EXPECT_NE(end.code, -100);
  }
  EXPECT_EQ(ShmNames(), shm_before);
}

// 10^6 messages into one port from 3 producer processes: the sending end
// goes from producer to producer (through the parent) while what the last
// one posted may still be in the ring; every message arrives once, in
// order per producer.
TEST(ProcessPortTest, MillionMessagesFromThreeProducersThroughOnePort) {
  Watchdog dog("three producers", absl::Seconds(240));
  const int64_t chunk = (kSanitized ? 60000 : 1000000) / 30;  // 10 hand-offs per producer
  const int64_t total = 30 * chunk;
  EventLoop loop;
  auto [sink, source] = MessageChannel::Create();
  std::vector<Worker> producers;
  for (int64_t id = 0; id < 3; ++id) {
    Value data = Value::Map();
    data.GetMap()->Set("id", id);
    auto p = Worker::Start("pw_producer", Process(loop, std::move(data)));
    ASSERT_TRUE(p.ok()) << p.status();
    producers.push_back(*std::move(p));
  }
  int64_t next_from = 0;
  int turn = 0;
  auto hand_out = [&](MessagePort port) {
    Value job = Value::Map();
    job.GetMap()->Set("port", std::move(port));
    job.GetMap()->Set("from", next_from);
    job.GetMap()->Set("count", chunk);
    next_from += chunk;
    ASSERT_TRUE(producers[turn++ % 3].PostMessage(std::move(job)).ok());
  };
  // The parent receives on `sink` from a thread of its own while the loop
  // passes the sending end around.
  std::vector<int64_t> next(3, -1);
  int64_t received = 0, out_of_order = 0;
  absl::Status reader_status;
  std::thread reader([&] {
    while (received < total) {
      absl::StatusOr<Value> v = sink.Receive(absl::Seconds(60));
      if (!v.ok()) {
        reader_status = v.status();
        for (Worker& q : producers) (void)q.Terminate();
        break;
      }
      const int64_t id = *(*v->GetArray())[0].AsInt();
      const int64_t i = *(*v->GetArray())[1].AsInt();
      if (i <= next[id]) ++out_of_order;
      next[id] = i;
      ++received;
    }
  });
  for (Worker& p : producers) {
    p.OnMessage([&](Value back) {
      MessagePort port = std::move(*back["port"]->GetPort());
      if (next_from < total) {
        hand_out(std::move(port));
      } else {
        for (Worker& q : producers) (void)q.Terminate();
      }
    });
  }
  hand_out(std::move(source));
  loop.Run();
  reader.join();
  EXPECT_TRUE(reader_status.ok()) << reader_status << " after " << received;
  EXPECT_EQ(received, total);
  EXPECT_EQ(out_of_order, 0);
}

// --- The transport's own faults (both ends here, over a real link) ----------

// Random and bit-flipped records written straight into the ring a port reads
// are message errors, in their place; good records around them still
// arrive. A record whose framing is broken is a last error, then the close.
TEST(ShmChannelTest, HostileRecordsAreMessageErrors) {
  Watchdog dog("hostile", absl::Seconds(30));
  auto link = runtime_internal::ShmLink::Create().value();
  auto end = runtime_internal::ShmChannelEnd::Open(link, 0).value();
  MessagePort port = runtime_internal::PortAccess::OverLink(std::move(end), PortOptions{});
  // A raw writer on the ring this port reads (end 1's ring).
  auto raw = runtime_internal::ShmRing::Attach(link->ring(1), link->ring_bytes()).value();
  const std::string good = EncodeValue(Value("good")).value();
  std::string flipped = EncodeValue(Value::Array(1, 2, "three")).value();
  flipped[5] ^= 0x40;
  const std::vector<std::string> records = {good, "garbage", flipped, std::string(),
                                            std::string("F\0\0\0\0\0\0\0", 8), good};
  for (const std::string& r : records) ASSERT_EQ(raw.TryWrite(r), runtime_internal::RingWrite::kOk);
  EventLoop loop;
  std::vector<std::string> seen;
  port.OnMessage([&](Value v) { seen.push_back(std::string(*v.AsString())); });
  port.OnMessageError([&](absl::Status s) { seen.push_back("error"); });
  port.OnClose([&] { seen.push_back("close"); });
  ASSERT_TRUE(port.Start(loop).ok());
  loop.RunUntil(absl::Now() + absl::Milliseconds(200));
  EXPECT_EQ(seen, (std::vector<std::string>{"good", "error", "error", "error", "error", "good"}));
  // Broken framing: a record header claiming more than the ring allows.
  runtime_internal::ShmRecordHeader bad{1u << 30, runtime_internal::ShmRing::kData};
  auto& h = raw.HeaderForTesting();
  const uint64_t t = h.tail.load();
  std::memcpy(raw.RecordsForTesting().data() + (t & (raw.capacity() - 1)), &bad, sizeof bad);
  h.tail.store(t + 8);
  h.readable.Notify();
  loop.Run();
  EXPECT_EQ(seen.size(), 8u);
  EXPECT_EQ(seen[6], "error");
  EXPECT_EQ(seen[7], "close");
}

TEST(ShmChannelTest, ReceiveAfterThePeerDiedNamesTheCause) {
  auto pair = runtime_internal::PortAccess::ShmPairForTesting(PortOptions{}).value();
  ASSERT_TRUE(pair.second.PostMessage(Value(1)).ok());
  runtime_internal::PortAccess::Shm(pair.first)
      ->PeerGone(absl::AbortedError("port closed: worker killed by signal 9 (SIGKILL)"));
  EXPECT_EQ(pair.first.Receive(absl::Seconds(5)).value().AsInt().value(), 1);  // published: kept
  absl::StatusOr<Value> after = pair.first.Receive(absl::Seconds(5));
  EXPECT_EQ(after.status().code(), absl::StatusCode::kAborted);
  EXPECT_NE(after.status().message().find("SIGKILL"), std::string::npos) << after.status();
  EXPECT_TRUE(pair.first.closed());
}

}  // namespace
}  // namespace wharf

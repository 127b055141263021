#include "wharf/runtime/worker.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/runtime/worker_isolations.h"
#include "tests/testing/watchdog.h"
#include "wharf/runtime/error_record.h"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/future.h"
#include "wharf/runtime/message_port.h"
#include "wharf/runtime/value.h"
#include "wharf/sync/atomics.h"
#include "wharf/sync/cond_var.h"
#include "wharf/sync/interrupt.h"
#include "wharf/sync/mutex.h"
#include "wharf/sync/semaphore.h"

namespace wharf {
namespace {

std::string Str(const Value& v) { return std::string(v.AsString().value()); }

// --- Entries of the typed suite: everything they need comes in worker_data
// or messages, so that any isolation can run them. ---------------------------

// Echoes every message; closes its port after echoing "c".
WHARF_WORKER_ENTRY(wt_echo) {
  ctx.parent_port().OnMessage([&ctx](Value v) {
    const bool last = v.IsString() && Str(v) == "c";
    (void)ctx.parent_port().PostMessage(std::move(v));
    if (last) ctx.parent_port().Close();
  });
}

// Posts its worker_data back.
WHARF_WORKER_ENTRY(wt_return_data) {
  (void)ctx.parent_port().PostMessage(std::move(ctx.worker_data()));
}

// Posts 0..n-1 (n = worker_data) and returns.
WHARF_WORKER_ENTRY(wt_post_n) {
  const int64_t n = ctx.worker_data().AsInt().value_or(0);
  for (int64_t i = 0; i < n; ++i) (void)ctx.parent_port().PostMessage(Value(i));
}

// Posts "before", then throws std::runtime_error("boom").
WHARF_WORKER_ENTRY(wt_throw_runtime_error) {
  (void)ctx.parent_port().PostMessage(Value("before"));
  throw std::runtime_error("boom");
}

// An exception type of the user's, with a what() that returns null.
struct NullWhat : std::exception {
  const char* what() const noexcept override { return nullptr; }
};
WHARF_WORKER_ENTRY(wt_throw_null_what) { throw NullWhat(); }

// Throws an int from a loop callback while its port keeps it alive.
WHARF_WORKER_ENTRY(wt_throw_int_in_callback) {
  ctx.parent_port().OnMessage([](Value) {});
  ctx.loop().SetTimeout(absl::Milliseconds(5), [] { throw 42; });
}

// Exit(7): the code after it still runs (and finds the port closed); the
// first decided code wins.
WHARF_WORKER_ENTRY(wt_exit_7) {
  ctx.parent_port().OnMessage([](Value) {});  // would keep it alive
  (void)ctx.parent_port().PostMessage(Value("bye"));
  ctx.Exit(7);
  ctx.Exit(9);
  if (!ctx.terminating()) throw std::logic_error("not terminating after Exit");
  if (ctx.parent_port().PostMessage(Value("after")).ok()) {
    throw std::logic_error("posted after Exit");
  }
}

// ExitNow(worker_data) from deep inside, through a catch (std::exception&):
// nothing after it runs.
// (GCC calls the recursion infinite: ExitNow is [[noreturn]], so no call
// returns — which is the point.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winfinite-recursion"
void DeepExitNow(WorkerContext& ctx, int depth) {
  if (depth > 0) DeepExitNow(ctx, depth - 1);
  ctx.ExitNow(static_cast<int>(ctx.worker_data().AsInt().value_or(0)));
}
#pragma GCC diagnostic pop
WHARF_WORKER_ENTRY(wt_exit_now) {
  ctx.parent_port().OnMessage([](Value) {});
  try {
    DeepExitNow(ctx, 20);
  } catch (const std::exception&) {
    (void)ctx.parent_port().PostMessage(Value("swallowed"));
  }
  (void)ctx.parent_port().PostMessage(Value("after ExitNow"));
}

// Posts "ready", then blocks in Receive() until terminated.
WHARF_WORKER_ENTRY(wt_ready_then_receive) {
  (void)ctx.parent_port().PostMessage(Value("ready"));
  (void)ctx.parent_port().Receive();
}

// Posts "ready", then idles in its loop (a handler keeps it alive).
WHARF_WORKER_ENTRY(wt_ready_then_idle) {
  ctx.parent_port().OnMessage([](Value) {});
  (void)ctx.parent_port().PostMessage(Value("ready"));
}

// Posts "late" from a timer, 30 ms in.
WHARF_WORKER_ENTRY(wt_post_late) {
  ctx.loop().SetTimeout(absl::Milliseconds(30),
                        [&ctx] { (void)ctx.parent_port().PostMessage(Value("late")); });
}

// Posts a, b, c; waits for one message; posts d.
WHARF_WORKER_ENTRY(wt_abc_wait_d) {
  for (const char* s : {"a", "b", "c"}) (void)ctx.parent_port().PostMessage(Value(s));
  (void)ctx.parent_port().Receive();
  (void)ctx.parent_port().PostMessage(Value("d"));
}

// Posts 0, 1, 2; then, if worker_data is true, blocks until terminated.
WHARF_WORKER_ENTRY(wt_three_then_maybe_block) {
  for (int k = 0; k < 3; ++k) (void)ctx.parent_port().PostMessage(Value(k));
  if (ctx.worker_data().AsBool().value_or(false)) (void)ctx.parent_port().Receive();
}

// Takes the port in worker_data["port"] and relays what arrives on it to its
// parent until that port closes.
WHARF_WORKER_ENTRY(wt_relay_port) {
  Value* slot = ctx.worker_data()["port"];
  if (slot == nullptr || !slot->IsPort()) throw std::invalid_argument("no port in worker_data");
  MessagePort& port = *slot->GetPort();
  for (;;) {
    absl::StatusOr<Value> v = port.Receive();
    if (!v.ok()) break;
    (void)ctx.parent_port().PostMessage(*std::move(v));
  }
  (void)ctx.parent_port().PostMessage(Value("port closed"));
}

// Posts "a", "b", then moves its parent port away (into a Value it drops
// later) and returns: the owner must still learn of the end.
WHARF_WORKER_ENTRY(wt_post_two_and_give_away_port) {
  (void)ctx.parent_port().PostMessage(Value("a"));
  (void)ctx.parent_port().PostMessage(Value("b"));
  static MessagePort kept;  // outlives the worker: its end never closes by itself
  kept = std::move(ctx.parent_port());
}

// Starts a child that throws (wt_throw_runtime_error) and sets no OnError on
// it: the child's error becomes this worker's own.
WHARF_WORKER_ENTRY(wt_nested_unhandled) {
  auto child = Worker::Start("wt_throw_runtime_error");
  if (!child.ok()) throw std::runtime_error(child.status().ToString());
  // Kept until its exit is delivered (a Worker may be destroyed from its
  // own handlers).
  auto* kept = new Worker(*std::move(child));
  kept->OnExit([kept](int) { delete kept; });
}

// Records every owner-side event as a string, in delivery order.
struct Events {
  std::vector<std::string> log;
  std::optional<ErrorRecord> error;
  int exit_code = -100;
  void Attach(Worker& w) {
    w.OnOnline([this] { log.push_back("online"); });
    w.OnMessage([this](Value v) {
      log.push_back(v.IsString() ? "msg:" + Str(v) : "msg:#" + std::to_string(*v.AsInt()));
    });
    w.OnError([this](const ErrorRecord& e) {
      error = e;
      log.push_back("error:" + e.message);
    });
    w.OnExit([this](int code) {
      log.push_back("exit:" + std::to_string(code));
      exit_code = code;
    });
  }
};

template <class Isolation>
class WorkerTest : public ::testing::Test {
 protected:
  static absl::StatusOr<Worker> Start(WorkerEntry entry, WorkerOptions options = {}) {
    return Isolation::Start(std::move(entry), std::move(options));
  }
};
TYPED_TEST_SUITE(WorkerTest, testing::WorkerIsolations, testing::IsolationName);

using ::wharf::testing::Watchdog;

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

// Rounds of the race tests: a process start costs ~20 ms (~150 ms under a
// sanitizer), a thread start ~50 µs.
template <class Isolation>
constexpr int RaceRounds() {
  if (Isolation::kSharesMemory) return 200;
  return kSanitized ? 15 : 60;
}

TYPED_TEST(WorkerTest, EchoRoundTrip) {
  Watchdog dog("echo", absl::Seconds(30));
  EventLoop loop;
  auto w = this->Start("wt_echo", WorkerOptions{.loop = &loop});
  ASSERT_TRUE(w.ok()) << w.status();
  Events ev;
  ev.Attach(*w);
  for (const char* s : {"a", "b", "c"}) ASSERT_TRUE(w->PostMessage(Value(s)).ok());
  loop.Run();
  EXPECT_EQ(ev.log, (std::vector<std::string>{"online", "msg:a", "msg:b", "msg:c", "exit:0"}));
  // After the exit: the port is closed and Terminate reports the code.
  EXPECT_EQ(w->PostMessage(Value("late")).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(w->Terminate().Get().value(), 0);
}

TYPED_TEST(WorkerTest, WorkerDataRoundTrip) {
  Watchdog dog("worker_data", absl::Seconds(30));
  EventLoop loop;
  Value data = Value::Map();
  data.GetMap()->Set("n", 42);
  data.GetMap()->Set("buf", Buffer::Allocate(1024).value());
  std::byte* bytes = data["buf"]->GetBuffer()->data();
  bytes[7] = std::byte{99};
  auto w = this->Start("wt_return_data",
                       WorkerOptions{.worker_data = std::move(data), .loop = &loop});
  ASSERT_TRUE(w.ok()) << w.status();
  std::optional<Value> got;
  w->OnMessage([&](Value v) { got = std::move(v); });
  loop.Run();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*(*got)["n"]->AsInt(), 42);
  Buffer* buf = (*got)["buf"]->GetBuffer();
  ASSERT_NE(buf, nullptr);
  if (TypeParam::kSharesMemory) {
    EXPECT_EQ(buf->data(), bytes);  // moved, never copied
  }
  EXPECT_EQ(buf->data()[7], std::byte{99});
}

TYPED_TEST(WorkerTest, OnlineBeforeMessagesAndMessagesBeforeExit) {
  Watchdog dog("ordering", absl::Seconds(60));
  constexpr int kN = 5000;  // > the dispatcher's 1024-delivery batch
  for (int round = 0; round < 5; ++round) {
    EventLoop loop;
    auto w = this->Start("wt_post_n", WorkerOptions{.worker_data = Value(kN), .loop = &loop});
    ASSERT_TRUE(w.ok());
    Events ev;
    ev.Attach(*w);
    loop.Run();
    ASSERT_EQ(ev.log.size(), kN + 2u);
    EXPECT_EQ(ev.log.front(), "online");
    for (int i = 0; i < kN; ++i) ASSERT_EQ(ev.log[i + 1], "msg:#" + std::to_string(i));
    EXPECT_EQ(ev.log.back(), "exit:0");
  }
}

TYPED_TEST(WorkerTest, UncaughtExceptionIsAnErrorRecord) {
  Watchdog dog("entry exception", absl::Seconds(30));
  EventLoop loop;
  auto w = this->Start("wt_throw_runtime_error", WorkerOptions{.loop = &loop});
  ASSERT_TRUE(w.ok());
  Events ev;
  ev.Attach(*w);
  std::string as_text;
  loop.Run();
  EXPECT_EQ(ev.log,
            (std::vector<std::string>{"online", "msg:before", "error:boom", "exit:1"}));
  ASSERT_TRUE(ev.error.has_value());
  EXPECT_EQ(ev.error->type, "std::runtime_error");
  EXPECT_EQ(ev.error->message, "boom");
  EXPECT_EQ(ev.error->ToString(), "std::runtime_error: boom");
}

TYPED_TEST(WorkerTest, PlainTextOnErrorGetsTheMessage) {
  Watchdog dog("text error", absl::Seconds(30));
  EventLoop loop;
  auto w = this->Start("wt_throw_runtime_error", WorkerOptions{.loop = &loop});
  ASSERT_TRUE(w.ok());
  std::string what;
  w->OnError([&](std::string s) { what = std::move(s); });
  loop.Run();
  EXPECT_EQ(what, "boom");
}

TYPED_TEST(WorkerTest, NullWhatAndNonStandardExceptionsAreRecords) {
  Watchdog dog("odd exceptions", absl::Seconds(30));
  {
    // Before: a what() returning null aborted the process in the worker.
    EventLoop loop;
    auto w = this->Start("wt_throw_null_what", WorkerOptions{.loop = &loop});
    ASSERT_TRUE(w.ok());
    Events ev;
    ev.Attach(*w);
    loop.Run();
    ASSERT_TRUE(ev.error.has_value());
    EXPECT_EQ(ev.error->type, "wharf::(anonymous namespace)::NullWhat");
    EXPECT_EQ(ev.error->message, "");
    EXPECT_EQ(ev.exit_code, 1);
  }
  {
    EventLoop loop;
    auto w = this->Start("wt_throw_int_in_callback", WorkerOptions{.loop = &loop});
    ASSERT_TRUE(w.ok());
    Events ev;
    ev.Attach(*w);
    loop.Run();
    ASSERT_TRUE(ev.error.has_value());
    EXPECT_EQ(ev.error->type, "int");
    EXPECT_EQ(ev.log.back(), "exit:1");
  }
}

TYPED_TEST(WorkerTest, ExitWithCode) {
  Watchdog dog("exit code", absl::Seconds(30));
  EventLoop loop;
  auto w = this->Start("wt_exit_7", WorkerOptions{.loop = &loop});
  ASSERT_TRUE(w.ok());
  Events ev;
  ev.Attach(*w);
  loop.Run();
  EXPECT_EQ(ev.log, (std::vector<std::string>{"online", "msg:bye", "exit:7"}));
  EXPECT_EQ(w->Terminate().Get().value(), 7);
}

// Node's process.exit() in a worker: from any depth, nothing after it runs,
// a catch (std::exception&) does not stop it, and it is not an error.
TYPED_TEST(WorkerTest, ExitNowEndsTheWorkerAtOnce) {
  Watchdog dog("ExitNow", absl::Seconds(30));
  EventLoop loop;
  auto w = this->Start("wt_exit_now", WorkerOptions{.worker_data = Value(5), .loop = &loop});
  ASSERT_TRUE(w.ok());
  Events ev;
  ev.Attach(*w);
  loop.Run();
  EXPECT_EQ(ev.log, (std::vector<std::string>{"online", "exit:5"}));
  EXPECT_FALSE(ev.error.has_value());
}

TYPED_TEST(WorkerTest, TerminateWhileBlockedInReceive) {
  Watchdog dog("terminate in Receive", absl::Seconds(30));
  EventLoop loop;
  auto w = this->Start("wt_ready_then_receive", WorkerOptions{.loop = &loop});
  ASSERT_TRUE(w.ok());
  Events ev;
  ev.Attach(*w);
  Future<int> f;
  w->OnMessage([&](Value) { f = w->Terminate(); });
  loop.Run();
  EXPECT_FALSE(ev.error.has_value());
  EXPECT_EQ(ev.exit_code, 1);
  EXPECT_EQ(f.Get().value(), 1);
  EXPECT_EQ(w->Terminate().Get().value(), 1);  // idempotent
}

TYPED_TEST(WorkerTest, TerminateWhileIdleInLoopFromAnotherThread) {
  Watchdog dog("terminate idle", absl::Seconds(30));
  EventLoop loop;
  auto w = this->Start("wt_ready_then_idle", WorkerOptions{.loop = &loop});
  ASSERT_TRUE(w.ok());
  Events ev;
  ev.Attach(*w);
  std::thread killer;
  Future<int> f;
  w->OnMessage([&](Value) {
    killer = std::thread([&] { f = w->Terminate(); });
  });
  loop.Run();
  killer.join();
  EXPECT_EQ(ev.log.back(), "exit:1");
  EXPECT_EQ(f.Get().value(), 1);
}

TYPED_TEST(WorkerTest, TerminateBlockingGetOnOwnerThread) {
  Watchdog dog("terminate Get", absl::Seconds(30));
  EventLoop loop;
  auto w = this->Start("wt_ready_then_receive", WorkerOptions{.loop = &loop});
  ASSERT_TRUE(w.ok());
  // The future completes on the worker's side: no owner loop needed.
  EXPECT_EQ(w->Terminate().Get().value(), 1);
  int code = -1;
  w->OnExit([&](int c) { code = c; });
  loop.Run();  // the exit is delivered now
  EXPECT_EQ(code, 1);
}

TYPED_TEST(WorkerTest, TerminateRacesNaturalExit) {
  Watchdog dog("terminate vs exit", absl::Seconds(120));
  for (int i = 0; i < RaceRounds<TypeParam>(); ++i) {
    EventLoop loop;
    auto w = this->Start("wt_post_n", WorkerOptions{.worker_data = Value(1), .loop = &loop});
    ASSERT_TRUE(w.ok());
    int exit_code = -1;
    int exits = 0;
    w->OnExit([&](int c) {
      exit_code = c;
      ++exits;
    });
    Future<int> f1, f2;
    std::thread t([&] { f1 = w->Terminate(); });
    if (i % 2 == 0) f2 = w->Terminate();
    loop.Run();
    t.join();
    ASSERT_EQ(exits, 1);
    ASSERT_TRUE(exit_code == 0 || exit_code == 1) << exit_code;
    ASSERT_EQ(f1.Get().value(), exit_code);
    if (i % 2 == 0) {
      ASSERT_EQ(f2.Get().value(), exit_code);
    }
  }
}

TYPED_TEST(WorkerTest, UnrefAndDestroyRaceExit) {
  Watchdog dog("unref/destroy vs exit", absl::Seconds(120));
  for (int i = 0; i < RaceRounds<TypeParam>(); ++i) {
    EventLoop loop;
    auto w = this->Start("wt_post_n", WorkerOptions{.worker_data = Value(1), .loop = &loop});
    ASSERT_TRUE(w.ok());
    w->OnMessage([](Value) {});
    w->Unref();
    EXPECT_FALSE(w->HasRef());
    if (i % 3 == 1) w->Ref();
    if (i % 3 == 2) w->Unref();  // idempotent
    loop.Run();                   // returns at once, or after the exit when re-ref'd
    if (i % 2 == 0) {
      std::thread t([&] { (void)w->Terminate(); });
      t.join();
    }
    // ~Worker: terminate + join, racing the worker's own exit.
  }
}

TYPED_TEST(WorkerTest, DestroyFromInsideItsOwnHandlers) {
  Watchdog dog("destroy in handler", absl::Seconds(60));
  for (int i = 0; i < std::min(50, RaceRounds<TypeParam>()); ++i) {
    EventLoop loop;
    std::optional<Worker> w;
    auto s = this->Start("wt_three_then_maybe_block",
                         WorkerOptions{.worker_data = Value(i % 2 == 0), .loop = &loop});
    ASSERT_TRUE(s.ok());
    w.emplace(*std::move(s));
    int messages = 0;
    if (i % 2 == 0) {
      w->OnMessage([&](Value) {
        ++messages;
        w.reset();  // destroys the port that is delivering this message
      });
    } else {
      w->OnExit([&](int) { w.reset(); });
    }
    loop.Run();
    EXPECT_FALSE(w.has_value());
    if (i % 2 == 0) {
      EXPECT_EQ(messages, 1);
    }
  }
}

TYPED_TEST(WorkerTest, OwnerLoopRunReturnsAfterWorkerExits) {
  Watchdog dog("ref rule", absl::Seconds(30));
  EventLoop loop;
  auto w = this->Start("wt_post_late", WorkerOptions{.loop = &loop});
  ASSERT_TRUE(w.ok());
  EXPECT_TRUE(w->HasRef());
  Events ev;
  ev.Attach(*w);
  loop.Run();  // nothing else keeps the loop alive: the worker does
  EXPECT_EQ(ev.log, (std::vector<std::string>{"online", "msg:late", "exit:0"}));
  EXPECT_FALSE(w->HasRef());
}

// Node's worker.threadId is -1 once the worker has exited.
TYPED_TEST(WorkerTest, IdIsMinusOneAfterExit) {
  Watchdog dog("id after exit", absl::Seconds(30));
  EventLoop loop;
  auto w = this->Start("wt_post_n", WorkerOptions{.worker_data = Value(0), .loop = &loop});
  ASSERT_TRUE(w.ok());
  const int64_t id = w->id();
  EXPECT_GT(id, 0);
  int64_t in_exit = 0;
  w->OnExit([&](int) { in_exit = w->id(); });
  loop.Run();
  EXPECT_EQ(in_exit, -1);
  EXPECT_EQ(w->id(), -1);
}

TYPED_TEST(WorkerTest, MessagesWithoutHandlerAreKeptUntilOnMessage) {
  Watchdog dog("kept messages", absl::Seconds(30));
  EventLoop loop;
  auto w = this->Start("wt_abc_wait_d", WorkerOptions{.loop = &loop});
  ASSERT_TRUE(w.ok());
  std::vector<std::string> log;
  w->OnExit([&](int code) { log.push_back("exit:" + std::to_string(code)); });
  loop.SetTimeout(absl::Milliseconds(30), [&] {
    w->OnMessage([&](Value v) { log.push_back(Str(v)); });
    EXPECT_TRUE(log.empty());  // delivered from the loop, not inside the setter
    ASSERT_TRUE(w->PostMessage(Value("go")).ok());
  });
  loop.Run();
  EXPECT_EQ(log, (std::vector<std::string>{"a", "b", "c", "d", "exit:0"}));
}

TYPED_TEST(WorkerTest, MessagesKeptAtExitAreDeliveredBeforeExit) {
  Watchdog dog("kept at exit", absl::Seconds(30));
  EventLoop loop;
  std::vector<std::string> log;
  std::optional<Worker> w;
  loop.Post([&] {
    auto started = this->Start("wt_three_then_maybe_block", WorkerOptions{.worker_data = false});
    ASSERT_TRUE(started.ok());
    w.emplace(*std::move(started));
    w->OnExit([&](int code) {
      log.push_back("exit:" + std::to_string(code));
      // Set late, from OnExit: too late, the kept messages were dropped.
      w->OnMessage([&](Value) { log.push_back("late"); });
    });
  });
  loop.Run();
  EXPECT_EQ(log, (std::vector<std::string>{"exit:0"}));

  // With a handler set after the messages arrived but before the exit is
  // processed, all are delivered, in order, before OnExit.
  EventLoop loop2;
  std::vector<std::string> log2;
  auto w2 = this->Start("wt_three_then_maybe_block",
                        WorkerOptions{.worker_data = true, .loop = &loop2});
  ASSERT_TRUE(w2.ok());
  w2->OnExit([&](int code) { log2.push_back("exit:" + std::to_string(code)); });
  // 30 ms after the entry started (a process takes longer than that to
  // start on a loaded machine): its three messages are waiting by then.
  w2->OnOnline([&] {
    loop2.SetTimeout(absl::Milliseconds(30), [&] {
      w2->OnMessage([&](Value v) { log2.push_back("#" + std::to_string(*v.AsInt())); });
      (void)w2->Terminate();
    });
  });
  loop2.Run();
  EXPECT_EQ(log2, (std::vector<std::string>{"#0", "#1", "#2", "exit:1"}));
}

TYPED_TEST(WorkerTest, WorkerDataWithTransferList) {
  Watchdog dog("transfer", absl::Seconds(30));
  EventLoop loop;
  Value data = Value::Map();
  data.GetMap()->Set("moved", Buffer::Allocate(64).value());
  data.GetMap()->Set("copied", Buffer::Allocate(64).value());
  Buffer* moved = data["moved"]->GetBuffer();
  Buffer* copied = data["copied"]->GetBuffer();
  moved->data()[3] = std::byte{7};
  copied->data()[5] = std::byte{9};
  const std::byte* moved_bytes = moved->data();
  const std::byte* copied_bytes = copied->data();
  auto w = this->Start(
      "wt_return_data",
      // The Map's elements keep their addresses when `data` moves.
      WorkerOptions{.worker_data = std::move(data), .transfer = {moved}, .loop = &loop});
  ASSERT_TRUE(w.ok()) << w.status();
  std::optional<Value> got;
  w->OnMessage([&](Value v) { got = std::move(v); });
  loop.Run();
  ASSERT_TRUE(got.has_value());
  Buffer* m = (*got)["moved"]->GetBuffer();
  Buffer* c = (*got)["copied"]->GetBuffer();
  ASSERT_NE(m, nullptr);
  ASSERT_NE(c, nullptr);
  if (TypeParam::kSharesMemory) {
    EXPECT_EQ(m->data(), moved_bytes);   // transferred: the same memory
    EXPECT_NE(c->data(), copied_bytes);  // not listed: a copy
  }
  EXPECT_EQ(m->data()[3], std::byte{7});
  EXPECT_EQ(c->data()[5], std::byte{9});
}

TYPED_TEST(WorkerTest, WorkerDataTransferListErrorStartsNothing) {
  Watchdog dog("transfer error", absl::Seconds(30));
  EventLoop loop;
  Value data = Value::Map();
  data.GetMap()->Set("buf", Buffer::Allocate(64).value());
  Buffer* buf = data["buf"]->GetBuffer();
  auto w = this->Start("wt_post_n", WorkerOptions{.worker_data = std::move(data),
                                                  .transfer = {buf, buf},  // listed twice
                                                  .loop = &loop});
  ASSERT_FALSE(w.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(w.status())) << w.status();
  EXPECT_NE(std::string(w.status().message()).find("DataCloneError"), std::string::npos)
      << w.status();
  loop.Run();  // nothing ref'd: returns at once
}

// Node's "ports in workerData" idiom without a transfer list: the port moves
// with worker_data, checked and detached as by PostMessage(Value&&). Before,
// a port started on the owner's loop kept delivering to its old handler there
// while the worker's Receive() starved (and TSan saw the two threads race).
TYPED_TEST(WorkerTest, PortInWorkerDataIsDetachedFromTheOwnerLoop) {
  if (!TypeParam::kCarriesPorts) GTEST_SKIP() << "ports do not cross processes yet";
  Watchdog dog("port in worker_data", absl::Seconds(30));
  EventLoop loop;
  auto [mine, theirs] = MessageChannel::Create();
  int stolen = 0;
  theirs.OnMessage([&](Value) { ++stolen; });  // started on `loop`
  ASSERT_TRUE(theirs.Start(loop).ok());
  ASSERT_TRUE(mine.PostMessage(Value("queued before the hand-over")).ok());
  Value data = Value::Map();
  data.GetMap()->Set("port", std::move(theirs));
  auto w = this->Start("wt_relay_port", WorkerOptions{.worker_data = std::move(data), .loop = &loop});
  ASSERT_TRUE(w.ok()) << w.status();
  std::vector<std::string> relayed;
  w->OnMessage([&](Value v) {
    relayed.push_back(Str(v));
    if (relayed.size() == 1) {
      ASSERT_TRUE(mine.PostMessage(Value("after")).ok());
      mine.Close();
    }
  });
  loop.Run();
  EXPECT_EQ(stolen, 0);
  EXPECT_EQ(relayed, (std::vector<std::string>{"queued before the hand-over", "after",
                                               "port closed"}));
}

TYPED_TEST(WorkerTest, ClosedOrOwnPortInWorkerDataIsADataCloneError) {
  EventLoop loop;
  auto [a, b] = MessageChannel::Create();
  b.Close();
  Value data = Value::Map();
  data.GetMap()->Set("port", std::move(a));
  auto w = this->Start("wt_relay_port", WorkerOptions{.worker_data = std::move(data), .loop = &loop});
  ASSERT_FALSE(w.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(w.status())) << w.status();
  EXPECT_NE(std::string(w.status().message()).find("DataCloneError"), std::string::npos)
      << w.status();
}

// The owner learns of the end even when nothing closes the worker's end of
// the channel, and a handler unset after the end does not hold it up.
TYPED_TEST(WorkerTest, ExitIsDeliveredWhateverHappensToTheChannel) {
  Watchdog dog("exit without close", absl::Seconds(30));
  EventLoop loop;
  auto w = this->Start("wt_post_two_and_give_away_port", WorkerOptions{.loop = &loop});
  ASSERT_TRUE(w.ok());
  std::vector<std::string> log;
  w->OnMessage([&](Value v) {
    log.push_back(Str(v));
    absl::SleepFor(absl::Milliseconds(20));  // the worker ends meanwhile
    w->OnMessage(nullptr);                    // "b" is then dropped
  });
  w->OnExit([&](int code) { log.push_back("exit:" + std::to_string(code)); });
  loop.Run();
  EXPECT_EQ(log, (std::vector<std::string>{"a", "exit:0"}));
}

// --- Owner-side handlers that throw ---------------------------------------------

// Before: the handler saw the exception once, then Run() never returned (a
// loop ref was never released, the thread not joined until ~Worker), and a
// throw from OnError skipped OnExit.
TYPED_TEST(WorkerTest, ThrowingOnErrorStillRunsOnExitAndReleasesTheLoop) {
  Watchdog dog("throwing owner handlers", absl::Seconds(30));
  EventLoop loop;
  std::vector<std::string> seen;
  loop.OnUncaughtException([&](std::exception_ptr e) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      seen.push_back(ex.what());
    }
  });
  auto w = this->Start("wt_throw_runtime_error", WorkerOptions{.loop = &loop});
  ASSERT_TRUE(w.ok());
  bool exited = false;
  w->OnError([](const ErrorRecord&) { throw std::runtime_error("from OnError"); });
  w->OnExit([&](int code) {
    exited = true;
    EXPECT_EQ(code, 1);
    throw std::runtime_error("from OnExit");
  });
  loop.Run();  // returns: the ref was released despite the throws
  EXPECT_TRUE(exited);
  // The first exception propagates; the second is dropped.
  EXPECT_EQ(seen, (std::vector<std::string>{"from OnError"}));
  EXPECT_FALSE(w->HasRef());
  EXPECT_EQ(loop.RefCountForTesting(), 0);
}

TYPED_TEST(WorkerTest, ThrowingOnExitWithoutALoopHandlerPropagatesOutOfRun) {
  Watchdog dog("throwing OnExit", absl::Seconds(30));
  EventLoop loop;
  auto w = this->Start("wt_post_n", WorkerOptions{.worker_data = Value(2), .loop = &loop});
  ASSERT_TRUE(w.ok());
  int messages = 0;
  w->OnMessage([&](Value) { ++messages; });
  w->OnExit([](int) { throw std::logic_error("from OnExit"); });
  EXPECT_THROW(loop.Run(), std::logic_error);
  EXPECT_EQ(messages, 2);
  EXPECT_EQ(loop.RefCountForTesting(), 0);
  loop.Run();  // consistent and runnable: nothing left, returns
}

// Node: an 'error' of a child worker that nobody listens to becomes the
// parent's own uncaught error — test-worker-nested-uncaught.js.
TYPED_TEST(WorkerTest, NestedWorkersUnhandledErrorClimbsToTheParent) {
  Watchdog dog("nested error", absl::Seconds(30));
  EventLoop loop;
  auto w = this->Start("wt_nested_unhandled", WorkerOptions{.loop = &loop});
  ASSERT_TRUE(w.ok());
  Events ev;
  ev.Attach(*w);
  loop.Run();
  ASSERT_TRUE(ev.error.has_value());
  EXPECT_EQ(ev.error->type, "std::runtime_error");  // the child's record, unchanged
  EXPECT_EQ(ev.error->message, "boom");
  EXPECT_EQ(ev.exit_code, 1);
}

// ...and at the top owner, with no OnError and no loop handler, Run() throws it.
TYPED_TEST(WorkerTest, UnhandledWorkerErrorIsThrownByTheTopLoop) {
  Watchdog dog("top error", absl::Seconds(30));
  EventLoop loop;
  auto w = this->Start("wt_nested_unhandled", WorkerOptions{.loop = &loop});
  ASSERT_TRUE(w.ok());
  int exit_code = -1;
  w->OnExit([&](int code) { exit_code = code; });  // still runs, before the throw
  try {
    loop.Run();
    ADD_FAILURE() << "Run() returned";
  } catch (const WorkerError& e) {
    EXPECT_EQ(e.record().type, "std::runtime_error");
    EXPECT_EQ(e.record().message, "boom");
    EXPECT_STREQ(e.what(), "std::runtime_error: boom");
  }
  EXPECT_EQ(exit_code, 1);
  loop.Run();
}

// --- Thread isolation only: entries that share the test's memory ----------------

TEST(ThreadWorkerTest, RegisteredEntries) {
  Watchdog dog("registry", absl::Seconds(30));
  EventLoop loop;
  // Once per process (the test may be repeated).
  static const bool registered =
      WorkerRegistry::Register("worker_test_dyn", [](WorkerContext& ctx) {
        (void)ctx.parent_port().PostMessage(Value("dyn"));
      }).ok();
  ASSERT_TRUE(registered);
  EXPECT_EQ(WorkerRegistry::Register("worker_test_dyn", [](WorkerContext&) {}).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(WorkerRegistry::Register("", [](WorkerContext&) {}).code(),
            absl::StatusCode::kInvalidArgument);

  auto unknown = Worker::Start("no_such_entry", WorkerOptions{.loop = &loop});
  ASSERT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(unknown.status().message().find("no_such_entry"), std::string_view::npos);

  std::vector<std::string> got;
  auto a = Worker::Start("worker_test_dyn", WorkerOptions{.loop = &loop});
  ASSERT_TRUE(a.ok()) << a.status();
  a->OnMessage([&](Value v) { got.push_back(Str(v)); });
  auto b = Worker::Start(std::string("wt_return_data"),
                         WorkerOptions{.worker_data = Value("macro"), .loop = &loop});
  ASSERT_TRUE(b.ok()) << b.status();
  b->OnMessage([&](Value v) { got.push_back(Str(v)); });
  loop.Run();
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{"dyn", "macro"}));
}

TEST(ThreadWorkerTest, StartNeedsALoop) {
  auto w = Worker::Start([](WorkerContext&) {});
  EXPECT_EQ(w.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(ThreadWorkerTest, StartFromLoopCallbackUsesCurrentLoop) {
  Watchdog dog("current loop", absl::Seconds(30));
  EventLoop loop;
  std::optional<Worker> w;
  int code = -1;
  loop.Post([&] {
    auto s = Worker::Start([](WorkerContext&) {});
    ASSERT_TRUE(s.ok()) << s.status();
    w.emplace(*std::move(s));
    w->OnExit([&](int c) { code = c; });
  });
  loop.Run();
  EXPECT_EQ(code, 0);
}

// ~Worker requests the interrupt and then closes the port, so the worker's
// Receive ends either way: Interrupted when the request reaches it first
// (asleep, or the request came before it slept), Cancelled when it sees the
// closed port first (both happen in one destructor: which one a loaded
// machine shows first is scheduling). What the destructor guarantees is
// that the Receive has ended, and the entry has left, before it returns.
TEST(ThreadWorkerTest, DestroyWhileRunningTerminatesAndJoins) {
  Watchdog dog("destroy", absl::Seconds(30));
  constexpr int kNotEnded = -1;
  constexpr int kInterrupted = -2;
  EventLoop loop;
  std::atomic<int> receive_code{kNotEnded};
  std::atomic<bool> entered{false};
  std::atomic<bool> left{false};
  {
    auto w = Worker::Start(
        [&](WorkerContext& ctx) {
          entered = true;
          struct Leaving {
            std::atomic<bool>& left;
            ~Leaving() { left = true; }
          } leaving{left};
          try {
            receive_code = static_cast<int>(ctx.parent_port().Receive().status().code());
          } catch (const Interrupted&) {
            receive_code = kInterrupted;
            throw;
          }
        },
        WorkerOptions{.loop = &loop});
    ASSERT_TRUE(w.ok());
    while (!entered.load()) absl::SleepFor(absl::Milliseconds(1));
    absl::SleepFor(absl::Milliseconds(5));  // most likely blocked in Receive now
  }
  const int code = receive_code.load();
  EXPECT_TRUE(code == kInterrupted || code == static_cast<int>(absl::StatusCode::kCancelled))
      << "Receive ended with " << code << " (" << kNotEnded << ": not ended)";
  EXPECT_TRUE(left.load());
  loop.Run();  // the queued exit record is a no-op now
}

TEST(ThreadWorkerTest, UnrefLetsOwnerLoopReturnWhileWorkerRuns) {
  Watchdog dog("unref", absl::Seconds(30));
  EventLoop loop;
  std::atomic<bool> released{false};
  auto w = Worker::Start(
      [&](WorkerContext& ctx) {
        while (!released.load()) absl::SleepFor(absl::Milliseconds(1));
      },
      WorkerOptions{.loop = &loop});
  ASSERT_TRUE(w.ok());
  bool exited = false;
  w->OnExit([&](int) { exited = true; });
  w->Unref();
  loop.Run();  // returns although the worker still runs
  EXPECT_FALSE(exited);
  released = true;
  w->Ref();  // before the worker finished: Run waits for the exit again
  loop.Run();
  EXPECT_TRUE(exited);
}

TEST(ThreadWorkerTest, IdentityAndMainActor) {
  Watchdog dog("identity", absl::Seconds(30));
  EXPECT_TRUE(IsMainActor());
  EXPECT_EQ(CurrentActorId(), 0u);
  EventLoop loop;
  struct Seen {
    std::atomic<bool> main{true};
    std::atomic<uint64_t> id{0}, current{0};
    std::string name;
  };
  Seen s1, s2;
  auto body = [](Seen* s) {
    return [s](WorkerContext& ctx) {
      s->main = IsMainActor();
      s->id = ctx.id();
      s->current = CurrentActorId();
      s->name = ctx.name();
      EXPECT_EQ(&ctx.loop(), EventLoop::Current());
    };
  };
  auto w1 = Worker::Start(body(&s1), WorkerOptions{.name = "first", .loop = &loop});
  auto w2 = Worker::Start(body(&s2), WorkerOptions{.name = "second", .loop = &loop});
  ASSERT_TRUE(w1.ok() && w2.ok());
  const int64_t id1 = w1->id();
  loop.Run();
  EXPECT_FALSE(s1.main);
  EXPECT_FALSE(s2.main);
  EXPECT_GT(s1.id.load(), 0u);
  EXPECT_GT(s2.id.load(), s1.id.load());
  EXPECT_EQ(static_cast<int64_t>(s1.id.load()), id1);
  EXPECT_EQ(w1->id(), -1);  // exited, as Node's threadId
  EXPECT_EQ(s1.current.load(), s1.id.load());
  EXPECT_EQ(s1.name, "first");
  EXPECT_EQ(w2->name(), "second");
  EXPECT_TRUE(IsMainActor());
}

TEST(ThreadWorkerTest, StackSizeApplied) {
  Watchdog dog("stack size", absl::Seconds(30));
  EventLoop loop;
  // Above the 8 MiB default: glibc may hand a smaller request a cached,
  // larger stack of an earlier thread.
  constexpr size_t kSize = size_t{20} << 20;
  std::atomic<size_t> seen{0};
  auto w = Worker::Start(
      [&](WorkerContext&) {
        pthread_attr_t attr;
        ASSERT_EQ(pthread_getattr_np(pthread_self(), &attr), 0);
        size_t size = 0;
        pthread_attr_getstacksize(&attr, &size);
        pthread_attr_destroy(&attr);
        seen = size;
      },
      WorkerOptions{.stack_size = kSize, .loop = &loop});
  ASSERT_TRUE(w.ok());
  loop.Run();
  EXPECT_GE(seen.load(), kSize);
  EXPECT_LE(seen.load(), 4 * kSize);
}

// ---- Terminate interrupts Wharf waits (sync/interrupt.h) ----

// Starts a worker that posts "ready" and then blocks in `block` (which never
// returns on its own); terminates it once "ready" arrives and checks that it
// ends as terminated: exit code 1, no OnError.
void ExpectTerminatedWhileBlocked(const char* what, std::function<void()> block) {
  Watchdog dog(what, absl::Seconds(60));
  EventLoop loop;
  auto w = Worker::Start(
      [block](WorkerContext& ctx) {
        (void)ctx.parent_port().PostMessage(Value("ready"));
        block();
        ADD_FAILURE() << "the blocking call returned";
      },
      WorkerOptions{.loop = &loop});
  ASSERT_TRUE(w.ok());
  Events ev;
  ev.Attach(*w);
  Future<int> f;
  w->OnMessage([&](Value v) {
    ev.log.push_back("msg:" + Str(v));
    // Give the worker time to fall asleep (not needed for correctness: a
    // request before the wait makes it throw at once).
    absl::SleepFor(absl::Milliseconds(20));
    f = w->Terminate();
  });
  loop.Run();
  EXPECT_EQ(ev.log, (std::vector<std::string>{"online", "msg:ready", "exit:1"})) << what;
  EXPECT_EQ(f.Get().value(), 1) << what;
}

TEST(ThreadWorkerTest, TerminateWhileBlockedInAtomicsWait) {
  int32_t cell = 0;  // nobody ever notifies it
  ExpectTerminatedWhileBlocked("atomics::Wait", [&] { (void)atomics::Wait(cell, 0); });
  alignas(8) int64_t wide = 0;
  ExpectTerminatedWhileBlocked("atomics::Wait 64", [&] { (void)atomics::Wait(wide, int64_t{0}); });
}

TEST(ThreadWorkerTest, TerminateWhileBlockedInMutexHeldByMain) {
  Mutex mu;
  mu.lock();  // held by the main thread for the whole test
  ExpectTerminatedWhileBlocked("Mutex", [&] { mu.lock(); });
  ExpectTerminatedWhileBlocked("Mutex::Lock", [&] { (void)mu.Lock(); });
  // The main thread's lock still works.
  EXPECT_TRUE(mu.HeldByCurrentThread());
  mu.unlock();
  EXPECT_TRUE(mu.try_lock());
  mu.unlock();
  EXPECT_EQ(mu.RawWordForTesting() & ~Mutex::kWaitersBit, 0u);
}

TEST(ThreadWorkerTest, TerminateWhileBlockedInCondVarAndSemaphore) {
  Mutex mu;
  CondVar cv;
  ExpectTerminatedWhileBlocked("CondVar", [&] {
    std::unique_lock<Mutex> lock(mu);
    cv.wait(lock, [] { return false; });
  });
  EXPECT_TRUE(mu.try_lock());  // released while the exception unwound
  mu.unlock();
  EXPECT_EQ(cv.WaitersForTesting(), 0u);

  Semaphore sem(0);
  ExpectTerminatedWhileBlocked("Semaphore", [&] { sem.acquire(); });
  EXPECT_EQ(sem.Count(), 0u);
  EXPECT_EQ(sem.RawWordForTesting(), 0u);
}

TEST(ThreadWorkerTest, TerminateInterruptsAgainAfterACatchAll) {
  int32_t cell = 0;
  ExpectTerminatedWhileBlocked("catch-all", [&] {
    try {
      (void)atomics::Wait(cell, 0);
    } catch (...) {
    }
    (void)atomics::Wait(cell, 0);  // the request is sticky
  });
}

TEST(ThreadWorkerTest, TerminateWhileBlockedInFutureGet) {
  Promise<int> never;
  Future<int> f = never.GetFuture();
  ExpectTerminatedWhileBlocked("Future::Get", [&] { (void)f.Get(); });
}

TEST(ThreadWorkerTest, InterruptedFromAnotherInterrupterIsAnError) {
  Watchdog dog("foreign interrupter", absl::Seconds(30));
  EventLoop loop;
  auto w = Worker::Start(
      [](WorkerContext&) {
        Interrupter mine;
        mine.Request();
        InterruptibleScope scope(mine);
        int32_t cell = 0;
        (void)atomics::Wait(cell, 0);
      },
      WorkerOptions{.loop = &loop});
  ASSERT_TRUE(w.ok());
  Events ev;
  ev.Attach(*w);
  loop.Run();
  ASSERT_TRUE(ev.error.has_value());
  EXPECT_EQ(ev.error->type, "wharf::Interrupted");
  EXPECT_EQ(ev.log.back(), "exit:1");
}

TEST(ThreadWorkerTest, DestroyWhileBlockedInAtomicsWait) {
  Watchdog dog("destroy in Wait", absl::Seconds(30));
  EventLoop loop;
  int32_t cell = 0;
  std::atomic<bool> entered{false};
  std::atomic<bool> interrupted{false};
  {
    auto w = Worker::Start(
        [&](WorkerContext&) {
          entered = true;
          try {
            (void)atomics::Wait(cell, 0);
          } catch (const Interrupted&) {
            interrupted = true;
            throw;
          }
        },
        WorkerOptions{.loop = &loop});
    ASSERT_TRUE(w.ok());
    while (!entered.load()) absl::SleepFor(absl::Milliseconds(1));
    absl::SleepFor(absl::Milliseconds(5));
  }  // ~Worker: interrupts and joins
  EXPECT_TRUE(interrupted.load());
  loop.Run();
}

}  // namespace
}  // namespace wharf

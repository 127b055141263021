#include "wharf/runtime/worker.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <optional>
#include <cstdint>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/watchdog.h"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/future.h"
#include "wharf/runtime/message_port.h"
#include "wharf/runtime/value.h"
#include "wharf/sync/atomics.h"
#include "wharf/sync/cond_var.h"
#include "wharf/sync/interrupt.h"
#include "wharf/sync/mutex.h"
#include "wharf/sync/semaphore.h"

WHARF_WORKER_ENTRY(worker_test_reply_name) {
  (void)ctx.parent_port().PostMessage(wharf::Value(ctx.name()));
}

namespace wharf {
namespace {

using ::wharf::testing::Watchdog;

constexpr int kRaceRounds = 200;

std::string Str(const Value& v) { return std::string(v.AsString().value()); }

// Records every owner-side event as a string, in delivery order.
struct Events {
  std::vector<std::string> log;
  int exit_code = -100;
  void Attach(Worker& w) {
    w.OnOnline([this] { log.push_back("online"); });
    w.OnMessage([this](Value v) {
      log.push_back(v.kind() == Value::Kind::kString ? "msg:" + Str(v)
                                                     : "msg:#" + std::to_string(*v.AsInt()));
    });
    w.OnError([this](std::string what) { log.push_back("error:" + what); });
    w.OnExit([this](int code) {
      log.push_back("exit:" + std::to_string(code));
      exit_code = code;
    });
  }
};

TEST(WorkerTest, EchoRoundTrip) {
  Watchdog dog("echo", absl::Seconds(30));
  EventLoop loop;
  auto w = Worker::Start(
      [](WorkerContext& ctx) {
        ctx.parent_port().OnMessage([&ctx](Value v) {
          bool last = Str(v) == "c";
          ASSERT_TRUE(ctx.parent_port().PostMessage(std::move(v)).ok());
          if (last) ctx.parent_port().Close();
        });
      },
      WorkerOptions{.loop = &loop});
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

TEST(WorkerTest, WorkerDataRoundTrip) {
  Watchdog dog("worker_data", absl::Seconds(30));
  EventLoop loop;
  Value data = Value::Map();
  data.GetMap()->Set("n", 42);
  data.GetMap()->Set("buf", Buffer::Allocate(1024).value());
  std::byte* bytes = data["buf"]->GetBuffer()->data();
  bytes[7] = std::byte{99};
  auto w = Worker::Start(
      [](WorkerContext& ctx) {
        ASSERT_TRUE(ctx.parent_port().PostMessage(std::move(ctx.worker_data())).ok());
      },
      WorkerOptions{.worker_data = std::move(data), .loop = &loop});
  ASSERT_TRUE(w.ok()) << w.status();
  std::optional<Value> got;
  w->OnMessage([&](Value v) { got = std::move(v); });
  loop.Run();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*(*got)["n"]->AsInt(), 42);
  Buffer* buf = (*got)["buf"]->GetBuffer();
  ASSERT_NE(buf, nullptr);
  EXPECT_EQ(buf->data(), bytes);  // moved all the way, never copied
  EXPECT_EQ(buf->data()[7], std::byte{99});
}

TEST(WorkerTest, RegisteredEntries) {
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
  auto b = Worker::Start(std::string("worker_test_reply_name"),
                         WorkerOptions{.name = "macro", .loop = &loop});
  ASSERT_TRUE(b.ok()) << b.status();
  b->OnMessage([&](Value v) { got.push_back(Str(v)); });
  loop.Run();
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{"dyn", "macro"}));
}

TEST(WorkerTest, StartNeedsALoop) {
  auto w = Worker::Start([](WorkerContext&) {});
  EXPECT_EQ(w.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(WorkerTest, StartFromLoopCallbackUsesCurrentLoop) {
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

TEST(WorkerTest, OnlineBeforeMessagesAndMessagesBeforeExit) {
  Watchdog dog("ordering", absl::Seconds(60));
  constexpr int kN = 5000;  // > the port's 1024-message drain batch
  for (int round = 0; round < 5; ++round) {
    EventLoop loop;
    auto w = Worker::Start(
        [](WorkerContext& ctx) {
          for (int i = 0; i < kN; ++i) ASSERT_TRUE(ctx.parent_port().PostMessage(Value(i)).ok());
        },
        WorkerOptions{.loop = &loop});
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

TEST(WorkerTest, UncaughtExceptionInEntry) {
  Watchdog dog("entry exception", absl::Seconds(30));
  EventLoop loop;
  auto w = Worker::Start(
      [](WorkerContext& ctx) {
        (void)ctx.parent_port().PostMessage(Value("before"));
        throw std::runtime_error("boom");
      },
      WorkerOptions{.loop = &loop});
  ASSERT_TRUE(w.ok());
  Events ev;
  ev.Attach(*w);
  loop.Run();
  EXPECT_EQ(ev.log,
            (std::vector<std::string>{"online", "msg:before", "error:boom", "exit:1"}));
}

TEST(WorkerTest, UncaughtExceptionInWorkerLoopCallback) {
  Watchdog dog("callback exception", absl::Seconds(30));
  EventLoop loop;
  auto w = Worker::Start(
      [](WorkerContext& ctx) {
        ctx.parent_port().OnMessage([](Value) {});  // keeps the worker alive
        ctx.loop().SetTimeout(absl::Milliseconds(5), [] { throw 42; });
      },
      WorkerOptions{.loop = &loop});
  ASSERT_TRUE(w.ok());
  Events ev;
  ev.Attach(*w);
  loop.Run();
  ASSERT_EQ(ev.log.size(), 3u);
  EXPECT_EQ(ev.log[1].rfind("error:unknown exception", 0), 0u) << ev.log[1];
  EXPECT_EQ(ev.log[2], "exit:1");
}

TEST(WorkerTest, ExitWithCode) {
  Watchdog dog("exit code", absl::Seconds(30));
  EventLoop loop;
  std::atomic<bool> after_exit_receive_cancelled{false};
  auto w = Worker::Start(
      [&](WorkerContext& ctx) {
        ctx.parent_port().OnMessage([](Value) {});  // would keep it alive
        (void)ctx.parent_port().PostMessage(Value("bye"));
        ctx.Exit(7);
        ctx.Exit(9);  // the first code wins
        EXPECT_TRUE(ctx.terminating());
        after_exit_receive_cancelled = ctx.parent_port().Receive(absl::Seconds(5)).status().code() ==
                                       absl::StatusCode::kCancelled;
      },
      WorkerOptions{.loop = &loop});
  ASSERT_TRUE(w.ok());
  Events ev;
  ev.Attach(*w);
  loop.Run();
  EXPECT_EQ(ev.log, (std::vector<std::string>{"online", "msg:bye", "exit:7"}));
  EXPECT_TRUE(after_exit_receive_cancelled);
  EXPECT_EQ(w->Terminate().Get().value(), 7);
}

TEST(WorkerTest, TerminateWhileBlockedInReceive) {
  Watchdog dog("terminate in Receive", absl::Seconds(30));
  constexpr int kThrew = 1000;
  EventLoop loop;
  std::atomic<int> receive_code{-1};
  auto w = Worker::Start(
      [&](WorkerContext& ctx) {
        (void)ctx.parent_port().PostMessage(Value("ready"));
        try {
          receive_code = static_cast<int>(ctx.parent_port().Receive().status().code());
        } catch (const Interrupted&) {
          receive_code = kThrew;
          throw;
        }
      },
      WorkerOptions{.loop = &loop});
  ASSERT_TRUE(w.ok());
  Events ev;
  ev.Attach(*w);
  Future<int> f;
  w->OnMessage([&](Value) { f = w->Terminate(); });
  loop.Run();
  // Terminate both closes the channel and requests the worker's
  // interrupter: the sleeping Receive wakes from whichever it sees first —
  // Cancelled "port closed", or Interrupted thrown (Receive is an
  // interruption point). Either way it does not hang and the code is 1.
  EXPECT_TRUE(receive_code.load() == static_cast<int>(absl::StatusCode::kCancelled) ||
              receive_code.load() == kThrew)
      << receive_code.load();
  for (const std::string& e : ev.log) EXPECT_NE(e.rfind("error:", 0), 0u) << e;
  EXPECT_EQ(ev.exit_code, 1);
  EXPECT_EQ(f.Get().value(), 1);
  EXPECT_EQ(w->Terminate().Get().value(), 1);  // idempotent
}

TEST(WorkerTest, TerminateWhileIdleInLoopFromAnotherThread) {
  Watchdog dog("terminate idle", absl::Seconds(30));
  EventLoop loop;
  auto w = Worker::Start(
      [](WorkerContext& ctx) {
        ctx.parent_port().OnMessage([](Value) {});  // Node: keeps the worker alive
        (void)ctx.parent_port().PostMessage(Value("ready"));
      },
      WorkerOptions{.loop = &loop});
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

TEST(WorkerTest, TerminateBlockingGetOnOwnerThread) {
  Watchdog dog("terminate Get", absl::Seconds(30));
  EventLoop loop;
  auto w = Worker::Start(
      [](WorkerContext& ctx) { (void)ctx.parent_port().Receive(); },
      WorkerOptions{.loop = &loop});
  ASSERT_TRUE(w.ok());
  // The future completes on the worker thread: no owner loop needed.
  EXPECT_EQ(w->Terminate().Get().value(), 1);
  int code = -1;
  w->OnExit([&](int c) { code = c; });
  loop.Run();  // the final closure is delivered now
  EXPECT_EQ(code, 1);
}

TEST(WorkerTest, TerminateRacesNaturalExit) {
  Watchdog dog("terminate vs exit", absl::Seconds(120));
  for (int i = 0; i < kRaceRounds; ++i) {
    EventLoop loop;
    auto w = Worker::Start(
        [](WorkerContext& ctx) { (void)ctx.parent_port().PostMessage(Value(1)); },
        WorkerOptions{.loop = &loop});
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

TEST(WorkerTest, UnrefAndDestroyRaceExit) {
  Watchdog dog("unref/destroy vs exit", absl::Seconds(120));
  for (int i = 0; i < kRaceRounds; ++i) {
    EventLoop loop;
    auto w = Worker::Start([](WorkerContext& ctx) { (void)ctx.parent_port().PostMessage(Value(1)); },
                           WorkerOptions{.loop = &loop});
    ASSERT_TRUE(w.ok());
    w->OnMessage([](Value) {});
    w->Unref();
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

TEST(WorkerTest, DestroyWhileRunningTerminatesAndJoins) {
  Watchdog dog("destroy", absl::Seconds(30));
  EventLoop loop;
  std::atomic<int> receive_code{-1};
  std::atomic<bool> entered{false};
  {
    auto w = Worker::Start(
        [&](WorkerContext& ctx) {
          entered = true;
          receive_code = static_cast<int>(ctx.parent_port().Receive().status().code());
        },
        WorkerOptions{.loop = &loop});
    ASSERT_TRUE(w.ok());
    while (!entered.load()) absl::SleepFor(absl::Milliseconds(1));
    absl::SleepFor(absl::Milliseconds(5));  // most likely blocked in Receive now
  }
  EXPECT_EQ(receive_code.load(), static_cast<int>(absl::StatusCode::kCancelled));
  loop.Run();  // the queued final closure is a no-op now
}

TEST(WorkerTest, DestroyFromInsideItsOwnHandlers) {
  Watchdog dog("destroy in handler", absl::Seconds(60));
  for (int i = 0; i < 50; ++i) {
    EventLoop loop;
    std::optional<Worker> w;
    auto s = Worker::Start(
        [](WorkerContext& ctx) {
          for (int k = 0; k < 3; ++k) (void)ctx.parent_port().PostMessage(Value(k));
          if (ctx.worker_data().AsBool().value()) {
            (void)ctx.parent_port().Receive();  // until terminated (by ~Worker)
          }
        },
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
    if (i % 2 == 0) EXPECT_EQ(messages, 1);
  }
}

TEST(WorkerTest, OwnerLoopRunReturnsAfterWorkerExits) {
  Watchdog dog("ref rule", absl::Seconds(30));
  EventLoop loop;
  auto w = Worker::Start(
      [](WorkerContext& ctx) {
        ctx.loop().SetTimeout(absl::Milliseconds(30),
                              [&ctx] { (void)ctx.parent_port().PostMessage(Value("late")); });
      },
      WorkerOptions{.loop = &loop});
  ASSERT_TRUE(w.ok());
  Events ev;
  ev.Attach(*w);
  loop.Run();  // nothing else keeps the loop alive: the worker does
  EXPECT_EQ(ev.log, (std::vector<std::string>{"online", "msg:late", "exit:0"}));
}

TEST(WorkerTest, UnrefLetsOwnerLoopReturnWhileWorkerRuns) {
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

TEST(WorkerTest, IdentityAndMainActor) {
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
  loop.Run();
  EXPECT_FALSE(s1.main);
  EXPECT_FALSE(s2.main);
  EXPECT_GT(s1.id.load(), 0u);
  EXPECT_GT(s2.id.load(), s1.id.load());
  EXPECT_EQ(s1.id.load(), w1->id());
  EXPECT_EQ(s1.current.load(), s1.id.load());
  EXPECT_EQ(s1.name, "first");
  EXPECT_EQ(w2->name(), "second");
  EXPECT_TRUE(IsMainActor());
}

TEST(WorkerTest, StackSizeApplied) {
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

TEST(WorkerTest, TerminateWhileBlockedInAtomicsWait) {
  int32_t cell = 0;  // nobody ever notifies it
  ExpectTerminatedWhileBlocked("atomics::Wait", [&] { (void)atomics::Wait(cell, 0); });
  alignas(8) int64_t wide = 0;
  ExpectTerminatedWhileBlocked("atomics::Wait 64", [&] { (void)atomics::Wait(wide, int64_t{0}); });
}

TEST(WorkerTest, TerminateWhileBlockedInMutexHeldByMain) {
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

TEST(WorkerTest, TerminateWhileBlockedInCondVarAndSemaphore) {
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

TEST(WorkerTest, TerminateInterruptsAgainAfterACatchAll) {
  int32_t cell = 0;
  ExpectTerminatedWhileBlocked("catch-all", [&] {
    try {
      (void)atomics::Wait(cell, 0);
    } catch (...) {
    }
    (void)atomics::Wait(cell, 0);  // the request is sticky
  });
}

TEST(WorkerTest, TerminateWhileBlockedInFutureGet) {
  Promise<int> never;
  Future<int> f = never.GetFuture();
  ExpectTerminatedWhileBlocked("Future::Get", [&] { (void)f.Get(); });
}

TEST(WorkerTest, InterruptedFromAnotherInterrupterIsAnError) {
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
  ASSERT_EQ(ev.log.size(), 3u);
  EXPECT_EQ(ev.log[1].rfind("error:wharf::Interrupted", 0), 0u) << ev.log[1];
  EXPECT_EQ(ev.log[2], "exit:1");
}

TEST(WorkerTest, DestroyWhileBlockedInAtomicsWait) {
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

// ---- Messages kept until OnMessage is set ----

TEST(WorkerTest, MessagesWithoutHandlerAreKeptUntilOnMessage) {
  Watchdog dog("kept messages", absl::Seconds(30));
  EventLoop loop;
  auto w = Worker::Start(
      [](WorkerContext& ctx) {
        for (const char* s : {"a", "b", "c"}) (void)ctx.parent_port().PostMessage(Value(s));
        (void)ctx.parent_port().Receive();  // until the owner has a handler
        (void)ctx.parent_port().PostMessage(Value("d"));
      },
      WorkerOptions{.loop = &loop});
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

TEST(WorkerTest, MessagesKeptAtExitAreDeliveredBeforeExit) {
  Watchdog dog("kept at exit", absl::Seconds(30));
  EventLoop loop;
  std::vector<std::string> log;
  std::optional<Worker> w;
  loop.Post([&] {
    auto started = Worker::Start([](WorkerContext& ctx) {
      for (int i = 0; i < 3; ++i) (void)ctx.parent_port().PostMessage(Value(i));
    });
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
  auto w2 = Worker::Start(
      [](WorkerContext& ctx) {
        for (int i = 0; i < 3; ++i) (void)ctx.parent_port().PostMessage(Value(i));
        (void)ctx.parent_port().Receive();
      },
      WorkerOptions{.loop = &loop2});
  ASSERT_TRUE(w2.ok());
  w2->OnExit([&](int code) { log2.push_back("exit:" + std::to_string(code)); });
  loop2.SetTimeout(absl::Milliseconds(30), [&] {
    w2->OnMessage([&](Value v) { log2.push_back("#" + std::to_string(*v.AsInt())); });
    (void)w2->Terminate();
  });
  loop2.Run();
  EXPECT_EQ(log2, (std::vector<std::string>{"#0", "#1", "#2", "exit:1"}));
}

// ---- worker_data with a transfer list ----

TEST(WorkerTest, WorkerDataWithTransferList) {
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
  auto w = Worker::Start(
      [](WorkerContext& ctx) {
        ASSERT_TRUE(ctx.parent_port().PostMessage(std::move(ctx.worker_data())).ok());
      },
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
  EXPECT_EQ(m->data(), moved_bytes);  // transferred: the same memory
  EXPECT_NE(c->data(), copied_bytes);  // not listed: a copy
  EXPECT_EQ(m->data()[3], std::byte{7});
  EXPECT_EQ(c->data()[5], std::byte{9});
}

TEST(WorkerTest, WorkerDataTransferListErrorStartsNothing) {
  Watchdog dog("transfer error", absl::Seconds(30));
  EventLoop loop;
  Value data = Value::Map();
  data.GetMap()->Set("buf", Buffer::Allocate(64).value());
  Buffer* buf = data["buf"]->GetBuffer();
  std::atomic<bool> ran{false};
  auto w = Worker::Start([&](WorkerContext&) { ran = true; },
                         WorkerOptions{.worker_data = std::move(data),
                                       .transfer = {buf, buf},  // listed twice
                                       .loop = &loop});
  ASSERT_FALSE(w.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(w.status())) << w.status();
  EXPECT_NE(std::string(w.status().message()).find("DataCloneError"), std::string::npos)
      << w.status();
  loop.Run();  // nothing ref'd: returns at once
  EXPECT_FALSE(ran.load());
}

}  // namespace
}  // namespace wharf

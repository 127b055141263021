#include "wharf/runtime/event_loop.h"

#include <atomic>
#include <exception>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/watchdog.h"

namespace wharf {
namespace {

using ::wharf::testing::Watchdog;

TEST(EventLoopTest, RunWithNothingToDoReturnsAtOnce) {
  EventLoop loop;
  Watchdog dog("empty Run", absl::Seconds(30));
  loop.Run();
  EXPECT_EQ(EventLoop::Current(), nullptr);
}

TEST(EventLoopTest, PostedClosuresRunFifoOnTheLoop) {
  EventLoop loop;
  std::vector<int> order;
  for (int i = 0; i < 100; ++i) {
    loop.Post([&, i] {
      EXPECT_EQ(EventLoop::Current(), &loop);
      order.push_back(i);
      if (i == 50) loop.Post([&] { order.push_back(1000); });  // after the rest
    });
  }
  loop.Run();
  ASSERT_EQ(order.size(), 101u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
  EXPECT_EQ(order[100], 1000);
  EXPECT_EQ(EventLoop::Current(), nullptr);
}

TEST(EventLoopTest, RunOnceRunsReadyWorkWithoutBlocking) {
  EventLoop loop;
  int n = 0;
  loop.Post([&] { ++n; });
  loop.Post([&] { ++n; });
  loop.SetTimeout(absl::ZeroDuration(), [&] { ++n; });
  const auto id = loop.SetTimeout(absl::Hours(1), [&] { ++n; });
  EXPECT_EQ(loop.RunOnce(), 3);
  EXPECT_EQ(n, 3);
  EXPECT_EQ(loop.RunOnce(), 0);
  EXPECT_TRUE(loop.ClearTimer(id));
  EXPECT_FALSE(loop.ClearTimer(id));
}

TEST(EventLoopTest, TimersRunInDeadlineOrder) {
  EventLoop loop;
  std::vector<int> order;
  const absl::Time start = absl::Now();
  loop.SetTimeout(absl::Milliseconds(30), [&] { order.push_back(30); });
  loop.SetTimeout(absl::Milliseconds(10), [&] { order.push_back(10); });
  loop.SetTimeout(absl::Milliseconds(20), [&] { order.push_back(20); });
  loop.SetTimeout(absl::ZeroDuration(), [&] { order.push_back(0); });
  loop.SetTimeout(absl::ZeroDuration(), [&] { order.push_back(1); });  // tie: set order
  loop.Run();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 10, 20, 30}));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(30));
}

TEST(EventLoopTest, IntervalRepeatsUntilCleared) {
  EventLoop loop;
  int runs = 0;
  TimerId id;
  id = loop.SetInterval(absl::Milliseconds(1), [&] {
    if (++runs == 5) {
      EXPECT_TRUE(loop.ClearTimer(id));  // from its own callback
    }
  });
  Watchdog dog("interval", absl::Seconds(30));
  loop.Run();  // returns once the interval is cleared
  EXPECT_EQ(runs, 5);
}

TEST(EventLoopTest, ClearedTimeoutNeverRuns) {
  EventLoop loop;
  bool ran = false;
  const auto id = loop.SetTimeout(absl::Milliseconds(1), [&] { ran = true; });
  EXPECT_TRUE(loop.ClearTimer(id));
  loop.Run();
  EXPECT_FALSE(ran);
  EXPECT_FALSE(loop.ClearTimer(TimerId{12345}));
}

TEST(EventLoopTest, UnrefTimerDoesNotKeepTheLoopAlive) {
  EventLoop loop;
  bool ran = false;
  const auto id = loop.SetTimeout(absl::Hours(1), [&] { ran = true; });
  loop.UnrefTimer(id);
  Watchdog dog("unref'd timer", absl::Seconds(30));
  loop.Run();
  EXPECT_FALSE(ran);
  loop.RefTimer(id);  // ref'd again: now it would keep the loop alive
  EXPECT_TRUE(loop.RunUntil(absl::Now() + absl::Milliseconds(20)) == false);
  EXPECT_TRUE(loop.ClearTimer(id));
}

TEST(EventLoopTest, UnrefTimerStillRunsWhileTheLoopIsAlive) {
  EventLoop loop;
  std::vector<int> order;
  const auto id = loop.SetTimeout(absl::Milliseconds(1), [&] { order.push_back(1); });
  loop.UnrefTimer(id);
  loop.SetTimeout(absl::Milliseconds(50), [&] { order.push_back(2); });
  loop.Run();
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
}

TEST(EventLoopTest, RefKeepsTheLoopAliveUntilReleased) {
  EventLoop loop;
  Watchdog dog("ref'd loop", absl::Seconds(30));
  std::atomic<bool> posted_ran{false};
  EventLoop::RefHandle ref = loop.MakeRef();
  EXPECT_EQ(loop.RefCountForTesting(), 1);
  std::thread t([&, ref = std::move(ref)]() mutable {
    absl::SleepFor(absl::Milliseconds(20));
    loop.Post([&] { posted_ran = true; });
    ref.Reset();  // posted before the release: Run() must still run it
  });
  loop.Run();
  t.join();
  EXPECT_TRUE(posted_ran.load());
  EXPECT_EQ(loop.RefCountForTesting(), 0);
}

TEST(EventLoopTest, StopFromAnotherThreadEndsRun) {
  EventLoop loop;
  loop.AddRef();  // would keep Run() going forever
  Watchdog dog("Stop", absl::Seconds(30));
  std::thread t([&] {
    absl::SleepFor(absl::Milliseconds(20));
    loop.Stop();
  });
  loop.Run();
  t.join();
  loop.Release();
}

TEST(EventLoopTest, StopBeforeRunMakesTheNextRunReturn) {
  EventLoop loop;
  loop.AddRef();
  loop.Stop();
  EXPECT_TRUE(loop.RunUntil(absl::Now() + absl::Seconds(30)));
  EXPECT_FALSE(loop.RunUntil(absl::Now() + absl::Milliseconds(10)));  // stop consumed
  loop.Release();
}

TEST(EventLoopTest, RunUntilReturnsAtTheDeadline) {
  EventLoop loop;
  loop.AddRef();
  const absl::Time start = absl::Now();
  EXPECT_FALSE(loop.RunUntil(start + absl::Milliseconds(20)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(20));
  loop.Release();
  EXPECT_TRUE(loop.RunUntil(absl::Now() + absl::Seconds(30)));
}

TEST(EventLoopTest, TimerSetFromAnotherThreadWakesASleepingLoop) {
  EventLoop loop;
  loop.AddRef();
  Watchdog dog("cross-thread timer", absl::Seconds(30));
  std::thread t([&] {
    absl::SleepFor(absl::Milliseconds(10));  // the loop is asleep, no deadline
    loop.SetTimeout(absl::Milliseconds(5), [&] {
      EXPECT_EQ(EventLoop::Current(), &loop);
      loop.Release();
    });
  });
  loop.Run();
  t.join();
}

TEST(EventLoopTest, ExceptionsGoToTheHandlerAndTheLoopGoesOn) {
  EventLoop loop;
  std::vector<std::string> errors;
  loop.OnUncaughtException([&](std::exception_ptr e) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      errors.push_back(ex.what());
    }
  });
  bool after = false;
  loop.Post([] { throw std::runtime_error("boom"); });
  loop.SetTimeout(absl::Milliseconds(1), [] { throw std::logic_error("timer boom"); });
  loop.Post([&] { after = true; });
  loop.Run();
  EXPECT_EQ(errors, (std::vector<std::string>{"boom", "timer boom"}));
  EXPECT_TRUE(after);
}

// No handler: the exception propagates out of Run(), which can be called
// again and resumes with everything else as it was.
TEST(EventLoopTest, UncaughtExceptionWithoutHandlerPropagatesOutOfRun) {
  EventLoop loop;
  std::vector<std::string> ran;
  loop.Post([&] { ran.push_back("first"); });
  loop.Post([] { throw std::runtime_error("nobody catches me"); });
  loop.Post([&] { ran.push_back("after"); });
  const TimerId interval = loop.SetInterval(absl::Milliseconds(1), [&] {
    ran.push_back("tick");
    throw std::logic_error("from a timer");
  });
  EXPECT_THROW(
      {
        try {
          loop.Run();
        } catch (const std::runtime_error& e) {
          EXPECT_STREQ(e.what(), "nobody catches me");
          throw;
        }
      },
      std::runtime_error);
  EXPECT_EQ(EventLoop::Current(), nullptr);  // restored while unwinding
  EXPECT_EQ(ran, (std::vector<std::string>{"first"}));
  // The interval stays armed although its callback throws.
  EXPECT_THROW(loop.Run(), std::logic_error);
  EXPECT_EQ(ran, (std::vector<std::string>{"first", "after", "tick"}));
  EXPECT_THROW(loop.Run(), std::logic_error);
  EXPECT_TRUE(loop.ClearTimer(interval));
  int more = 0;
  loop.Post([&] { ++more; });
  loop.Run();
  EXPECT_EQ(more, 1);
  EXPECT_EQ(loop.RefCountForTesting(), 0);
}

TEST(EventLoopTest, ThrowingHandlerPropagatesOutOfRun) {
  EventLoop loop;
  int seen = 0;
  loop.OnUncaughtException([&](std::exception_ptr e) {
    ++seen;
    std::rethrow_exception(e);
  });
  loop.Post([] { throw std::runtime_error("rethrown"); });
  EXPECT_THROW(loop.Run(), std::runtime_error);
  EXPECT_EQ(seen, 1);
  loop.Run();  // nothing left: returns
}

TEST(EventLoopTest, DestroyingTheLoopDropsQueuedClosuresUnrun) {
  auto counter = std::make_shared<int>(0);
  {
    EventLoop loop;
    loop.Post([counter] { ++*counter; });
    loop.SetInterval(absl::Milliseconds(1), [counter] { ++*counter; });
  }
  EXPECT_EQ(*counter, 0);
  EXPECT_EQ(counter.use_count(), 1);
}

// 4 threads post 20k closures each while the loop runs; per-thread FIFO, none
// lost, all on the loop's thread.
TEST(EventLoopTest, StressPostFromManyThreads) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20'000;
  EventLoop loop;
  Watchdog dog("EventLoop post stress", absl::Seconds(120));
  std::vector<int> next(kThreads, 0);
  int64_t total = 0;
  bool in_order = true;
  std::vector<std::thread> threads;
  std::atomic<bool> go{false};
  for (int p = 0; p < kThreads; ++p) {
    threads.emplace_back([&, p, ref = loop.MakeRef()]() mutable {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < kPerThread; ++i) {
        loop.Post([&, p, i] {
          if (next[p] != i) in_order = false;
          next[p] = i + 1;
          ++total;
        });
        if (i % 1000 == 0) std::this_thread::yield();
      }
      ref.Reset();
    });
  }
  go.store(true);
  loop.Run();
  for (auto& t : threads) t.join();
  EXPECT_TRUE(in_order);
  EXPECT_EQ(total, int64_t{kThreads} * kPerThread);
}

}  // namespace
}  // namespace wharf

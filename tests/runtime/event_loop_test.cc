#include "wharf/runtime/event_loop.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <span>
#include <exception>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/watchdog.h"
#include "wharf/runtime/internal/loop_access.h"
#include "wharf/runtime/internal/loop_source.h"
#include "wharf/sync/futex.h"

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

// A timer's deadline is the loop's clock at SetTimeout plus the delay, so the
// five deadlines below are in the order checked only if the calls took less
// than the 10 ms between them; a thread preempted longer than that between
// two calls (a loaded 2-core CI machine) gets another order, rightly. Such
// an attempt is run again rather than judged.
TEST(EventLoopTest, TimersRunInDeadlineOrder) {
  Watchdog dog("TimersRunInDeadlineOrder", absl::Seconds(30));
  for (int attempt = 1;; ++attempt) {
    EventLoop loop;
    std::vector<int> order;
    const absl::Time start = absl::Now();
    loop.SetTimeout(absl::Milliseconds(30), [&] { order.push_back(30); });
    loop.SetTimeout(absl::Milliseconds(10), [&] { order.push_back(10); });
    loop.SetTimeout(absl::Milliseconds(20), [&] { order.push_back(20); });
    loop.SetTimeout(absl::ZeroDuration(), [&] { order.push_back(0); });
    loop.SetTimeout(absl::ZeroDuration(), [&] { order.push_back(1); });  // tie: set order
    const absl::Duration setting = absl::Now() - start;
    loop.Run();
    EXPECT_GE(absl::Now() - start, absl::Milliseconds(30));
    if (setting < absl::Milliseconds(10)) {
      EXPECT_EQ(order, (std::vector<int>{0, 1, 10, 20, 30}));
      break;
    }
    ASSERT_LT(attempt, 20) << "never set five timers within 10 ms";
  }
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

// --- File descriptors -----------------------------------------------------------

TEST(EventLoopTest, WatchFdRunsTheCallbackEachTimeAPipeIsReadable) {
  Watchdog dog("WatchFd pipe", absl::Seconds(30));
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  EventLoop loop;
  std::string got;
  FdWatchId id;
  auto watch = loop.WatchFd(fds[0], [&] {
    char c;
    ASSERT_EQ(read(fds[0], &c, 1), 1);  // one byte per call: level-triggered
    got.push_back(c);
    if (got.size() == 3) EXPECT_TRUE(loop.UnwatchFd(id));
  });
  ASSERT_TRUE(watch.ok()) << watch.status();
  id = *watch;
  std::thread writer([&] {
    for (char c : std::string("abc")) {
      absl::SleepFor(absl::Milliseconds(10));  // the loop is asleep by then
      ASSERT_EQ(write(fds[1], &c, 1), 1);
    }
  });
  loop.Run();  // the watch refs the loop until it is unwatched
  writer.join();
  EXPECT_EQ(got, "abc");
  EXPECT_FALSE(loop.UnwatchFd(id));
  close(fds[0]);
  close(fds[1]);
}

TEST(EventLoopTest, WatchFdSeesAChildExitThroughItsPidfd) {
  Watchdog dog("WatchFd pidfd", absl::Seconds(30));
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    usleep(30 * 1000);
    _exit(3);
  }
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, child, 0));
  ASSERT_GE(pidfd, 0) << "pidfd_open: " << std::strerror(errno);
  EventLoop loop;
  int code = -1;
  FdWatchId id;
  auto watch = loop.WatchFd(pidfd, [&] {
    siginfo_t info{};
    ASSERT_EQ(waitid(P_PID, child, &info, WEXITED), 0);
    code = info.si_status;
    loop.UnwatchFd(id);
  });
  ASSERT_TRUE(watch.ok()) << watch.status();
  id = *watch;
  loop.Run();
  EXPECT_EQ(code, 3);
  close(pidfd);
}

TEST(EventLoopTest, WatchFdErrorsAndUnrefdWatches) {
  EventLoop loop;
  EXPECT_TRUE(absl::IsInvalidArgument(loop.WatchFd(-1, [] {}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(loop.WatchFd(12345, [] {}).status()));
  const int file = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);  // a regular file
  ASSERT_GE(file, 0);
  absl::Status refused = loop.WatchFd(file, [] {}).status();
  EXPECT_TRUE(absl::IsInvalidArgument(refused)) << refused;
  EXPECT_NE(std::string(refused.message()).find("regular file"), std::string::npos) << refused;
  close(file);
  EXPECT_TRUE(absl::IsInvalidArgument(loop.WatchFd(0, nullptr).status()));
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  auto unrefd = loop.WatchFd(fds[0], [] { ADD_FAILURE() << "nothing was written"; },
                             /*ref=*/false);
  ASSERT_TRUE(unrefd.ok());
  loop.Run();  // an unref'd watch does not keep the loop alive
  EXPECT_TRUE(loop.UnwatchFd(*unrefd));
  close(fds[0]);
  close(fds[1]);
}

// UnwatchFd from another thread returns only once a callback the loop
// started has finished: the caller may close the fd at once.
TEST(EventLoopTest, UnwatchFdFromAnotherThreadWaitsForARunningCallback) {
  Watchdog dog("Unwatch while running", absl::Seconds(30));
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  EventLoop loop;
  std::atomic<bool> in_callback{false};
  std::atomic<bool> callback_done{false};
  auto watch = loop.WatchFd(fds[0], [&] {
    in_callback = true;
    absl::SleepFor(absl::Milliseconds(50));
    char c;
    EXPECT_EQ(read(fds[0], &c, 1), 1);  // the fd is still open here
    callback_done = true;
  });
  ASSERT_TRUE(watch.ok());
  std::thread other([&] {
    ASSERT_EQ(write(fds[1], "x", 1), 1);
    while (!in_callback.load()) absl::SleepFor(absl::Milliseconds(1));
    EXPECT_TRUE(loop.UnwatchFd(*watch));
    EXPECT_TRUE(callback_done.load());  // over before UnwatchFd returned
    close(fds[0]);
  });
  loop.Run();  // ends once the watch is gone
  other.join();
  close(fds[1]);
}

// --- Sleeping on futex words of other processes ------------------------------------

// A source whose producer is in another process: it counts the changes of a
// word in shared memory, and asks the loop to sleep on that word.
class SharedWordSource final : public runtime_internal::LoopSource {
 public:
  explicit SharedWordSource(std::atomic<uint32_t>* word) : word_(word) {}
  bool Pending() override { return word_->load(std::memory_order_acquire) != seen_; }
  bool Deliver() override {
    if (!Pending()) return false;
    seen_ = word_->load(std::memory_order_acquire);
    ++deliveries;
    return true;
  }
  int ArmSleep(std::span<FutexWaitEntry> out) override {
    if (out.empty()) return 0;
    out[0] = FutexWaitEntry{word_, seen_, FutexScope::kShared};
    ++arms;
    return 1;
  }
  int deliveries = 0;
  int arms = 0;

 private:
  std::atomic<uint32_t>* word_;
  uint32_t seen_ = 0;
};

TEST(EventLoopTest, SleepsOnFutexWordsThatOtherProcessesWrite) {
  Watchdog dog("shared words", absl::Seconds(30));
  constexpr int kSources = 4;
  auto* words = static_cast<std::atomic<uint32_t>*>(
      mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(words, MAP_FAILED);
  EventLoop loop;
  std::vector<std::unique_ptr<SharedWordSource>> sources;
  for (int i = 0; i < kSources; ++i) {
    sources.push_back(std::make_unique<SharedWordSource>(&words[i * 16]));
    runtime_internal::LoopAccess::AddSource(loop, sources.back().get());
  }
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Bump each word twice, 20 ms apart, waking its sleeper (async-signal-
    // safe calls only).
    for (int round = 0; round < 2; ++round) {
      for (int i = 0; i < kSources; ++i) {
        usleep(20 * 1000);
        words[i * 16].fetch_add(1, std::memory_order_release);
        FutexWake(&words[i * 16], 1, FutexScope::kShared);
      }
    }
    _exit(0);
  }
  loop.AddRef();
  std::function<void()> check;
  check = [&] {
    int total = 0;
    for (auto& s : sources) total += s->deliveries;
    if (total == 2 * kSources) {
      loop.Release();
    } else {
      loop.SetTimeout(absl::Milliseconds(1), check);
    }
  };
  loop.SetTimeout(absl::Milliseconds(1), check);
  loop.Run();
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  for (auto& s : sources) {
    EXPECT_EQ(s->deliveries, 2);
    EXPECT_GT(s->arms, 0);  // the loop did sleep on the words
    runtime_internal::LoopAccess::RemoveSource(loop, s.get());
  }
  munmap(words, 4096);
}

// More words than futex_waitv takes: the loop arms what fits and still runs.
// The counts are read once the loop has slept (it sleeps within ~20 µs of
// going idle, but a preempted loop thread may find the 30 ms timer due
// before it ever slept: then the check is made again after a sleep), and the
// loop runs until the source that did not fit saw its change (no deadline
// that a preemption could overrun).
TEST(EventLoopTest, MoreSleepingSourcesThanFutexWaitvTakes) {
  Watchdog dog("MoreSleepingSources", absl::Seconds(30));
  EventLoop loop;
  std::vector<std::atomic<uint32_t>> words(300);
  std::vector<std::unique_ptr<SharedWordSource>> sources;
  for (auto& w : words) {
    sources.push_back(std::make_unique<SharedWordSource>(&w));
    runtime_internal::LoopAccess::AddSource(loop, sources.back().get());
  }
  int armed = 0;
  bool stored = false;
  loop.AddRef();  // released once sources[299] delivered
  std::function<void()> step;
  step = [&] {
    if (!stored) {
      armed = 0;
      for (auto& s : sources) armed += s->arms > 0;
      if (armed == 0) {  // the loop has not slept yet
        loop.SetTimeout(absl::Milliseconds(1), step);
        return;
      }
      words[299].store(1);  // a source that did not fit: seen at the next pass
      stored = true;
    }
    if (sources[299]->deliveries == 0) {
      loop.SetTimeout(absl::Milliseconds(1), step);
      return;
    }
    loop.Release();
  };
  loop.SetTimeout(absl::Milliseconds(30), step);
  loop.Run();
  EXPECT_GT(armed, 0);
  EXPECT_LT(armed, 300);
  EXPECT_EQ(sources[299]->deliveries, 1);
  for (auto& s : sources) runtime_internal::LoopAccess::RemoveSource(loop, s.get());
}

}  // namespace
}  // namespace wharf

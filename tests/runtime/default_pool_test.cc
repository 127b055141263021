// DefaultPool and RunInThread: asyncio.to_thread for an actor's loop.
#include "wharf/runtime/default_pool.h"

#include <stdexcept>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/watchdog.h"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/future.h"

namespace wharf {
namespace {

using ::wharf::testing::Watchdog;

TEST(DefaultPoolTest, RunInThreadRunsElsewhereAndReturnsAFuture) {
  Watchdog dog("RunInThread", absl::Seconds(30));
  const std::thread::id here = std::this_thread::get_id();
  Future<bool> f = RunInThread([here] { return std::this_thread::get_id() != here; });
  EXPECT_TRUE(*f.Get());
  EXPECT_EQ(&DefaultPool(), &DefaultPool());
  EXPECT_EQ(DefaultPool().name(), "wharf-default");
  EXPECT_GE(DefaultPool().max_workers(), 5);  // cpus + 4, at most 32
  EXPECT_LE(DefaultPool().max_workers(), 32);
}

TEST(DefaultPoolTest, AnExceptionFailsOnlyItsFuture) {
  Watchdog dog("RunInThread exception", absl::Seconds(30));
  Future<int> bad = RunInThread([]() -> int { throw std::runtime_error("disk on fire"); });
  Future<int> good = RunInThread([] { return 3; });
  EXPECT_EQ(bad.Get().status().code(), absl::StatusCode::kUnknown);
  EXPECT_NE(std::string(bad.Get().status().message()).find("disk on fire"), std::string::npos);
  EXPECT_EQ(*good.Get(), 3);
}

// The loop.run_in_executor pattern: blocking work off the loop, the result
// back on it, the loop never blocked meanwhile.
TEST(DefaultPoolTest, ALoopAwaitsBlockingWorkWithoutBlocking) {
  Watchdog dog("RunInThread on a loop", absl::Seconds(30));
  EventLoop loop;
  int ticks = 0;
  std::string result;
  std::thread::id ran_on;
  const TimerId tick = loop.SetInterval(absl::Milliseconds(1), [&] { ++ticks; });
  loop.UnrefTimer(tick);
  (void)RunInThread([] {
    absl::SleepFor(absl::Milliseconds(50));  // a blocking read, say
    return std::string("file contents");
  }).Then(loop, [&](absl::StatusOr<std::string>&& r) {
    result = *r;
    ran_on = std::this_thread::get_id();
  });
  loop.Run();  // Then refs the loop until the result is delivered
  EXPECT_EQ(result, "file contents");
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  EXPECT_GT(ticks, 5);  // the loop ran timers while the work blocked elsewhere
}

}  // namespace
}  // namespace wharf

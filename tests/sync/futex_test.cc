#include "wharf/sync/futex.h"

#include <atomic>
#include <thread>

#include "gtest/gtest.h"

namespace wharf {
namespace {

TEST(FutexTest, NotEqualReturnsAtOnce) {
  std::atomic<uint32_t> word{1};
  EXPECT_EQ(FutexWait(&word, 0, FutexScope::kPrivate), FutexWaitResult::kNotEqual);
}

}  // namespace
}  // namespace wharf

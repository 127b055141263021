// Watchdog: aborts the test process with a message if a scope runs too long.
//
//   Watchdog dog("mutex kill loop", absl::Seconds(60));
//
// A hung concurrency test must fail with a message naming what hung, not sit
// until Bazel's timeout. The bound is for hang detection only: tests never
// depend on speed.
#ifndef WHARF_TESTS_TESTING_WATCHDOG_H_
#define WHARF_TESTS_TESTING_WATCHDOG_H_

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "absl/time/time.h"

namespace wharf::testing {

class Watchdog {
 public:
  Watchdog(std::string what, absl::Duration limit);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

 private:
  std::string what_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace wharf::testing

#endif  // WHARF_TESTS_TESTING_WATCHDOG_H_

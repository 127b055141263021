#include "tests/testing/watchdog.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace wharf::testing {

Watchdog::Watchdog(std::string what, absl::Duration limit) : what_(std::move(what)) {
  thread_ = std::thread([this, limit] {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, absl::ToChronoMilliseconds(limit), [this] { return done_; })) {
      std::fprintf(stderr, "WATCHDOG: '%s' did not finish within %s: aborting (a hang)\n",
                   what_.c_str(), absl::FormatDuration(limit).c_str());
      std::fflush(stderr);
      // Helper children set PR_SET_PDEATHSIG, so they die with us.
      std::abort();
    }
  });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

}  // namespace wharf::testing

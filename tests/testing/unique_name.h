// UniqueName: a shared-memory name no other test run uses at the same time.
#ifndef WHARF_TESTS_TESTING_UNIQUE_NAME_H_
#define WHARF_TESTS_TESTING_UNIQUE_NAME_H_

#include <unistd.h>

#include <atomic>
#include <random>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"

namespace wharf::testing {

// A random tag fixed for this process. Bazel's sandbox gives every test its
// own PID namespace, so concurrently running tests often share a small pid:
// the pid alone does not make a name unique in the shared /dev/shm.
inline const std::string& ProcessTag() {
  static const std::string* tag = [] {
    std::random_device rd;
    return new std::string(absl::StrCat(absl::Hex(rd(), absl::kZeroPad8)));
  }();
  return *tag;
}

// "wharf_test_<what>_<pid>_<tag>_<n>": CI's /dev/shm check finds leftovers by
// the "wharf" prefix.
inline std::string UniqueName(std::string_view what) {
  static std::atomic<int> counter{0};
  return absl::StrCat("wharf_test_", std::string(what), "_", static_cast<int>(::getpid()), "_",
                      ProcessTag(), "_", counter.fetch_add(1));
}

}  // namespace wharf::testing

#endif  // WHARF_TESTS_TESTING_UNIQUE_NAME_H_

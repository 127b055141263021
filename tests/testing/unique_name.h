// UniqueName: a shared-memory name no other test run uses at the same time.
#ifndef WHARF_TESTS_TESTING_UNIQUE_NAME_H_
#define WHARF_TESTS_TESTING_UNIQUE_NAME_H_

#include <unistd.h>

#include <atomic>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"

namespace wharf::testing {

// "wharf_test_<what>_<pid>_<n>": names carry the pid so that the /dev/shm
// check of CI can tell whose leftovers they are.
inline std::string UniqueName(std::string_view what) {
  static std::atomic<int> counter{0};
  return absl::StrCat("wharf_test_", std::string(what), "_", static_cast<int>(::getpid()), "_",
                      counter.fetch_add(1));
}

}  // namespace wharf::testing

#endif  // WHARF_TESTS_TESTING_UNIQUE_NAME_H_

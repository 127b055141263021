// UniqueName: a shared-memory name no other test run uses at the same time.
#ifndef WHARF_TESTS_TESTING_UNIQUE_NAME_H_
#define WHARF_TESTS_TESTING_UNIQUE_NAME_H_

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <string>
#include <string_view>
#include <vector>

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

// The /dev/shm entries this process created through UniqueName and has not
// removed: a test file's last test checks this is empty.
inline std::vector<std::string> ShmLeftovers() {
  const std::string mine =
      absl::StrCat("_", static_cast<int>(::getpid()), "_", ProcessTag(), "_");
  std::vector<std::string> left;
  if (DIR* dir = ::opendir("/dev/shm")) {
    while (const dirent* e = ::readdir(dir)) {
      const std::string name = e->d_name;
      if (name.rfind("wharf_test_", 0) == 0 && name.find(mine) != std::string::npos) {
        left.push_back(name);
      }
    }
    ::closedir(dir);
  }
  return left;
}

// Every /dev/shm entry except those of UniqueName (any test's, any process):
// what a runtime test compares before and after killing workers, while other
// tests of the run (sharing /dev/shm) create and remove their own names.
inline std::vector<std::string> ShmEntriesExceptTestNames() {
  std::vector<std::string> names;
  if (DIR* dir = ::opendir("/dev/shm")) {
    while (const dirent* e = ::readdir(dir)) {
      const std::string name = e->d_name;
      if (name[0] != '.' && name.rfind("wharf_test_", 0) != 0) names.push_back(name);
    }
    ::closedir(dir);
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace wharf::testing

#endif  // WHARF_TESTS_TESTING_UNIQUE_NAME_H_

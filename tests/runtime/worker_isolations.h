// The isolations the worker test suite runs over (one TYPED_TEST_SUITE, as
// Abseil's waiter_test.cc runs one suite over every backend).
//
// An isolation's traits: a name, Start(entry, options) starting a Worker in
// it, and what it guarantees beyond the common contract (kSharesMemory: the
// worker runs in this address space, so a moved Buffer keeps its address).
// Typed tests name their entries (WHARF_WORKER_ENTRY) and talk to them only
// through messages, so that every isolation can run them.

#ifndef WHARF_TESTS_RUNTIME_WORKER_ISOLATIONS_H_
#define WHARF_TESTS_RUNTIME_WORKER_ISOLATIONS_H_

#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "wharf/runtime/worker.h"

namespace wharf::testing {

struct ThreadIsolation {
  static constexpr const char* kName = "Thread";
  static constexpr bool kSharesMemory = true;
  static constexpr bool kCarriesPorts = true;  // a MessagePort may be sent to the worker
  static absl::StatusOr<Worker> Start(WorkerEntry entry, WorkerOptions options = {}) {
    return Worker::Start(std::move(entry), std::move(options));
  }
};

// A child process re-executing the test binary (its main calls
// InitProcess: //tests/testing:process_test_main).
struct ProcessIsolation {
  static constexpr const char* kName = "Process";
  static constexpr bool kSharesMemory = false;
  static constexpr bool kCarriesPorts = true;
  static absl::StatusOr<Worker> Start(WorkerEntry entry, WorkerOptions options = {}) {
    options.isolation = Isolation::kProcess;
    return Worker::Start(std::move(entry), std::move(options));
  }
};

using WorkerIsolations = ::testing::Types<ThreadIsolation, ProcessIsolation>;

struct IsolationName {
  template <class T>
  static std::string GetName(int) {
    return T::kName;
  }
};

}  // namespace wharf::testing

#endif  // WHARF_TESTS_RUNTIME_WORKER_ISOLATIONS_H_

// The transports the port test suites run over (one TYPED_TEST_SUITE each,
// as Abseil's waiter_test.cc runs one suite over every waiter backend).
//
// A transport's traits: a name for the test output, Create(options) making
// a MessageChannel over it, and what the transport guarantees beyond the
// common contract (kZeroCopyMove: a moved Buffer arrives at the same address,
// i.e. both ends share the address space; kCarriesPorts: a MessagePort can
// travel in a message).

#ifndef WHARF_TESTS_RUNTIME_PORT_TRANSPORTS_H_
#define WHARF_TESTS_RUNTIME_PORT_TRANSPORTS_H_

#include <string>
#include <utility>

#include "gtest/gtest.h"
#include "wharf/runtime/internal/port_access.h"
#include "wharf/runtime/message_port.h"

namespace wharf::testing {

// Both ends in this process: InProcessChannel.
struct InProcessTransport {
  static constexpr const char* kName = "InProcess";
  static constexpr bool kZeroCopyMove = true;
  static constexpr bool kCarriesPorts = true;
  static std::pair<MessagePort, MessagePort> Create(PortOptions options = {}) {
    return MessageChannel::Create(options);
  }
};

// The shared-memory transport (ShmChannel), both ends in this process but
// talking through a link exactly as two processes do: every message is
// encoded, crosses a ring, and is decoded. (The cross-process runs are in
// process_worker_test.cc.)
struct ShmTransport {
  static constexpr const char* kName = "SharedMemory";
  static constexpr bool kZeroCopyMove = false;
  static constexpr bool kCarriesPorts = true;
  static std::pair<MessagePort, MessagePort> Create(PortOptions options = {}) {
    auto pair = runtime_internal::PortAccess::ShmPairForTesting(options);
    if (!pair.ok()) {
      ADD_FAILURE() << pair.status();
      return MessageChannel::Create(options);
    }
    return *std::move(pair);
  }
};

using PortTransports = ::testing::Types<InProcessTransport, ShmTransport>;
// The transports that carry MessagePorts inside messages (kCarriesPorts):
// the port-transfer suite runs over these.
using PortCarryingTransports = ::testing::Types<InProcessTransport, ShmTransport>;

struct TransportName {
  template <class T>
  static std::string GetName(int) {
    return T::kName;
  }
};

}  // namespace wharf::testing

#endif  // WHARF_TESTS_RUNTIME_PORT_TRANSPORTS_H_

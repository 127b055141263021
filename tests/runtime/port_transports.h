// The transports the port test suites run over (one TYPED_TEST_SUITE each,
// as Abseil's waiter_test.cc runs one suite over every waiter backend).
//
// A transport's traits: a name for the test output, Create(options) making
// a MessageChannel over it, and what the transport guarantees beyond the
// common contract (kZeroCopyMove: a moved Buffer arrives at the same address,
// i.e. both ends share the address space).

#ifndef WHARF_TESTS_RUNTIME_PORT_TRANSPORTS_H_
#define WHARF_TESTS_RUNTIME_PORT_TRANSPORTS_H_

#include <string>
#include <utility>

#include "gtest/gtest.h"
#include "wharf/runtime/message_port.h"

namespace wharf::testing {

// Both ends in this process: InProcessChannel.
struct InProcessTransport {
  static constexpr const char* kName = "InProcess";
  static constexpr bool kZeroCopyMove = true;
  static std::pair<MessagePort, MessagePort> Create(PortOptions options = {}) {
    return MessageChannel::Create(options);
  }
};

using PortTransports = ::testing::Types<InProcessTransport>;

struct TransportName {
  template <class T>
  static std::string GetName(int) {
    return T::kName;
  }
};

}  // namespace wharf::testing

#endif  // WHARF_TESTS_RUNTIME_PORT_TRANSPORTS_H_

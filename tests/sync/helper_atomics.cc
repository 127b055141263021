// sync_process_helper subcommands for atomics_test.
#include <cstdio>
#include <string>
#include <vector>

#include "tests/sync/process_helper_registry.h"
#include "wharf/sync/atomics.h"
#include "wharf/sync/shared_buffer.h"

namespace wharf::testing {

// atomics_pong NAME ROUNDS: plays the odd turns of a ping-pong on cell 0.
WHARF_HELPER_COMMAND(atomics_pong) {
  auto buffer = SharedBuffer::OpenNamed(args.at(0));
  if (!buffer.ok()) {
    std::fprintf(stderr, "%s\n", buffer.status().ToString().c_str());
    return 3;
  }
  auto cells = buffer->View<int32_t>();
  if (!cells.ok()) return 4;
  int32_t& turn = (*cells)[0];
  const int rounds = std::stoi(args.at(1));
  for (int i = 0; i < rounds; ++i) {
    for (;;) {
      const int32_t seen = atomics::Load(turn);
      if ((seen & 1) == 1) break;
      atomics::Wait(turn, seen);
    }
    atomics::Add(turn, 1);
    atomics::Notify(turn, 1);
  }
  return 0;
}

}  // namespace wharf::testing

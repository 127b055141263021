// sync_process_helper COMMAND ARGS...: runs one registered subcommand (see
// process_helper_registry.h and helper_*.cc) and exits with its code.
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "tests/sync/process_helper_registry.h"

int main(int argc, char** argv) {
  // Die with the test process, even if it aborts (watchdog) or is killed;
  // re-check the parent in case it died before prctl.
  const pid_t parent = ::getppid();
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) return 99;
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s COMMAND ARGS...\ncommands:", argv[0]);
    for (const auto& [name, fn] : wharf::testing::HelperCommands()) {
      std::fprintf(stderr, " %s", name.c_str());
    }
    std::fprintf(stderr, "\n");
    return 2;
  }
  auto& commands = wharf::testing::HelperCommands();
  auto it = commands.find(argv[1]);
  if (it == commands.end()) {
    std::fprintf(stderr, "%s: unknown command '%s'\n", argv[0], argv[1]);
    return 2;
  }
  return it->second(std::vector<std::string>(argv + 2, argv + argc));
}

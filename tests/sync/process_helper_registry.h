// The subcommands of sync_process_helper, the child process of the
// cross-process tests. Each concept registers its own in helper_<concept>.cc:
//
//   WHARF_HELPER_COMMAND(mutex_contend) { ...; return 0; }  // args = argv[2..]
//
// and a test runs `sync_process_helper mutex_contend ARGS...` through
// wharf::testing::Subprocess. Exit code 0 = success; anything else is reported
// by the test. Children die with their parent (PR_SET_PDEATHSIG).
#ifndef WHARF_TESTS_SYNC_PROCESS_HELPER_REGISTRY_H_
#define WHARF_TESTS_SYNC_PROCESS_HELPER_REGISTRY_H_

#include <map>
#include <string>
#include <vector>

namespace wharf::testing {

using HelperCommand = int (*)(const std::vector<std::string>& args);

inline std::map<std::string, HelperCommand>& HelperCommands() {
  static auto* commands = new std::map<std::string, HelperCommand>;
  return *commands;
}

struct HelperRegistration {
  HelperRegistration(const char* name, HelperCommand fn) { HelperCommands()[name] = fn; }
};

}  // namespace wharf::testing

#define WHARF_HELPER_COMMAND(name)                                          \
  static int HelperCommand_##name(const std::vector<std::string>& args);   \
  static ::wharf::testing::HelperRegistration helper_registration_##name(  \
      #name, &HelperCommand_##name);                                        \
  static int HelperCommand_##name(const std::vector<std::string>& args)

#endif  // WHARF_TESTS_SYNC_PROCESS_HELPER_REGISTRY_H_

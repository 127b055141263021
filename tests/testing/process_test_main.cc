// main() for test binaries that start process workers: the binary is
// re-executed as each worker, so InitProcess must run before GoogleTest
// parses (or prints) anything.
#include "gtest/gtest.h"
#include "wharf/runtime/init_process.h"

int main(int argc, char** argv) {
  wharf::InitProcess(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}

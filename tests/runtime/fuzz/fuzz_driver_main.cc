// Runs LLVMFuzzerTestOneInput without libFuzzer, for the regression test:
// every file named on the command line (the seed corpus), then, for each,
// every truncation and every single-byte change to a few interesting values.
// A finding traps, failing the test; the last input is named on stderr.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

void Run(const std::string& input) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_FILE...\n", argv[0]);
    return 2;
  }
  static const uint8_t kBytes[] = {0x00, 0x01, 0x02, 0x05, 0x07, 0x08, 0x09, 0x0a,
                                   0x0b, 0x0c, 0x7f, 0x80, 0xc0, 0xed, 0xff};
  size_t runs = 0;
  for (int i = 1; i < argc; ++i) {
    std::ifstream file(argv[i], std::ios::binary);
    if (!file) {
      std::fprintf(stderr, "cannot read %s\n", argv[i]);
      return 2;
    }
    const std::string seed((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    std::fprintf(stderr, "seed %s (%zu bytes)\n", argv[i], seed.size());
    Run(seed);
    for (size_t n = 0; n < seed.size(); ++n) Run(seed.substr(0, n));
    for (size_t pos = 0; pos < seed.size(); ++pos) {
      for (uint8_t b : kBytes) {
        std::string mutated = seed;
        mutated[pos] = static_cast<char>(b);
        Run(mutated);
        ++runs;
      }
    }
    runs += seed.size() + 1;
  }
  std::fprintf(stderr, "%zu inputs, no findings\n", runs);
  return 0;
}

// Random Values for the codec's property tests and corpus generator.

#ifndef WHARF_TESTS_RUNTIME_RANDOM_VALUE_H_
#define WHARF_TESTS_RUNTIME_RANDOM_VALUE_H_

#include <cstdint>
#include <limits>
#include <random>
#include <string>

#include "wharf/runtime/buffer.h"
#include "wharf/runtime/value.h"
#include "wharf/sync/shared_buffer.h"

namespace wharf::testing {

// Generates trees of every kind (depth-limited). With `shared` non-empty,
// SharedBuffer leaves are handles to it.
class RandomValues {
 public:
  RandomValues(uint64_t seed, SharedBuffer shared = {}) : rng_(seed), shared_(std::move(shared)) {}

  Value Next(int max_depth = 4) { return Make(max_depth); }

 private:
  uint64_t Below(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_); }

  std::string RandomUtf8() {
    static const char* const kPieces[] = {"a", "Z", "0", " ", "\"", "\\", "\n", "\x7f",
                                          "\xc3\xa9",          // é
                                          "\xe2\x82\xac",      // €
                                          "\xef\xbf\xbf",      // U+FFFF
                                          "\xf0\x9f\x98\x80",  // 😀
                                          "\xf4\x8f\xbf\xbf"};  // U+10FFFF
    std::string s;
    const uint64_t n = Below(3) == 0 ? Below(40) : Below(8);
    for (uint64_t i = 0; i < n; ++i) s += kPieces[Below(std::size(kPieces))];
    return s;
  }

  Value Make(int depth) {
    // Leaves 0..6, SharedBuffer 7 (when given), then array and map while depth lasts.
    const uint64_t leaves = shared_ ? 8 : 7;
    uint64_t kind = Below(leaves + (depth > 0 ? 2 : 0));
    if (kind >= leaves) kind = 8 + (kind - leaves);
    switch (kind) {
      case 0: return Value();
      case 1: return Value(Below(2) == 1);
      case 2: {
        static const int64_t kEdges[] = {0, 1, -1, 63, 64, -64, -65, 127, 128,
                                         std::numeric_limits<int64_t>::min(),
                                         std::numeric_limits<int64_t>::max()};
        if (Below(2) == 0) return Value(kEdges[Below(std::size(kEdges))]);
        return Value(static_cast<int64_t>(rng_()) >> Below(64));
      }
      case 3: {
        static const double kEdges[] = {0.0, -0.0, 1.5, -1e300, 5e-324,
                                        std::numeric_limits<double>::infinity(),
                                        std::numeric_limits<double>::quiet_NaN()};
        if (Below(2) == 0) return Value(kEdges[Below(std::size(kEdges))]);
        return Value(std::uniform_real_distribution<double>(-1e6, 1e6)(rng_));
      }
      case 4: return Value(RandomUtf8());
      case 5: {
        ValueBytes bytes(Below(50));
        for (std::byte& b : bytes) b = static_cast<std::byte>(Below(256));
        return Value(std::move(bytes));
      }
      case 6: {
        Buffer buffer = Buffer::Allocate(Below(100)).value();
        for (std::byte& b : buffer.span()) b = static_cast<std::byte>(Below(256));
        return Value(std::move(buffer));
      }
      case 7: return Value(shared_);
      case 8: {  // array
        ValueArray array;
        const uint64_t n = Below(6);
        for (uint64_t i = 0; i < n; ++i) array.push_back(Make(depth - 1));
        return Value(std::move(array));
      }
      case 9: {  // map
        ValueMap map;
        const uint64_t n = Below(6);
        for (uint64_t i = 0; i < n; ++i) map.Set(RandomUtf8(), Make(depth - 1));
        return Value(std::move(map));
      }
    }
    return Value();
  }

  std::mt19937_64 rng_;
  SharedBuffer shared_;
};

}  // namespace wharf::testing

#endif  // WHARF_TESTS_RUNTIME_RANDOM_VALUE_H_

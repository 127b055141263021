// Writes the seed corpus of codec_fuzzer: a few valid messages covering
// every tag. Usage: make_corpus OUT_DIR (the files are committed under
// tests/runtime/fuzz/corpus/; rerun after a format change).

#include <cstdio>
#include <fstream>
#include <string>
#include <utility>

#include "tests/runtime/random_value.h"
#include "wharf/runtime/buffer.h"
#include "wharf/runtime/codec.h"
#include "wharf/runtime/value.h"
#include "wharf/sync/shared_buffer.h"

namespace {

bool Write(const std::string& dir, const std::string& name, const std::string& bytes) {
  std::ofstream out(dir + "/" + name, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  using wharf::Value;
  const std::string dir = argv[1];
  bool ok = true;

  ok &= Write(dir, "scalars", wharf::EncodeValue(Value::Array(
                                  Value(), true, false, -300, 2.5, "h\xc3\xa9llo \xf0\x9f\x98\x80",
                                  wharf::ValueBytes{std::byte{0}, std::byte{255}})).value());

  Value map = Value::Map();
  map.GetMap()->Set("id", 7);
  map.GetMap()->Set("name", "resize");
  map.GetMap()->Set("inline", wharf::Buffer::Allocate(4).value());
  map.GetMap()->Set("nested", Value::Array(Value::Array(1), Value::Map()));
  ok &= Write(dir, "map", wharf::EncodeValue(map).value());

  // Transferred items: indexes into the fuzzer's table (3 Buffers, 2 SharedBuffers).
  wharf::TransferTable table;
  Value transfer = Value::Array(wharf::Buffer::Allocate(1).value(),
                                wharf::Buffer::Allocate(2).value(),
                                wharf::SharedBuffer::Create(64).value());
  ok &= Write(dir, "transfer", wharf::EncodeValue(transfer, &table).value());

  Value deep;
  for (int i = 0; i < 20; ++i) deep = Value::Array(std::move(deep), i);
  ok &= Write(dir, "deep", wharf::EncodeValue(deep).value());

  // The first random tree of a fixed seed whose encoding is 100..400 bytes.
  wharf::testing::RandomValues random(1);
  for (;;) {
    const std::string bytes = wharf::EncodeValue(random.Next(3)).value();
    if (bytes.size() >= 100 && bytes.size() <= 400) {
      ok &= Write(dir, "random", bytes);
      break;
    }
  }

  if (!ok) {
    std::fprintf(stderr, "cannot write the corpus under %s\n", dir.c_str());
    return 1;
  }
  return 0;
}

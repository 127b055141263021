// libFuzzer target for the Value decoder: DecodeValue (and DecodeValueInto,
// which must agree with it) must return a status
// for any bytes, never crash, hang or over-allocate; whatever it accepts must
// re-encode and decode to an equal Value, and to the same bytes when the
// message uses no transfer table (the encoding is canonical).
//
// Built two ways: by run_fuzzer.sh with clang -fsanitize=fuzzer (coverage-
// guided fuzzing), and by Bazel with fuzz_driver_main.cc as the regression
// test codec_fuzzer_regression_test (corpus plus simple mutations).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "wharf/runtime/buffer.h"
#include "wharf/runtime/codec.h"
#include "wharf/runtime/value.h"
#include "wharf/sync/shared_buffer.h"

namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "codec_fuzzer finding: %s\n", what);
    __builtin_trap();  // the fuzzer reports it with the input
  }
}

bool HasTransferTags(std::span<const std::byte> data) {
  // Only a hint for the canonical-bytes check below: a transfer tag byte
  // anywhere (even inside a string) just skips that check.
  for (std::byte b : data) {
    if (b == std::byte{0x0a} || b == std::byte{0x0b}) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const wharf::SharedBuffer* const shared = [] {
    absl::StatusOr<wharf::SharedBuffer> s = wharf::SharedBuffer::Create(64);
    if (!s.ok()) std::abort();
    return new wharf::SharedBuffer(*std::move(s));
  }();
  const std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data), size);

  {
    // The transports' paths (DecodeValueInto, EncodeValueTo: scalars in
    // place) agree with the general ones on every input, without a table.
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    absl::StatusOr<wharf::Value> plain = wharf::DecodeValue(bytes);
    wharf::Value into;
    const absl::Status st = wharf::DecodeValueInto(bytes, &into);
    Check(st.ok() == plain.ok(), "DecodeValueInto and DecodeValue disagree on acceptance");
    if (plain.ok()) {
      Check(into == *plain, "DecodeValueInto and DecodeValue disagree on the value");
      std::string to = "stale";
      Check(wharf::EncodeValueTo(into, &to).ok(), "EncodeValueTo failed on a decoded value");
      Check(to == bytes, "EncodeValueTo is not canonical");
    } else {
      Check(st == plain.status(), "DecodeValueInto and DecodeValue give different errors");
    }
  }
  wharf::TransferTable table;
  for (size_t i = 0; i < 3; ++i) table.buffers.push_back(wharf::Buffer::Allocate(i * 7).value());
  table.shared_buffers.push_back(*shared);
  table.shared_buffers.push_back(*shared);

  absl::StatusOr<wharf::Value> value = wharf::DecodeValue(input, &table);
  if (!value.ok()) {
    Check(!value.status().message().empty(), "an error without a message");
    return 0;
  }
  const std::string text = value->ToString();  // must not crash either
  absl::StatusOr<wharf::Value> copy = value->Clone();
  Check(copy.ok(), "Clone of a decoded value failed");

  if (!HasTransferTags(input)) {
    absl::StatusOr<std::string> again = wharf::EncodeValue(*value);
    Check(again.ok(), "re-encoding a decoded value failed");
    Check(std::string_view(*again) ==
              std::string_view(reinterpret_cast<const char*>(data), size),
          "the encoding is not canonical");
  }
  wharf::TransferTable table2;
  absl::StatusOr<std::string> wire = wharf::EncodeValue(*value, &table2);
  Check(wire.ok(), "re-encoding with a table failed");
  absl::StatusOr<wharf::Value> back = wharf::DecodeValue(*wire, &table2);
  Check(back.ok(), "decoding a re-encoded value failed");
  Check(*back == *copy, "round trip changed the value");
  return 0;
}

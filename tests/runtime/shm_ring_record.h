// The records the ShmRing tests and their helper process exchange: record i
// carries its index and a length and byte pattern derived from it, so a
// reader can check order, loss, duplication and content of every record.
#ifndef WHARF_TESTS_RUNTIME_SHM_RING_RECORD_H_
#define WHARF_TESTS_RUNTIME_SHM_RING_RECORD_H_

#include <cstdint>
#include <cstring>
#include <string>

namespace wharf::testing {

inline std::string RingRecord(uint64_t i, size_t max_len) {
  const size_t len = 8 + (i * 37) % (max_len - 8 + 1);
  std::string s(len, '\0');
  std::memcpy(s.data(), &i, 8);
  for (size_t k = 8; k < len; ++k) s[k] = static_cast<char>((i + k) * 131);
  return s;
}

// The index a record made by RingRecord claims, or -1 if it is not intact.
inline int64_t CheckRingRecord(const std::string& s, size_t max_len) {
  if (s.size() < 8) return -1;
  uint64_t i;
  std::memcpy(&i, s.data(), 8);
  return RingRecord(i, max_len) == s ? static_cast<int64_t>(i) : -1;
}

}  // namespace wharf::testing

#endif  // WHARF_TESTS_RUNTIME_SHM_RING_RECORD_H_

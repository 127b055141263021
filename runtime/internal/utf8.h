// UTF-8 validation for the Value codec (internal).

#ifndef WHARF_RUNTIME_INTERNAL_UTF8_H_
#define WHARF_RUNTIME_INTERNAL_UTF8_H_

#include <string_view>

namespace wharf::codec_internal {

// True if `s` is well-formed UTF-8 (RFC 3629): no overlong forms, no
// surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no truncated or stray
// continuation bytes.
bool IsValidUtf8(std::string_view s);

}  // namespace wharf::codec_internal

#endif  // WHARF_RUNTIME_INTERNAL_UTF8_H_

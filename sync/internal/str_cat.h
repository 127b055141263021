// Internal: absl::StrCat that also takes std::string_view.
//
// Debian's Abseil 20220623 is built with its own absl::string_view
// (ABSL_OPTION_USE_STD_STRING_VIEW is 0), and absl::StrCat does not accept a
// std::string_view. Cat() converts such arguments and forwards the rest.
#ifndef WHARF_SYNC_INTERNAL_STR_CAT_H_
#define WHARF_SYNC_INTERNAL_STR_CAT_H_

#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace wharf::sync_internal {

inline absl::string_view CatArg(std::string_view s) { return {s.data(), s.size()}; }
template <class T>
const T& CatArg(const T& x) {
  return x;
}
template <class... Args>
std::string Cat(const Args&... args) {
  return absl::StrCat(CatArg(args)...);
}

}  // namespace wharf::sync_internal

#endif  // WHARF_SYNC_INTERNAL_STR_CAT_H_

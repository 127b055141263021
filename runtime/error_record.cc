#include "wharf/runtime/error_record.h"

#include <cxxabi.h>

#include <cstdlib>
#include <memory>
#include <typeinfo>

#include "wharf/sync/interrupt.h"

namespace wharf {
namespace {

std::string Demangle(const char* mangled) {
  if (mangled == nullptr) return "unknown";
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(
      abi::__cxa_demangle(mangled, nullptr, nullptr, &status), &std::free);
  return status == 0 && name != nullptr ? std::string(name.get()) : std::string(mangled);
}

// what() may be null, or (a badly written exception) throw.
std::string SafeWhat(const std::exception& e) noexcept {
  try {
    const char* w = e.what();
    return w != nullptr ? std::string(w) : std::string();
  } catch (...) {
    return std::string();
  }
}

}  // namespace

std::string ErrorRecord::ToString() const {
  return message.empty() ? type : type + ": " + message;
}

ErrorRecord ErrorRecord::Of(std::exception_ptr e) noexcept {
  try {
    if (e == nullptr) return ErrorRecord{"unknown", "no exception"};
    try {
      std::rethrow_exception(e);
    } catch (const WorkerError& w) {
      return w.record();
    } catch (const Interrupted& i) {
      return ErrorRecord{"wharf::Interrupted", i.what()};
    } catch (const std::exception& ex) {
      return ErrorRecord{Demangle(typeid(ex).name()), SafeWhat(ex)};
    } catch (const std::string& s) {
      return ErrorRecord{"std::string", s};
    } catch (const char* s) {
      return ErrorRecord{"const char*", s != nullptr ? s : ""};
    } catch (...) {
      const std::type_info* t = abi::__cxa_current_exception_type();
      return ErrorRecord{Demangle(t != nullptr ? t->name() : nullptr), ""};
    }
  } catch (...) {
    return ErrorRecord{"unknown", ""};  // out of memory building the strings
  }
}

}  // namespace wharf

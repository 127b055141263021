// Internal: NamedRegistry<Fn> — a process-wide table from names to functions
// for one kind of registered thing (worker entries, pool tasks): what lets a
// process worker find by name the function its parent asked for (functions
// do not cross processes; names do).
//
// Register refuses an empty name, a null function and a name taken before,
// each with a status saying so; Find's NotFound says how to register. Entries
// are never removed. Thread-safety: any thread, also during static
// initialisation (the macros register from static initialisers: the table
// is created on first use and never destroyed).

#ifndef WHARF_RUNTIME_INTERNAL_NAMED_REGISTRY_H_
#define WHARF_RUNTIME_INTERNAL_NAMED_REGISTRY_H_

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "wharf/sync/internal/str_cat.h"
#include "wharf/sync/mutex.h"

namespace wharf::runtime_internal {

template <class Fn>
class NamedRegistry {
 public:
  // `kind` names an entry in messages ("worker entry"); `how` says how to
  // register one ("WorkerRegistry::Register or WHARF_WORKER_ENTRY"); `macro`
  // prefixes RegisterOrDie's message ("WHARF_WORKER_ENTRY").
  NamedRegistry(const char* kind, const char* how, const char* macro)
      : kind_(kind), how_(how), macro_(macro) {}

  absl::Status Register(std::string name, Fn fn) {
    using sync_internal::Cat;
    if (name.empty()) return absl::InvalidArgumentError(Cat(kind_, " name is empty"));
    if (!fn) return absl::InvalidArgumentError(Cat(kind_, " '", name, "' is null"));
    MutexLock lock(mu_);
    if (!entries_.emplace(name, std::move(fn)).second) {
      return absl::AlreadyExistsError(Cat(kind_, " '", name, "' is already registered"));
    }
    return absl::OkStatus();
  }

  // Register, aborting with the reason on error (for the macros' static
  // initialisers, where nothing could report a status).
  bool RegisterOrDie(std::string name, Fn fn) {
    absl::Status s = Register(std::move(name), std::move(fn));
    if (!s.ok()) {
      std::fprintf(stderr, "%s: %s\n", macro_, std::string(s.message()).c_str());
      std::abort();
    }
    return true;
  }

  absl::StatusOr<Fn> Find(std::string_view name) const {
    absl::StatusOr<const Entry*> e = FindEntry(name);
    if (!e.ok()) return e.status();
    return (*e)->second;
  }

  // The entry itself: its name and function stay where they are for the
  // life of the process (std::map nodes do not move; nothing is removed).
  using Entry = std::pair<const std::string, Fn>;
  absl::StatusOr<const Entry*> FindEntry(std::string_view name) const {
    MutexLock lock(mu_);
    auto it = entries_.find(name);
    if (it == entries_.end()) {
      return absl::NotFoundError(
          sync_internal::Cat("no ", kind_, " named '", name, "' (register it with ", how_, ")"));
    }
    return &*it;
  }

 private:
  const char* const kind_;
  const char* const how_;
  const char* const macro_;
  mutable Mutex mu_;
  std::map<std::string, Fn, std::less<>> entries_;  // guarded by mu_
};

}  // namespace wharf::runtime_internal

#endif  // WHARF_RUNTIME_INTERNAL_NAMED_REGISTRY_H_

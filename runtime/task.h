// Pool tasks: named functions a WorkerPool runs — Piscina's named exports,
// Python's top-level functions — registered once per program, so that a
// process worker (a re-exec of the same program) finds the one its parent
// asked for by name.
//
//   // Untyped: a Value in, a Value (or an error status) out.
//   WHARF_TASK(add_one) { return Value(arg.AsInt().value() + 1); }
//
//   // Typed: a free function whose parameters and result have a Codec<T>;
//   // a TaskContext& first parameter is optional.
//   std::string HashPassword(std::string password, std::string salt) { ... }
//   WHARF_TYPED_TASK(HashPassword);
//   ... pool.Submit(&HashPassword, "hunter2", salt) -> Future<std::string>
//
// A task runs on a pool worker with a TaskContext: its name, id and
// attempt, and StopRequested() — true once the task was cancelled or its
// timeout passed, so a long task can return early (its result is dropped).
// An exception thrown by a task fails that task only; the pool reports the
// worker's error record (type and message) in the task's status.
//
// Typed tasks take their arguments as one array Value, element i decoded by
// Codec<Ai>: a wrong count or shape fails the task with InvalidArgument
// naming the task and the argument (never a crash: arguments may come from
// another process). The result is encoded with Codec<R> (void: null).
//
// Thread-safety: registration and lookup from any thread, also during
// static initialisation (the macros register from static initialisers).
// A name is registered once: a second registration is AlreadyExists (and the
// macros abort with that message at start-up).

#ifndef WHARF_RUNTIME_TASK_H_
#define WHARF_RUNTIME_TASK_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "wharf/runtime/codec.h"
#include "wharf/runtime/error_record.h"
#include "wharf/runtime/value.h"
#include "wharf/sync/internal/str_cat.h"

namespace wharf {

// What a running task sees of its run. Cheap to copy; StopRequested may be
// polled from the task's thread at any rate (one relaxed load).
//
// The stop signal is a 64-bit cell holding the id of the task asked to stop:
// a thread pool gives each task its own cell, a process worker one cell in
// memory shared with its pool, which writes the running task's id there to
// stop it (so a late write can never stop the next task).
class TaskContext {
 public:
  TaskContext(std::string name, uint64_t id, int attempt,
              std::shared_ptr<const std::atomic<uint64_t>> stop)
      : owned_name_(std::move(name)),
        name_(owned_name_),
        id_(id),
        attempt_(attempt),
        stop_(stop.get()),
        stop_owner_(std::move(stop)) {}

  // For runners (the pool's workers): `name` and `*stop` must outlive the
  // context; nothing is copied or counted.
  static TaskContext Borrowed(std::string_view name, uint64_t id, int attempt,
                              const std::atomic<uint64_t>* stop) {
    return TaskContext(BorrowTag{}, name, id, attempt, stop);
  }

  TaskContext(const TaskContext& o)
      : owned_name_(o.owned_name_),
        name_(o.owns_name() ? std::string_view(owned_name_) : o.name_),
        id_(o.id_),
        attempt_(o.attempt_),
        stop_(o.stop_),
        stop_owner_(o.stop_owner_) {}
  TaskContext& operator=(const TaskContext&) = delete;

  std::string_view task_name() const { return name_; }
  // Unique within the pool that runs it (never 0).
  uint64_t task_id() const { return id_; }
  // 1; 2 when an idempotent task runs again after its worker died.
  int attempt() const { return attempt_; }
  // The task was cancelled or timed out: return soon, the result is dropped.
  bool StopRequested() const {
    return stop_ != nullptr && stop_->load(std::memory_order_relaxed) == id_;
  }

 private:
  struct BorrowTag {};
  TaskContext(BorrowTag, std::string_view name, uint64_t id, int attempt,
              const std::atomic<uint64_t>* stop)
      : name_(name), id_(id), attempt_(attempt), stop_(stop) {}
  bool owns_name() const { return name_.data() == owned_name_.data(); }

  std::string owned_name_;  // the public constructor's copy; empty when borrowed
  std::string_view name_;
  uint64_t id_ = 0;
  int attempt_ = 1;
  const std::atomic<uint64_t>* stop_ = nullptr;
  std::shared_ptr<const std::atomic<uint64_t>> stop_owner_;  // keeps *stop_ alive, if given
};

using TaskFunction = std::function<absl::StatusOr<Value>(TaskContext&, Value)>;

// Registered tasks, shared by every pool and isolation.
class TaskRegistry {
 public:
  // InvalidArgument for an empty name or a null function; AlreadyExists for a
  // name registered before.
  static absl::Status Register(std::string name, TaskFunction fn);
  // Register, aborting with the reason on error (the macros' static init).
  static bool RegisterOrDie(std::string name, TaskFunction fn);
  // NotFound naming the task and how to register one.
  static absl::StatusOr<TaskFunction> Find(std::string_view name);

  // Typed tasks: `fn` registered under `name`, and remembered so that
  // NameOf(fn) finds the name again (Submit(&fn, ...)).
  template <class R, class... A>
  static bool RegisterTypedOrDie(std::string name, R (*fn)(A...));
  // The name a typed task's function was registered under; NotFound if it
  // was not (register it with WHARF_TYPED_TASK).
  static absl::StatusOr<std::string> NameOf(const void* fn);

 private:
  static bool RememberName(const void* fn, const std::string& name);
};

// Runs `fn` as a pool worker does: a thrown exception becomes kUnknown
// "task 'name' failed: <type>: <message>" carrying the ErrorRecord as a
// payload (TaskErrorRecord in worker_pool.h reads it back).
absl::StatusOr<Value> CallTask(const TaskFunction& fn, TaskContext& ctx, Value arg);
// The status CallTask makes of an exception of `type` with `message` (also
// rebuilt from a process worker's report).
absl::Status TaskExceptionStatus(std::string_view task, std::string_view type,
                                 std::string_view message);
// The ErrorRecord a failed task's status carries (nullopt if none).
std::optional<ErrorRecord> TaskErrorRecord(const absl::Status& status);

namespace task_internal {

// A registered task, pointing into the registry (whose entries are never
// moved or removed).
struct RegisteredTask {
  std::string_view name;
  const TaskFunction* fn;
};
// The registered task `name` (TaskRegistry::Find's NotFound otherwise); the
// pools' lookup, cached per thread (no lock once a thread has seen it).
absl::StatusOr<RegisteredTask> FindTask(std::string_view name);
// The name a typed task's function was registered under (NameOf's NotFound
// otherwise), as stable as FindTask's.
absl::StatusOr<std::string_view> TypedTaskName(const void* fn);

// A task's failure as plain fields, for results that cross a process or are
// batched (the process pool's replies, Map's chunks): appends
// code, message, type, what (type/what: its ErrorRecord, or null) to `out`.
void AppendStatus(const absl::Status& status, ValueArray& out);
// The status AppendStatus wrote at fields[first...]; a task's exception is
// rebuilt as CallTask made it (with its record). Internal for malformed
// fields, naming `task`.
absl::Status StatusFromFields(const ValueArray& fields, size_t first, std::string_view task);

template <class T>
using Plain = std::remove_cvref_t<T>;

// The parameters a caller supplies: A..., without a leading TaskContext&.
template <class... A>
struct Params {
  using Tuple = std::tuple<Plain<A>...>;
  static constexpr bool kWithContext = false;
};
template <class... A>
struct Params<TaskContext&, A...> {
  using Tuple = std::tuple<Plain<A>...>;
  static constexpr bool kWithContext = true;
};

absl::Status ArgumentError(std::string_view task, size_t index, size_t count,
                           const absl::Status& why);
absl::Status CountError(std::string_view task, size_t want, const Value& arg);

template <class Tuple, size_t... I>
absl::StatusOr<Tuple> DecodeArgs(std::string_view task, const ValueArray& array,
                                 std::index_sequence<I...>) {
  // Each into an optional (parameters need not be default-constructible),
  // in order, stopping at the first failure.
  std::tuple<std::optional<std::tuple_element_t<I, Tuple>>...> parts;
  absl::Status failed;
  (void)(([&] {
           using T = std::tuple_element_t<I, Tuple>;
           absl::StatusOr<T> v = Codec<T>::Decode(array[I]);
           if (!v.ok()) {
             failed = ArgumentError(task, I, sizeof...(I), v.status());
             return false;
           }
           std::get<I>(parts).emplace(*std::move(v));
           return true;
         }() &&
         ...));
  if (!failed.ok()) return failed;
  return Tuple(std::move(*std::get<I>(parts))...);
}

// The TaskFunction of a typed task: decode the arguments, call, encode.
template <class R, class... A>
TaskFunction MakeTyped(std::string name, R (*fn)(A...)) {
  using P = Params<A...>;
  using Tuple = typename P::Tuple;
  constexpr size_t kCount = std::tuple_size_v<Tuple>;
  return [name = std::move(name), fn](TaskContext& ctx, Value arg) -> absl::StatusOr<Value> {
    const ValueArray* array = arg.GetArray();
    if (array == nullptr || array->size() != kCount) return CountError(name, kCount, arg);
    absl::StatusOr<Tuple> args =
        DecodeArgs<Tuple>(name, *array, std::make_index_sequence<kCount>());
    if (!args.ok()) return args.status();
    auto call = [&](auto&&... a) -> decltype(auto) {
      if constexpr (P::kWithContext) {
        return fn(ctx, std::move(a)...);
      } else {
        return fn(std::move(a)...);
      }
    };
    if constexpr (std::is_void_v<R>) {
      std::apply(call, std::move(*args));
      return Value();
    } else {
      return Codec<Plain<R>>::Encode(std::apply(call, std::move(*args)));
    }
  };
}

// Submit's half: the arguments as the array a typed task decodes. Checked at
// compile time against the function's parameters.
template <class R, class... A, class... Args>
Value EncodeArgs(R (*)(A...), Args&&... args) {
  using Tuple = typename Params<A...>::Tuple;
  static_assert(sizeof...(Args) == std::tuple_size_v<Tuple>,
                "Submit: wrong number of arguments for this task");
  return [&]<size_t... I>(std::index_sequence<I...>) {
    return Value::Array(
        Codec<std::tuple_element_t<I, Tuple>>::Encode(
            std::tuple_element_t<I, Tuple>(std::forward<Args>(args)))...);
  }(std::make_index_sequence<sizeof...(Args)>());
}

}  // namespace task_internal

template <class R, class... A>
bool TaskRegistry::RegisterTypedOrDie(std::string name, R (*fn)(A...)) {
  RememberName(reinterpret_cast<const void*>(fn), name);
  return RegisterOrDie(name, task_internal::MakeTyped(name, fn));
}

}  // namespace wharf

// Defines and registers an untyped task; the body's parameters are named
// `ctx` (TaskContext&) and `arg` (Value), and it returns a Value or an
// absl::Status / absl::StatusOr<Value>.
#define WHARF_TASK(name)                                                                  \
  static ::absl::StatusOr<::wharf::Value> wharf_task_##name(::wharf::TaskContext& ctx,    \
                                                            ::wharf::Value arg);          \
  [[maybe_unused]] static const bool wharf_task_registered_##name =                       \
      ::wharf::TaskRegistry::RegisterOrDie(#name, &wharf_task_##name);                    \
  static ::absl::StatusOr<::wharf::Value> wharf_task_##name(                              \
      [[maybe_unused]] ::wharf::TaskContext& ctx, [[maybe_unused]] ::wharf::Value arg)

// Registers the free function `fn` (declared before) as a typed task named
// after it.
#define WHARF_TYPED_TASK(fn)                                 \
  [[maybe_unused]] static const bool wharf_typed_task_##fn = \
      ::wharf::TaskRegistry::RegisterTypedOrDie(#fn, &fn)

#endif  // WHARF_RUNTIME_TASK_H_

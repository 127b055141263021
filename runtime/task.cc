#include "wharf/runtime/task.h"

#include <exception>
#include <map>

#include "absl/strings/cord.h"
#include "wharf/runtime/error_record.h"
#include "wharf/runtime/internal/named_registry.h"
#include "wharf/sync/mutex.h"

namespace wharf {

namespace {

using sync_internal::Cat;

constexpr char kErrorRecordUrl[] = "type.googleapis.com/wharf.ErrorRecord";

runtime_internal::NamedRegistry<TaskFunction>& Tasks() {
  // Never destroyed: usable in static initialisation and at exit.
  static auto* r = new runtime_internal::NamedRegistry<TaskFunction>(
      "task", "TaskRegistry::Register, WHARF_TASK or WHARF_TYPED_TASK", "WHARF_TASK");
  return *r;
}

struct Names {
  Mutex mu;
  std::map<const void*, std::string> by_fn;  // guarded by mu
};
Names& TypedNames() {
  static auto* n = new Names;
  return *n;
}

}  // namespace

absl::Status TaskExceptionStatus(std::string_view task, std::string_view type,
                                 std::string_view message) {
  const ErrorRecord record{std::string(type), std::string(message)};
  absl::Status s = absl::UnknownError(Cat("task '", task, "' failed: ", record.ToString()));
  std::string payload(type);
  payload.push_back('\0');
  payload += message;
  s.SetPayload(kErrorRecordUrl, absl::Cord(payload));
  return s;
}

std::optional<ErrorRecord> TaskErrorRecord(const absl::Status& status) {
  auto payload = status.GetPayload(kErrorRecordUrl);  // absl::optional in Debian's Abseil
  if (!payload.has_value()) return std::nullopt;
  const std::string flat(*payload);
  const size_t nul = flat.find('\0');
  if (nul == std::string::npos) return std::nullopt;
  return ErrorRecord{flat.substr(0, nul), flat.substr(nul + 1)};
}

absl::StatusOr<Value> CallTask(const TaskFunction& fn, TaskContext& ctx, Value arg) {
  try {
    return fn(ctx, std::move(arg));
  } catch (...) {
    const ErrorRecord record = ErrorRecord::Of(std::current_exception());
    return TaskExceptionStatus(ctx.task_name(), record.type, record.message);
  }
}

namespace task_internal {

void AppendStatus(const absl::Status& status, ValueArray& out) {
  std::optional<ErrorRecord> record = TaskErrorRecord(status);
  out.emplace_back(static_cast<int64_t>(status.code()));
  out.emplace_back(std::string(status.message()));
  out.emplace_back(record ? Value(record->type) : Value());
  out.emplace_back(record ? Value(record->message) : Value());
}

absl::Status StatusFromFields(const ValueArray& a, size_t first, std::string_view task) {
  const int64_t* code = a.size() > first ? a[first].GetInt() : nullptr;
  const std::string* message = a.size() > first + 1 ? a[first + 1].GetString() : nullptr;
  if (code == nullptr || message == nullptr || *code <= 0 || *code > 16) {
    return absl::InternalError(Cat("task '", task, "': a malformed result from its worker"));
  }
  const std::string* type = a.size() > first + 2 ? a[first + 2].GetString() : nullptr;
  const std::string* what = a.size() > first + 3 ? a[first + 3].GetString() : nullptr;
  if (type != nullptr && what != nullptr &&
      static_cast<absl::StatusCode>(*code) == absl::StatusCode::kUnknown) {
    return TaskExceptionStatus(task, *type, *what);  // as CallTask made it there
  }
  return absl::Status(static_cast<absl::StatusCode>(*code), *message);
}

}  // namespace task_internal

absl::Status TaskRegistry::Register(std::string name, TaskFunction fn) {
  return Tasks().Register(std::move(name), std::move(fn));
}

bool TaskRegistry::RegisterOrDie(std::string name, TaskFunction fn) {
  return Tasks().RegisterOrDie(std::move(name), std::move(fn));
}

absl::StatusOr<TaskFunction> TaskRegistry::Find(std::string_view name) {
  return Tasks().Find(name);
}

bool TaskRegistry::RememberName(const void* fn, const std::string& name) {
  Names& n = TypedNames();
  MutexLock lock(n.mu);
  return n.by_fn.emplace(fn, name).second;
}

absl::StatusOr<std::string> TaskRegistry::NameOf(const void* fn) {
  absl::StatusOr<std::string_view> name = task_internal::TypedTaskName(fn);
  if (!name.ok()) return name.status();
  return std::string(*name);
}

namespace task_internal {

absl::StatusOr<RegisteredTask> FindTask(std::string_view name) {
  // One entry per thread: a submitting loop runs the same task again and
  // again. Valid for ever (entries never move or go).
  thread_local const runtime_internal::NamedRegistry<TaskFunction>::Entry* last = nullptr;
  const auto* e = last;
  if (e == nullptr || e->first != name) {
    absl::StatusOr<const runtime_internal::NamedRegistry<TaskFunction>::Entry*> found =
        Tasks().FindEntry(name);
    if (!found.ok()) return found.status();
    e = last = *found;
  }
  return RegisteredTask{e->first, &e->second};
}

absl::StatusOr<std::string_view> TypedTaskName(const void* fn) {
  thread_local const std::pair<const void* const, std::string>* last = nullptr;
  const auto* e = last;
  if (e == nullptr || e->first != fn) {
    Names& n = TypedNames();
    MutexLock lock(n.mu);
    auto it = n.by_fn.find(fn);
    if (it == n.by_fn.end()) {
      return absl::NotFoundError(
          "this function is not a registered typed task (register it with "
          "WHARF_TYPED_TASK(function) at namespace scope)");
    }
    e = last = &*it;
  }
  return std::string_view(e->second);
}

absl::Status ArgumentError(std::string_view task, size_t index, size_t count,
                           const absl::Status& why) {
  return absl::InvalidArgumentError(Cat("task '", task, "': argument ", index + 1, " of ", count,
                                        ": ", why.message()));
}

absl::Status CountError(std::string_view task, size_t want, const Value& arg) {
  const ValueArray* array = arg.GetArray();
  return absl::InvalidArgumentError(
      array == nullptr
          ? Cat("task '", task, "' takes its ", want, " argument(s) as an array; got ",
                Value::KindName(arg.kind()))
          : Cat("task '", task, "' takes ", want, " argument(s); got ", array->size()));
}

}  // namespace task_internal

}  // namespace wharf

#include "wharf/runtime/task.h"

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "wharf/runtime/value.h"

namespace {

// Registered at namespace scope, as users do.
WHARF_TASK(task_test_add_one) {
  absl::StatusOr<int64_t> x = arg.AsInt();
  if (!x.ok()) return x.status();
  return wharf::Value(*x + 1);
}

WHARF_TASK(task_test_context) {
  return wharf::Value::Array(std::string(ctx.task_name()), static_cast<int64_t>(ctx.task_id()),
                             ctx.attempt(), ctx.StopRequested());
}

std::string Greet(std::string name, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += "hi " + name + ";";
  return out;
}
WHARF_TYPED_TASK(Greet);

int64_t AttemptTimes(wharf::TaskContext& ctx, int64_t x) { return x * ctx.attempt(); }
WHARF_TYPED_TASK(AttemptTimes);

void Nothing() {}
WHARF_TYPED_TASK(Nothing);

struct NoDefault {
  explicit NoDefault(int v) : v(v) {}
  int v;
};

}  // namespace

template <>
struct wharf::Codec<NoDefault> {
  static Value Encode(const NoDefault& n) { return Value(n.v); }
  static absl::StatusOr<NoDefault> Decode(const Value& v) {
    absl::StatusOr<int64_t> i = v.AsInt();
    if (!i.ok()) return i.status();
    return NoDefault(static_cast<int>(*i));
  }
};

namespace {

int Unwrap(NoDefault n) { return n.v * 2; }
WHARF_TYPED_TASK(Unwrap);

namespace w = ::wharf;

w::TaskContext Ctx(std::string name, int attempt = 1,
                   std::shared_ptr<std::atomic<uint64_t>> stop = nullptr) {
  return w::TaskContext(std::move(name), 7, attempt, std::move(stop));
}

absl::StatusOr<w::Value> Call(std::string_view name, w::Value arg, int attempt = 1) {
  absl::StatusOr<w::TaskFunction> fn = w::TaskRegistry::Find(name);
  if (!fn.ok()) return fn.status();
  w::TaskContext ctx = Ctx(std::string(name), attempt);
  return (*fn)(ctx, std::move(arg));
}

TEST(TaskTest, UntypedTaskRunsAndReportsItsErrors) {
  EXPECT_EQ(*Call("task_test_add_one", w::Value(41)), w::Value(42));
  absl::StatusOr<w::Value> bad = Call("task_test_add_one", w::Value("x"));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TaskTest, ContextCarriesNameIdAttemptAndStop) {
  auto stop = std::make_shared<std::atomic<uint64_t>>(0);
  w::TaskFunction fn = w::TaskRegistry::Find("task_test_context").value();
  w::TaskContext ctx = Ctx("task_test_context", 2, stop);
  EXPECT_EQ(*fn(ctx, w::Value()), w::Value::Array("task_test_context", 7, 2, false));
  stop->store(8);  // another task's id: not this one's stop
  EXPECT_EQ(*fn(ctx, w::Value()), w::Value::Array("task_test_context", 7, 2, false));
  stop->store(7);
  EXPECT_EQ(*fn(ctx, w::Value()), w::Value::Array("task_test_context", 7, 2, true));
}

TEST(TaskTest, CallTaskTurnsAnExceptionIntoAStatusWithItsRecord) {
  w::TaskFunction fn = [](w::TaskContext&, w::Value) -> absl::StatusOr<w::Value> {
    throw std::out_of_range("index 9");
  };
  w::TaskContext ctx = Ctx("thrower");
  const absl::Status s = w::CallTask(fn, ctx, w::Value()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(s.message(), "task 'thrower' failed: std::out_of_range: index 9");
  std::optional<w::ErrorRecord> r = w::TaskErrorRecord(s);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->type, "std::out_of_range");
  EXPECT_EQ(r->message, "index 9");
  EXPECT_FALSE(w::TaskErrorRecord(absl::UnknownError("plain")).has_value());
}

TEST(TaskTest, TypedTasksDecodeTheirArgumentsAndEncodeTheResult) {
  EXPECT_EQ(*Call("Greet", w::Value::Array("ada", 2)), w::Value("hi ada;hi ada;"));
  EXPECT_EQ(*Call("AttemptTimes", w::Value::Array(5), /*attempt=*/2), w::Value(10));
  EXPECT_EQ(*Call("Nothing", w::Value::Array()), w::Value());
  EXPECT_EQ(*Call("Unwrap", w::Value::Array(21)), w::Value(42));  // no default constructor
}

TEST(TaskTest, TypedArgumentErrorsNameTheTaskAndTheArgument) {
  absl::StatusOr<w::Value> r = Call("Greet", w::Value::Array("ada", "two"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(r.status().message()).find("task 'Greet': argument 2 of 2"),
            std::string::npos)
      << r.status();
  r = Call("Greet", w::Value::Array("ada"));
  EXPECT_NE(std::string(r.status().message()).find("takes 2 argument(s); got 1"),
            std::string::npos)
      << r.status();
  r = Call("Greet", w::Value("ada"));
  EXPECT_NE(std::string(r.status().message()).find("as an array; got string"), std::string::npos)
      << r.status();
  // An int that does not fit the parameter type.
  r = Call("Greet", w::Value::Array("ada", int64_t{1} << 40));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
}

TEST(TaskTest, SubmitSideEncodingMatchesTheTask) {
  w::Value args = w::task_internal::EncodeArgs(&Greet, "bob", 1);
  EXPECT_EQ(args, w::Value::Array("bob", 1));
  EXPECT_EQ(*Call("Greet", std::move(args)), w::Value("hi bob;"));
  // The context parameter is not the caller's to supply.
  EXPECT_EQ(w::task_internal::EncodeArgs(&AttemptTimes, 3), w::Value::Array(3));
  EXPECT_EQ(*w::TaskRegistry::NameOf(reinterpret_cast<const void*>(&Greet)), "Greet");
  EXPECT_EQ(w::TaskRegistry::NameOf(reinterpret_cast<const void*>(&Ctx)).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(TaskTest, RegistryRefusesBadRegistrations) {
  auto fn = [](w::TaskContext&, w::Value v) -> absl::StatusOr<w::Value> { return v; };
  EXPECT_EQ(w::TaskRegistry::Register("", fn).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(w::TaskRegistry::Register("task_test_null", nullptr).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(w::TaskRegistry::Register("task_test_echo", fn).ok());
  const absl::Status again = w::TaskRegistry::Register("task_test_echo", fn);
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(std::string(again.message()).find("task 'task_test_echo' is already registered"),
            std::string::npos);
  const absl::Status missing = w::TaskRegistry::Find("task_test_missing").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(missing.message()).find("WHARF_TASK"), std::string::npos);
}

TEST(TaskTest, ADuplicateMacroRegistrationAbortsAtStartUpWithTheReason) {
  EXPECT_DEATH(w::TaskRegistry::RegisterOrDie("task_test_add_one",
                                              [](w::TaskContext&, w::Value v)
                                                  -> absl::StatusOr<w::Value> { return v; }),
               "WHARF_TASK: task 'task_test_add_one' is already registered");
}

}  // namespace

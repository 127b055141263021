#include "wharf/runtime/map_results.h"

#include <algorithm>
#include <utility>

#include "wharf/runtime/task.h"
#include "wharf/runtime/worker_pool.h"
#include "wharf/sync/internal/str_cat.h"

namespace wharf {
namespace {

using sync_internal::Cat;

constexpr char kChunkTask[] = "wharf.map_chunk";

// Runs one chunk where the pool runs tasks: arg [task, [inputs...]];
// returns one entry per input, [0, value] or the fields of its status
// (task_internal::AppendStatus), so that one input's failure is its own.
absl::StatusOr<Value> MapChunk(TaskContext& ctx, Value arg) {
  ValueArray* a = arg.GetArray();
  const std::string* task = a != nullptr && a->size() == 2 ? (*a)[0].GetString() : nullptr;
  ValueArray* inputs = task != nullptr ? (*a)[1].GetArray() : nullptr;
  if (inputs == nullptr) return absl::InvalidArgumentError("wharf.map_chunk: malformed chunk");
  absl::StatusOr<TaskFunction> fn = TaskRegistry::Find(*task);
  if (!fn.ok()) return fn.status();
  ValueArray out;
  out.reserve(inputs->size());
  for (Value& input : *inputs) {
    TaskContext element(*task, ctx.task_id(), ctx.attempt(), nullptr);
    absl::StatusOr<Value> r = ctx.StopRequested() ? absl::StatusOr<Value>(absl::CancelledError(
                                                        Cat("task '", *task, "' stopped")))
                                                  : CallTask(*fn, element, std::move(input));
    ValueArray entry;
    if (r.ok()) {
      entry.emplace_back(int64_t{0});
      entry.emplace_back(*std::move(r));
    } else {
      task_internal::AppendStatus(r.status(), entry);
    }
    out.emplace_back(std::move(entry));
  }
  return Value(std::move(out));
}

const bool kChunkRegistered = TaskRegistry::RegisterOrDie(kChunkTask, MapChunk);

}  // namespace

struct MapResults::Options {
  RunOptions run;
};

MapResults::MapResults(WorkerPool& pool, std::string task, std::vector<Value> inputs,
                       size_t chunk_size, const RunOptions& options)
    : pool_(&pool),
      task_(std::move(task)),
      inputs_(std::move(inputs)),
      chunk_size_(std::max<size_t>(chunk_size, 1)),
      window_(2 * static_cast<size_t>(std::max(pool.max_workers(), 1))),
      options_(std::make_unique<Options>(Options{options})),
      total_(inputs_.size()) {
  (void)kChunkRegistered;
  TopUp();
}

MapResults::MapResults(MapResults&&) noexcept = default;
MapResults& MapResults::operator=(MapResults&&) noexcept = default;

MapResults::~MapResults() {
  for (auto& [n, f] : in_flight_) (void)f.Cancel();  // not started: dropped at once
}

void MapResults::TopUp() {
  while (in_flight_.size() < window_ && next_input_ < inputs_.size()) {
    const size_t n = std::min(chunk_size_, inputs_.size() - next_input_);
    ValueArray chunk;
    chunk.reserve(n);
    for (size_t i = 0; i < n; ++i) chunk.push_back(std::move(inputs_[next_input_ + i]));
    next_input_ += n;
    // Waits for room rather than fail: the window bounds what Map queues,
    // but other submitters share the queue.
    in_flight_.emplace_back(
        n, pool_->RunNamed<Value>(kChunkTask, Value::Array(task_, Value(std::move(chunk))),
                                  options_->run,
                                  [](Value v) -> absl::StatusOr<Value> { return v; },
                                  /*wait=*/true));
  }
  if (next_input_ == inputs_.size()) inputs_.clear();
}

std::optional<absl::StatusOr<Value>> MapResults::Next() {
  if (ready_.empty()) {
    if (in_flight_.empty()) return std::nullopt;
    auto [n, future] = std::move(in_flight_.front());
    in_flight_.pop_front();
    TopUp();  // keep the workers busy while this chunk is read
    const absl::StatusOr<Value>& chunk = future.Get();
    const ValueArray* entries = chunk.ok() ? chunk->GetArray() : nullptr;
    if (chunk.ok() && (entries == nullptr || entries->size() != n)) {
      for (size_t i = 0; i < n; ++i) {
        ready_.push_back(absl::InternalError(Cat("Map: malformed chunk result for '", task_, "'")));
      }
    } else if (!chunk.ok()) {
      for (size_t i = 0; i < n; ++i) ready_.push_back(chunk.status());  // the chunk failed whole
    } else {
      for (const Value& e : *entries) {
        const ValueArray* f = e.GetArray();
        const int64_t* code = f != nullptr && !f->empty() ? (*f)[0].GetInt() : nullptr;
        if (code != nullptr && *code == 0 && f->size() == 2) {
          absl::StatusOr<Value> v = (*f)[1].Clone();
          ready_.push_back(std::move(v));
        } else if (f != nullptr) {
          ready_.push_back(task_internal::StatusFromFields(*f, 0, task_));
        } else {
          ready_.push_back(absl::InternalError(Cat("Map: malformed result for '", task_, "'")));
        }
      }
    }
  }
  absl::StatusOr<Value> r = std::move(ready_.front());
  ready_.pop_front();
  ++returned_;
  return r;
}

}  // namespace wharf

// MapResults: what WorkerPool::Map returns — Python's Executor.map: the
// results of one registered task over many inputs, in input order, read one
// by one while later ones still run.
//
//   std::vector<wharf::Value> inputs = ...;
//   wharf::MapResults results = pool->Map("parse_line", std::move(inputs), /*chunk_size=*/64);
//   while (std::optional<absl::StatusOr<wharf::Value>> r = results.Next()) {
//     if (!r->ok()) { ... that input's error ... }  // the others still come
//   }
//
// Inputs go to the pool `chunk_size` at a time (one pool task per chunk: for
// tiny tasks on a process pool, the per-task cost is shared by the chunk,
// as with Python's chunksize). Submission is lazy: about two chunks per
// worker are in flight; Next() tops the window up as it consumes, so a long
// input list never fills the pool's queue (no ResourceExhausted) and memory
// stays bounded (a full queue makes Map and Next wait for room, whatever the pool's
// FullPolicy). Unlike Python, an input's failure is that input's result,
// not the end of the iteration.
//
// Errors: each result holds its input's value or status (the task's
// exception as Run reports it; NotFound for an unknown task; the pool's own
// refusals, e.g. FailedPrecondition after Close, for inputs not yet sent).
// RunOptions apply to each chunk (a timeout covers a whole chunk).
// Thread-safety: one thread at a time calls Next(). Destroying MapResults
// cancels the chunks not yet started. The pool must outlive it.

#ifndef WHARF_RUNTIME_MAP_RESULTS_H_
#define WHARF_RUNTIME_MAP_RESULTS_H_

#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "wharf/runtime/future.h"
#include "wharf/runtime/value.h"

namespace wharf {

class WorkerPool;
struct RunOptions;

class MapResults {
 public:
  MapResults(MapResults&&) noexcept;
  MapResults& operator=(MapResults&&) noexcept;
  ~MapResults();

  // The next result, in input order; nullopt once all were returned. Blocks
  // until it is ready (an interruption point, as Future::Get).
  std::optional<absl::StatusOr<Value>> Next();
  // Inputs in all, and results not yet returned by Next.
  size_t size() const { return total_; }
  size_t remaining() const { return total_ - returned_; }

 private:
  friend class WorkerPool;
  struct Options;
  MapResults(WorkerPool& pool, std::string task, std::vector<Value> inputs, size_t chunk_size,
             const RunOptions& options);
  void TopUp();

  WorkerPool* pool_ = nullptr;
  std::string task_;
  std::vector<Value> inputs_;
  size_t next_input_ = 0;
  size_t chunk_size_ = 1;
  size_t window_ = 2;
  std::unique_ptr<Options> options_;
  std::deque<std::pair<size_t, Future<Value>>> in_flight_;  // (inputs in the chunk, its future)
  std::deque<absl::StatusOr<Value>> ready_;  // the current chunk's results
  size_t total_ = 0;
  size_t returned_ = 0;
};

}  // namespace wharf

#endif  // WHARF_RUNTIME_MAP_RESULTS_H_

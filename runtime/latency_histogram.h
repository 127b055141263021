// LatencyHistogram: durations recorded from any number of threads, read as
// count, sum, max and quantiles (p50/p90/p99) — a pool's run-time and
// wait-time statistics — and rendered as a Prometheus histogram.
//
//   wharf::LatencyHistogram run_time;
//   run_time.Record(absl::Microseconds(130));          // any thread, no lock
//   wharf::LatencyHistogram::Snapshot s = run_time.Read();
//   absl::Duration p99 = s.Quantile(0.99);
//
// Buckets are log-linear: 8 per power of two of nanoseconds, from 1 ns to
// ~292 years (int64 nanoseconds), so a quantile is within 1/8 (12.5 %) above the true value
// (the upper edge of the value's bucket, clamped to the recorded max); the
// max, count and sum are exact. Memory: a fixed ~16 KiB per histogram (its
// counters sharded 4 ways, each shard on its own cache lines) — no
// allocation after construction.
//
// Thread-safety: Record and Read may run concurrently from any threads.
// Record is a few relaxed atomic adds on one of the shards, chosen by the
// recording thread, so threads on different cores rarely share a line. Read
// sums the shards: a snapshot taken while others record may miss records in
// flight but never shows one twice, and its count equals its buckets' sum.
// Never blocks; never fails (negative durations count as 0, infinite ones in
// the top bucket).

#ifndef WHARF_RUNTIME_LATENCY_HISTOGRAM_H_
#define WHARF_RUNTIME_LATENCY_HISTOGRAM_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/time/time.h"

namespace wharf {

class LatencyHistogram {
 public:
  // 8 sub-buckets per octave; 64 octaves of nanoseconds.
  static constexpr int kSubBits = 3;
  static constexpr int kBuckets = (64 - kSubBits + 1) << kSubBits;

  struct Snapshot {
    uint64_t count = 0;
    absl::Duration sum = absl::ZeroDuration();
    absl::Duration max = absl::ZeroDuration();
    std::array<uint64_t, kBuckets> buckets{};  // counts per bucket (not cumulative)

    // The smallest bucket upper edge below which a fraction q (0..1) of the
    // records lie, clamped to max; zero when empty. q outside 0..1 clamps.
    absl::Duration Quantile(double q) const;
  };

  LatencyHistogram() = default;
  LatencyHistogram(const LatencyHistogram&) = delete;
  LatencyHistogram& operator=(const LatencyHistogram&) = delete;

  void Record(absl::Duration d);
  Snapshot Read() const;

  // Bucket arithmetic (exposed for tests and renderers): the bucket of `ns`
  // and the largest value (ns) a bucket holds.
  static int BucketOf(uint64_t ns);
  static uint64_t UpperEdge(int bucket);

 private:
  static constexpr int kShards = 4;
  struct alignas(64) Shard {
    std::array<std::atomic<uint64_t>, kBuckets> buckets{};
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> sum_ns{0};
    std::atomic<uint64_t> max_ns{0};
  };
  static int MyShard();
  // On the heap (one aligned allocation at construction): a histogram may
  // live anywhere — a stack frame under a sanitizer is not 64-byte aligned.
  std::unique_ptr<Shard[]> shards_ = std::make_unique<Shard[]>(kShards);
};

// Appends `snapshot` to `out` as a Prometheus histogram in the text
// exposition format (version 0.0.4): `# HELP`, `# TYPE name histogram`, the
// cumulative `name_bucket{labels,le="..."}` lines for the fixed boundaries
// `le_seconds` (ascending; +Inf is added), `name_sum` (seconds) and
// `name_count`. `labels` is either empty or a rendered label list without
// braces, e.g. `pool="hash"`. A boundary falling inside a bucket counts that
// bucket's records as below it only if the bucket's upper edge is.
void AppendPrometheusHistogram(std::string_view name, std::string_view help,
                               std::string_view labels, const LatencyHistogram::Snapshot& snapshot,
                               const double* le_seconds, size_t n_le, std::string* out);

// Escapes a label value for the exposition format (backslash, quote, newline).
std::string PrometheusLabelValue(std::string_view value);

}  // namespace wharf

#endif  // WHARF_RUNTIME_LATENCY_HISTOGRAM_H_

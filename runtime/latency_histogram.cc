#include "wharf/runtime/latency_histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace wharf {

// Bucket layout: values below 2^kSubBits (8 ns) have a bucket each; a value
// with its top bit at position e >= kSubBits falls in octave e, split into
// 2^kSubBits equal sub-buckets by the kSubBits bits below the top one.
int LatencyHistogram::BucketOf(uint64_t ns) {
  constexpr uint64_t kSub = uint64_t{1} << kSubBits;
  if (ns < kSub) return static_cast<int>(ns);
  const int e = 63 - std::countl_zero(ns);
  const int sub = static_cast<int>((ns >> (e - kSubBits)) & (kSub - 1));
  return ((e - kSubBits + 1) << kSubBits) + sub;
}

uint64_t LatencyHistogram::UpperEdge(int bucket) {
  constexpr int kSub = 1 << kSubBits;
  if (bucket < kSub) return static_cast<uint64_t>(bucket);
  const int e = (bucket >> kSubBits) + kSubBits - 1;
  const uint64_t sub = static_cast<uint64_t>(bucket & (kSub - 1));
  const uint64_t lower = (kSub + sub) << (e - kSubBits);
  return lower + ((uint64_t{1} << (e - kSubBits)) - 1);
}

int LatencyHistogram::MyShard() {
  static std::atomic<int> next{0};
  thread_local const int shard = next.fetch_add(1, std::memory_order_relaxed) % kShards;
  return shard;
}

void LatencyHistogram::Record(absl::Duration d) {
  uint64_t ns;
  if (d <= absl::ZeroDuration()) {
    ns = 0;
  } else if (d == absl::InfiniteDuration()) {
    ns = std::numeric_limits<uint64_t>::max();
  } else {
    ns = static_cast<uint64_t>(absl::ToInt64Nanoseconds(d));  // saturates
  }
  Shard& s = shards_[MyShard()];
  s.buckets[BucketOf(ns)].fetch_add(1, std::memory_order_relaxed);
  s.sum_ns.fetch_add(ns, std::memory_order_relaxed);
  uint64_t seen = s.max_ns.load(std::memory_order_relaxed);
  while (ns > seen && !s.max_ns.compare_exchange_weak(seen, ns, std::memory_order_relaxed)) {
  }
}

LatencyHistogram::Snapshot LatencyHistogram::Read() const {
  Snapshot out;
  uint64_t sum_ns = 0, max_ns = 0;
  for (int i = 0; i < kShards; ++i) {
    const Shard& s = shards_[i];
    for (int b = 0; b < kBuckets; ++b) {
      const uint64_t n = s.buckets[b].load(std::memory_order_relaxed);
      out.buckets[b] += n;
      out.count += n;  // the buckets' sum, so the two always agree
    }
    sum_ns += s.sum_ns.load(std::memory_order_relaxed);
    max_ns = std::max(max_ns, s.max_ns.load(std::memory_order_relaxed));
  }
  out.sum = absl::Nanoseconds(static_cast<double>(sum_ns));
  // A record in flight may have its bucket counted but not its max yet: the
  // max is at least the top non-empty bucket's lower edge then; keep the
  // recorded one (exact once the record finishes).
  out.max = max_ns == std::numeric_limits<uint64_t>::max()
                ? absl::InfiniteDuration()
                : absl::Nanoseconds(static_cast<int64_t>(std::min<uint64_t>(
                      max_ns, static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))));
  return out;
}

absl::Duration LatencyHistogram::Snapshot::Quantile(double q) const {
  if (count == 0) return absl::ZeroDuration();
  if (!(q > 0)) q = 0;  // NaN too
  if (q > 1) q = 1;
  const uint64_t rank =
      std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(q * static_cast<double>(count))));
  uint64_t seen = 0;
  for (int b = 0; b < kBuckets; ++b) {
    seen += buckets[b];
    if (seen >= rank) {
      const uint64_t edge = UpperEdge(b);
      if (edge >= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return max;
      return std::min(absl::Nanoseconds(static_cast<int64_t>(edge)), max);
    }
  }
  return max;
}

std::string PrometheusLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void AppendPrometheusHistogram(std::string_view name_in, std::string_view help_in,
                               std::string_view labels_in,
                               const LatencyHistogram::Snapshot& snapshot,
                               const double* le_seconds, size_t n_le, std::string* out) {
  // Debian's Abseil has its own string_view (AlphaNum takes no std:: one).
  const absl::string_view name(name_in.data(), name_in.size());
  const absl::string_view help(help_in.data(), help_in.size());
  const absl::string_view labels(labels_in.data(), labels_in.size());
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " histogram\n");
  const std::string sep = labels.empty() ? "" : absl::StrCat(labels, ",");
  int b = 0;
  uint64_t cumulative = 0;
  for (size_t i = 0; i < n_le; ++i) {
    const double le_ns = le_seconds[i] * 1e9;
    while (b < LatencyHistogram::kBuckets &&
           static_cast<double>(LatencyHistogram::UpperEdge(b)) <= le_ns) {
      cumulative += snapshot.buckets[b++];
    }
    absl::StrAppend(out, name, "_bucket{", sep, "le=\"", absl::StrFormat("%g", le_seconds[i]),
                    "\"} ", cumulative, "\n");
  }
  absl::StrAppend(out, name, "_bucket{", sep, "le=\"+Inf\"} ", snapshot.count, "\n");
  const std::string braces = labels.empty() ? "" : absl::StrCat("{", labels, "}");
  absl::StrAppend(out, name, "_sum", braces, " ",
                  absl::StrFormat("%.9g", absl::ToDoubleSeconds(snapshot.sum)), "\n");
  absl::StrAppend(out, name, "_count", braces, " ", snapshot.count, "\n");
}

}  // namespace wharf

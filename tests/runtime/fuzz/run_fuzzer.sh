#!/usr/bin/env bash
# Coverage-guided fuzzing with libFuzzer of the Value decoder (codec_fuzzer.cc,
# TARGET codec, the default) or of the shared-memory ring's reader fed by a
# hostile peer (shm_ring_fuzzer.cc, TARGET shm_ring).
#
#   tests/runtime/fuzz/run_fuzzer.sh SECONDS [WORK_DIR [TARGET]]
#
# Compiles the decoder and the fuzz target with clang++ -fsanitize=fuzzer,
# address,undefined against the system Abseil (Bazel 4 has no fuzzing rules,
# and its autoconfigured toolchain is gcc), then fuzzes for SECONDS, starting
# from the committed seed corpus. Exit status: 0 if no finding, non-zero on a
# crash, sanitizer report, leak, timeout or out-of-memory; the reproducer is
# WORK_DIR/crash-* (or leak-/timeout-/oom-). New interesting inputs land in
# WORK_DIR/corpus (the committed corpus, fuzz/corpus or fuzz/ring_corpus, is
# never written). WORK_DIR defaults
# to a fresh directory under ${TMPDIR:-/tmp}, printed at the start.
#
# Needs clang++ (14 or later) with its runtime libraries and libabsl-dev:
#   apt-get install clang-14 libclang-rt-14-dev libabsl-dev
# Reproduce a finding:  WORK_DIR/TARGET_fuzzer WORK_DIR/crash-...

set -euo pipefail

if [[ $# -lt 1 || ! "$1" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 SECONDS [WORK_DIR [codec|shm_ring]]" >&2
  exit 2
fi
seconds=$1
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
target=${3:-codec}
case "$target" in
  codec) seeds=corpus ;;
  shm_ring) seeds=ring_corpus ;;
  *) echo "error: unknown target '$target' (codec or shm_ring)" >&2; exit 2 ;;
esac
work=${2:-$(mktemp -d "${TMPDIR:-/tmp}/wharf-$target-fuzz.XXXXXX")}
mkdir -p "$work/corpus" "$work/include/wharf"
echo "$target fuzzer: work dir $work" >&2

CXX=${CXX_FUZZ:-}
if [[ -z "$CXX" ]]; then
  for c in clang++ clang++-14 clang++-15 clang++-16; do
    if command -v "$c" >/dev/null; then CXX=$c; break; fi
  done
fi
if [[ -z "$CXX" ]]; then
  echo "error: clang++ not found; install it: apt-get install clang-14 libclang-rt-14-dev" >&2
  exit 3
fi
fuzzer_rt=$("$CXX" -print-file-name=libclang_rt.fuzzer-x86_64.a)
if [[ ! -f "$fuzzer_rt" ]]; then
  echo "error: $CXX has no libFuzzer runtime ($fuzzer_rt);" \
       "install it: apt-get install libclang-rt-14-dev (matching your clang version)" >&2
  exit 3
fi
if [[ ! -f /usr/include/absl/status/status.h ]]; then
  echo "error: Abseil headers not found; install them: apt-get install libabsl-dev" >&2
  exit 3
fi

# Headers are included as "wharf/<layer>/...": map the prefixes as Bazel does.
ln -sfn "$repo/runtime" "$work/include/wharf/runtime"
ln -sfn "$repo/sync" "$work/include/wharf/sync"

# The decoder and what it links from sync/ (SharedBuffer and its locks).
sources=(
  "$repo/tests/runtime/fuzz/${target}_fuzzer.cc"
  "$repo/runtime/internal/shm_ring.cc"
  "$repo/runtime/buffer.cc"
  "$repo/runtime/value.cc"
  "$repo/runtime/codec.cc"
  "$repo/runtime/internal/utf8.cc"
  "$repo/sync/shared_buffer.cc"
  "$repo/sync/mutex.cc"
  "$repo/sync/futex.cc"
  "$repo/sync/interrupt.cc"
)
for extra in "$repo"/sync/internal/*.cc; do
  [[ -f "$extra" ]] && sources+=("$extra")
done
absl_libs=(status statusor cord cord_internal cordz_info cordz_functions cordz_handle
           strerror strings strings_internal str_format_internal int128 throw_delegate
           raw_logging_internal time time_zone civil_time bad_variant_access
           bad_optional_access base spinlock_wait)

echo "$target fuzzer: compiling with $CXX" >&2
"$CXX" -std=c++20 -O1 -g -fno-omit-frame-pointer \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$repo" -I"$work/include" "${sources[@]}" \
  "${absl_libs[@]/#/-labsl_}" -lpthread -lrt \
  -o "$work/${target}_fuzzer"

echo "$target fuzzer: fuzzing for ${seconds}s" >&2
cd "$work"
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# -malloc_limit_mb: any single allocation above 64 MiB from inputs of at most
# 4 KiB is over-allocation, reported as a finding.
exec "./${target}_fuzzer" -max_total_time="$seconds" -max_len=4200 -timeout=10 \
  -rss_limit_mb=2048 -malloc_limit_mb=64 -print_final_stats=1 \
  -artifact_prefix="$work/" "$work/corpus" "$repo/tests/runtime/fuzz/$seeds"

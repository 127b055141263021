#!/usr/bin/env bash
# Runs the csv_pool example on small files and checks its report and verdict,
# that its temporary directory is gone afterwards, and its answers to bad
# flags. Every run is bounded by `timeout` (hang detection only).
set -euo pipefail
bin="$1"
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
export TEST_TMPDIR="$tmp"

fail() { echo "FAIL: $*" >&2; exit 1; }

# 1. Runs: exit 0, a line per mode, every chunk in shared memory, the verdict.
run() {
  local mb="$1" out rc=0
  shift
  out="$(timeout 300 "$bin" --mb="$mb" "$@")" || rc=$?
  echo "$out"
  [[ $rc == 0 ]] || fail "'--mb=$mb $*' exited $rc, want 0"
  expect() { grep -qE -- "$1" <<<"$out" || fail "'--mb=$mb $*': no line matching: $1"; }
  expect "^csv_pool: $mb\.0 MB of CSV, [0-9]+ rows, in $tmp/csv_pool\.[A-Za-z0-9]+/sales\.csv "
  expect "^  [0-9]+ cores available \([0-9]+ online\); [0-9]+ worker process(es)?; chunks of [0-9]+ MB$"
  expect "^  serial      : $mb\.0 MB in [0-9.]+ s, +[0-9]+ MB/s$"
  expect "^  process pool: $mb\.0 MB in [0-9.]+ s, +[0-9]+ MB/s, [0-9.]+x serial$"
  expect "^  ([0-9]+) chunks?, \\1 of them seen by their worker in shared memory; chunks per worker process: "
  expect "^  Amsterdam +[0-9]+ +[0-9]+ +[0-9]+\.[0-9][0-9]$"
  [[ $(grep -cE "^  [A-Z][a-z]+ +[0-9]+ +[0-9]+ +[0-9]+\.[0-9][0-9]$" <<<"$out") == 12 ]] ||
    fail "want 12 cities in the table"
  expect "^OK: the pool's totals equal the serial parse's and the generator's \([0-9]+ rows, 12 cities, no bad lines\)$"
  ! ls -d "$tmp"/csv_pool.* 2>/dev/null || fail "the temporary directory was left behind"
}
run 8 --chunk_mb=1 --workers=2
run 3 --chunk_mb=4 --workers=1

# 2. Bad flags: exit 2 with a message naming the problem; --help: exit 0.
bad() {
  local want="$1" rc=0 err
  shift
  err="$(timeout 30 "$bin" "$@" 2>&1 >/dev/null)" || rc=$?
  [[ $rc == 2 ]] || fail "'$*' exited $rc, want 2 ($err)"
  grep -qF -- "$want" <<<"$err" || fail "'$*' said '$err', want '$want'"
  echo "bad flags '$*': $err"
}
bad "unknown flag '--rows=5'" --rows=5
bad "--mb=0: want a whole number from 1 to" --mb=0
bad "--chunk_mb=2000: want a whole number from 1 to 1024" --chunk_mb=2000
bad "--workers=x: want a whole number" --workers=x
bad "--mb needs a value" --mb
help="$(timeout 30 "$bin" --help)" || fail "--help did not exit 0"
grep -q "^usage: csv_pool" <<<"$help" || fail "--help printed no usage"
echo "csv_pool_test: OK"

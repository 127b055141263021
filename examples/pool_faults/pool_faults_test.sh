#!/usr/bin/env bash
# Runs the pool_faults example and checks that each fault was reported as the
# pool reports it, that the other tasks were right (the verdict), and its
# answers to bad flags. Every run is bounded by `timeout` (hang detection
# only).
set -euo pipefail
bin="$1"

fail() { echo "FAIL: $*" >&2; exit 1; }

# 1. A run: exit 0, the report's key lines, the verdict.
run() {
  local out rc=0
  out="$(timeout 120 "$bin" "$@")" || rc=$?
  echo "$out"
  [[ $rc == 0 ]] || fail "'$*' exited $rc, want 0"
  expect() { grep -qE -- "$1" <<<"$out" || fail "'$*': no line matching: $1"; }
  expect "^pool_faults: [0-9]+ normal tasks and 12 faulty ones on [0-9]+ process workers?$"
  expect "^  running    : Cancel\(\) of a task a worker has: false "
  [[ $(grep -c "^  cancelled  : Cancel() while queued: true; CANCELLED: cancelled before it started$" <<<"$out") == 3 ]] ||
    fail "want 3 tasks cancelled while queued"
  [[ $(grep -c "^  throws     : UNKNOWN: task 'CollatzSteps' failed: std::invalid_argument: CollatzSteps(-\?[0-9]*): n must be >= 1$" <<<"$out") == 3 ]] ||
    fail "want 3 tasks failed by their exception"
  [[ $(grep -cF "  crashes    : ABORTED: task 'segfault' failed: its worker process died while running it (worker killed by signal 11 (SIGSEGV))" <<<"$out") == 2 ]] ||
    fail "want 2 tasks failed by their worker's crash"
  [[ $(grep -c "^  idempotent : crash_once([0-9]*) crashed its worker, ran again: attempt 2 returned [0-9]*$" <<<"$out") == 2 ]] ||
    fail "want 2 idempotent tasks that ran again"
  expect "^  normal     : ([0-9]+) of \1 returned the right value$"
  expect "^  cooperative: DEADLINE_EXCEEDED: task 'cooperative' exceeded its timeout, after [0-9.]+ s; it saw StopRequested\(\) and returned: its worker was kept$"
  expect "^  deaf       : DEADLINE_EXCEEDED: task 'deaf' exceeded its timeout, after [0-9.]+ s; it ignored StopRequested\(\): its worker was killed [0-9.]+ s later and replaced$"
  expect "^  after      : [0-9]+ more tasks? returned the right value$"
  expect "^pool stats: [0-9]+ workers?, 0 busy, 0 queued; [0-9]+ completed, 5 failed, 5 cancelled, 1 abandoned; "
  expect "^OK: every fault cost only its own task"
}
run --tasks=60 --workers=2
run --tasks=20 --workers=1

# 2. Bad flags: exit 2 with a message naming the problem; --help: exit 0.
bad() {
  local want="$1" rc=0 err
  shift
  err="$(timeout 30 "$bin" "$@" 2>&1 >/dev/null)" || rc=$?
  [[ $rc == 2 ]] || fail "'$*' exited $rc, want 2 ($err)"
  grep -qF -- "$want" <<<"$err" || fail "'$*' said '$err', want '$want'"
  echo "bad flags '$*': $err"
}
bad "unknown flag '--bogus'" --bogus
bad "unknown flag 'extra'" extra
bad "--tasks=0: want a whole number from 1 to" --tasks=0
bad "--tasks=abc: want a whole number" --tasks=abc
bad "--workers=9x: want a whole number" --workers=9x
bad "--workers needs a value" --workers
help="$(timeout 30 "$bin" --help)" || fail "--help did not exit 0"
grep -q "^usage: pool_faults" <<<"$help" || fail "--help printed no usage"
echo "pool_faults_test: OK"

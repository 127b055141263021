#!/usr/bin/env bash
# Runs the hash_pool example with small numbers and checks its report and
# verdict, its answers to bad flags, and its metrics endpoint while it serves
# them. Every run is bounded by `timeout` (hang detection only).
set -euo pipefail
bin="$1"
small=(--count=40 --cost=16 --workers=2)

fail() { echo "FAIL: $*" >&2; exit 1; }

# 1. A small run: a line per mode, every hash checked, exit 0.
out="$(timeout 120 "$bin" "${small[@]}")"
echo "$out"
grep -q "^  serial      : 40 hashes in .* hashes/s$" <<<"$out" || fail "no serial line"
grep -q "^  thread pool : 40 hashes in .* hashes/s, .*x serial$" <<<"$out" || fail "no thread pool line"
grep -q "^  process pool: 40 hashes in .* hashes/s, .*x serial$" <<<"$out" ||
  fail "no process pool line"
grep -q "^OK: every pool's hashes equal the serial ones$" <<<"$out" || fail "no OK line"

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
bad "unknown flag '7'" 7
bad "--count=abc: want a whole number from 1 to" --count=abc
bad "--count=0: want a whole number from 1 to" --count=0
bad "--count=12x: want a whole number" --count=12x
bad "--workers needs a value" --workers
bad "--cost=100: scrypt's N must be a power of two" --cost=100
bad "--metrics_port=70000: want a whole number from 0 to 65535" --metrics_port=70000
bad "--linger_ms needs --metrics_port" --linger_ms=10
help="$(timeout 30 "$bin" --help)" || fail "--help did not exit 0"
grep -q "^usage: hash_pool" <<<"$help" || fail "--help printed no usage"

# 3. Metrics: serve on a free port, linger after the work, scrape once the
#    work is done; the thread pool's counters are exact then.
log="${TEST_TMPDIR:-/tmp}/hash_pool_metrics.log"
timeout 120 "$bin" "${small[@]}" --metrics_port=0 --linger_ms=100000 >"$log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  grep -q "^metrics: serving for another" "$log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; fail "hash_pool --metrics_port exited early"; }
  sleep 0.1
done
cat "$log"
grep -q "^metrics: serving for another" "$log" || fail "hash_pool never finished its work"
port="$(sed -n 's|^metrics: http://127.0.0.1:\([0-9]*\)/metrics$|\1|p' "$log")"
[[ -n "$port" ]] || fail "no metrics address printed"
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
scrape="$(timeout 30 cat <&3 | tr -d '\r')"
exec 3<&-
echo "$scrape" | grep '^wharf_pool_'
expect() { grep -qxF -- "$1" <<<"$scrape" || fail "scrape lacks '$1'"; }
expect "HTTP/1.1 200 OK"
expect 'wharf_pool_tasks_completed_total{pool="hash_threads"} 40'
expect 'wharf_pool_tasks_failed_total{pool="hash_threads"} 0'
expect 'wharf_pool_task_run_seconds_count{pool="hash_threads"} 40'
expect 'wharf_pool_task_wait_seconds_count{pool="hash_threads"} 40'
expect 'wharf_pool_queued_tasks{pool="hash_threads"} 0'
expect 'wharf_pool_tasks_completed_total{pool="hash_processes"} 40'
echo "metrics: OK"

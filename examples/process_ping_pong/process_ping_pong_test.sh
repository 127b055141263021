#!/usr/bin/env bash
# Runs the process_ping_pong example with small numbers, as a process and as a
# thread, and checks both verdicts.
set -euo pipefail
out="$("$1" 2000)"
echo "$out"
grep -q "^OK:" <<<"$out"
out="$("$1" --thread 2000)"
echo "$out"
grep -q "^OK:" <<<"$out"

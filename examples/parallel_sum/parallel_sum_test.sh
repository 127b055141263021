#!/usr/bin/env bash
# Runs the parallel_sum example with small numbers and checks its verdict.
set -euo pipefail
out="$("$1" 100000 3)"
echo "$out"
grep -q "^OK:" <<<"$out"

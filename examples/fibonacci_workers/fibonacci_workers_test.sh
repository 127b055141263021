#!/usr/bin/env bash
# Runs the fibonacci_workers example with small numbers and checks its verdict.
set -euo pipefail
out="$("$1" 25 28)"
echo "$out"
grep -q "^OK:" <<<"$out"

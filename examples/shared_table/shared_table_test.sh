#!/usr/bin/env bash
# Runs the shared_table example with small numbers and checks its verdict.
set -euo pipefail
out="$("$1" 3 2000)"
echo "$out"
grep -q "^OK:" <<<"$out"

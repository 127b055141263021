#!/usr/bin/env bash
# Runs the ping_pong example with small numbers and checks its verdict.
set -euo pipefail
out="$("$1" 2000)"
echo "$out"
grep -q "^OK:" <<<"$out"

#!/usr/bin/env bash
# Runs the transfer_buffer example with small numbers and checks its verdict.
set -euo pipefail
out="$("$1" 1)"
echo "$out"
grep -q "^OK:" <<<"$out"

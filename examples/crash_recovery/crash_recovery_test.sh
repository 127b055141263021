#!/usr/bin/env bash
# Runs the crash_recovery example and checks its verdict.
set -euo pipefail
out="$("$1")"
echo "$out"
grep -q "^OK:" <<<"$out"

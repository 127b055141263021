#!/usr/bin/env bash
set -euo pipefail
"$1" | tee /dev/stderr | grep -q "count=20000"

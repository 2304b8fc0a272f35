#!/usr/bin/env bash
# 64 simulated hosts x 1,000 domains, in one process over the fake bus with the real engine and codec.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build --target bench_scale >/dev/null
"${VG_BUILD:-build}/bin/bench_scale" "${1:-64}" "${2:-1000}"

#!/usr/bin/env bash
# Runs one fuzz target for SECONDS (default 210) with the memory limits that turn an absurd
# allocation into a finding. From fuzz/: ./run_target.sh <target> [seconds]
set -euo pipefail
target=$1
secs=${2:-210}
mkdir -p "corpus/$target" "artifacts/$target" logs
RUSTC_BOOTSTRAP=1 nice -n 10 cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- \
  -jobs=1 -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
  -print_final_stats=1

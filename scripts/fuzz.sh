#!/usr/bin/env bash
# Opt-in fuzzing (not part of `npm test`): runs each cargo-fuzz target for a
# bounded time and prints executions and executions per second.
#   scripts/fuzz.sh [seconds-per-target]   (default 60)
# The targets live in tests/fuzz: `webhook` (verification + parsing of any
# header and body) and `rules` (the attendance rules on arbitrary input,
# asserting their invariants). cargo-fuzz needs nightly features; the
# stable toolchain provides them with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked || cargo install cargo-fuzz
export RUSTC_BOOTSTRAP=1
for target in webhook rules; do
  log=$(mktemp)
  cargo fuzz run --fuzz-dir tests/fuzz "$target" -- -max_total_time="$SECONDS_PER_TARGET" 2>&1 | tee "$log" | grep -E "^(INFO: |#[0-9]+.*DONE|Done|==)" || true
  runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 \2/p' "$log")
  if [ -z "$runs" ]; then
    echo "fuzz: $target did not finish cleanly; see the crash above (artifacts in tests/fuzz/artifacts/$target)"
    exit 1
  fi
  set -- $runs
  echo "fuzz: $target: $1 executions in $2 s ($(( $1 / ($2 > 0 ? $2 : 1) )) per second), no crash"
  rm -f "$log"
done

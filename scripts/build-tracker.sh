#!/usr/bin/env bash
# Builds the browser tracker (crates/attendance-tracker) into www/pkg/:
# wasm (size-optimised profile) + the ES-module glue from wasm-bindgen, then
# shrinks it with wasm-opt when binaryen is installed. Also copies
# livekit-client's ES module into www/vendor/ when node_modules has it.
set -euo pipefail
cd "$(dirname "$0")/.."

# A separate target dir keeps wasm builds from waiting on native ones.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/wasm}"
OUT=www/pkg
WASM="$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-release/attendance_tracker.wasm"

cargo build --profile wasm-release --target wasm32-unknown-unknown -p attendance-tracker
rm -rf "$OUT"
wasm-bindgen --target web --no-typescript --out-dir "$OUT" --out-name attendance_tracker "$WASM"

if command -v wasm-opt >/dev/null 2>&1; then
  # Features the Rust toolchain emits by default must stay enabled.
  wasm-opt -Oz --converge --enable-bulk-memory --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-mutable-globals --enable-multivalue \
    --enable-reference-types \
    "$OUT/attendance_tracker_bg.wasm" -o "$OUT/attendance_tracker_bg.wasm.opt"
  mv "$OUT/attendance_tracker_bg.wasm.opt" "$OUT/attendance_tracker_bg.wasm"
else
  echo "build-tracker: wasm-opt not found; skipping (install binaryen for a smaller build)"
fi

LIVEKIT_ESM=node_modules/livekit-client/dist/livekit-client.esm.mjs
if [ -f "$LIVEKIT_ESM" ]; then
  mkdir -p www/vendor
  cp "$LIVEKIT_ESM" www/vendor/livekit-client.esm.mjs
fi

wasm_gz=$(gzip -9c "$OUT/attendance_tracker_bg.wasm" | wc -c)
js_gz=$(gzip -9c "$OUT/attendance_tracker.js" | wc -c)
echo "build-tracker: $OUT/attendance_tracker_bg.wasm $(wc -c <"$OUT/attendance_tracker_bg.wasm") B ($wasm_gz B gzip)," \
  "attendance_tracker.js $(wc -c <"$OUT/attendance_tracker.js") B ($js_gz B gzip);" \
  "total $((wasm_gz + js_gz)) B gzip"

#!/usr/bin/env bash
# Builds the browser tracker (crates/attendance-tracker) into www/pkg/:
# wasm (size-optimised profile) + the ES-module glue from wasm-bindgen, then
# shrinks it with wasm-opt when binaryen is installed and minifies the JS with
# esbuild when the npm packages are installed. Also copies
# livekit-client's ES module into www/vendor/ when node_modules has it.
#
# www/pkg and www/vendor are committed: the server binary embeds www/, so
# `cargo install` and `cargo build` need no wasm toolchain and no browser.
# www/pkg/SOURCES records a hash of what the bundle was built from;
# `scripts/build-tracker.sh --check` (run by `npm test`) fails when the
# committed bundle is older than its sources.
set -euo pipefail
cd "$(dirname "$0")/.."

sources_hash() {
  { git ls-files -co --exclude-standard -- crates/attendance-rules crates/attendance-tracker 2>/dev/null \
      || find crates/attendance-rules crates/attendance-tracker -type f -not -path '*/target/*'; } \
    | grep -v '/tests/' | LC_ALL=C sort | while read -r f; do [ -f "$f" ] && sha256sum "$f"; done
  sha256sum Cargo.toml scripts/build-tracker.sh
} 2>/dev/null

LIVEKIT_ESM=node_modules/livekit-client/dist/livekit-client.esm.mjs

if [ "${1:-}" = "--check" ]; then
  want=$(sources_hash | sha256sum | cut -d' ' -f1)
  have=$(cat www/pkg/SOURCES 2>/dev/null || true)
  if [ "$want" != "$have" ]; then
    echo "build-tracker: www/pkg is older than the tracker's sources:" >&2
    echo "  run scripts/build-tracker.sh and commit www/pkg" >&2
    exit 1
  fi
  if [ -f "$LIVEKIT_ESM" ] && ! cmp -s "$LIVEKIT_ESM" www/vendor/livekit-client.esm.mjs; then
    echo "build-tracker: www/vendor/livekit-client.esm.mjs differs from node_modules:" >&2
    echo "  run scripts/build-tracker.sh and commit www/vendor" >&2
    exit 1
  fi
  echo "build-tracker: www/pkg and www/vendor are current"
  exit 0
fi

# A separate target dir keeps wasm builds from waiting on native ones.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/wasm}"
OUT=www/pkg
WASM="$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-release/attendance_tracker.wasm"

# Keep rustc's target_features section (the profile strips everything): it
# tells wasm-bindgen which Wasm features it may use. wasm-opt strips the rest.
export CARGO_PROFILE_WASM_RELEASE_STRIP=debuginfo
cargo build --profile wasm-release --target wasm32-unknown-unknown -p attendance-tracker
rm -rf "$OUT"
mkdir -p "$OUT"

# wasm-opt runs on rustc's output, before wasm-bindgen: older binaryen
# releases (Debian's 108) break the externref table wasm-bindgen adds.
INPUT="$WASM"
if command -v wasm-opt >/dev/null 2>&1; then
  INPUT="$CARGO_TARGET_DIR/attendance_tracker.opt.wasm"
  wasm-opt -Oz --converge --strip-debug --strip-producers --enable-bulk-memory --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-mutable-globals --enable-multivalue \
    --enable-reference-types "$WASM" -o "$INPUT"
else
  echo "build-tracker: wasm-opt not found; skipping (install binaryen for a smaller build)"
fi
wasm-bindgen --target web --no-typescript --remove-name-section --remove-producers-section --out-dir "$OUT" --out-name attendance_tracker "$INPUT"

# esbuild (an npm dev dependency) minifies the glue and its snippets file by
# file: the same ES modules, without the doc comments and long names. The
# API is documented in the crate and the README.
ESBUILD=node_modules/.bin/esbuild
if [ -x "$ESBUILD" ]; then
  while IFS= read -r -d '' js; do
    "$ESBUILD" "$js" --minify --format=esm --target=es2022 --log-level=warning --allow-overwrite --outfile="$js"
  done < <(find "$OUT" -type f -name '*.js' -print0)
else
  echo "build-tracker: esbuild not found (npm ci); the glue is left unminified"
fi

echo '{"type":"module"}' >"$OUT/package.json"
sources_hash | sha256sum | cut -d' ' -f1 >"$OUT/SOURCES"

# Smoke test: the module instantiates and computes (catches a broken build
# before a browser does).
if command -v node >/dev/null 2>&1; then
  node --input-type=module -e "
    import { readFileSync } from 'node:fs';
    const m = await import('$PWD/$OUT/attendance_tracker.js');
    m.initSync({ module: readFileSync('$OUT/attendance_tracker_bg.wasm') });
    const a = m.computeAttendance(
      { scheduled_at: '2026-11-25T11:00:00Z', duration_minutes: 60, grace_minutes: 30 },
      { cycles: [{ joined_at: '2026-11-25T10:45:00Z', left_at: '2026-11-25T11:15:00Z' }] },
      Date.parse('2026-11-25T13:00:00Z'));
    if (a.attended_seconds !== 900 || a.status !== 'partial' || a.phase !== 'ended') {
      console.error('build-tracker: smoke test failed', a); process.exit(1);
    }
  "
fi

if [ -f "$LIVEKIT_ESM" ]; then
  mkdir -p www/vendor
  cp "$LIVEKIT_ESM" www/vendor/livekit-client.esm.mjs
fi

wasm_gz=$(gzip -9c "$OUT/attendance_tracker_bg.wasm" | wc -c)
js_gz=$(gzip -9c "$OUT/attendance_tracker.js" | wc -c)
# The JS snippets wasm-bindgen writes beside the glue ship with it: counted too.
snippets_gz=0
while IFS= read -r -d '' snippet; do
  snippets_gz=$((snippets_gz + $(gzip -9c "$snippet" | wc -c)))
done < <(find "$OUT/snippets" -type f -name '*.js' -print0 2>/dev/null)
echo "build-tracker: $OUT/attendance_tracker_bg.wasm $(wc -c <"$OUT/attendance_tracker_bg.wasm") B ($wasm_gz B gzip)," \
  "attendance_tracker.js $(wc -c <"$OUT/attendance_tracker.js") B ($js_gz B gzip)," \
  "snippets $snippets_gz B gzip; total $((wasm_gz + js_gz + snippets_gz)) B gzip"

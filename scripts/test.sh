#!/usr/bin/env bash
# `npm test`: every test of the project, from a fresh machine.
#  1. installs what is missing (wasm target, wasm-bindgen-cli, Chromium, npm packages)
#  2. native tests: rules (golden vectors, properties) and the server
#     (integration tests on SQLite and on the PostgreSQL at 127.0.0.1:5432)
#  3. the rules crate built for wasm32, and the golden vectors run in Chromium
#  4. browser end-to-end tests (playwright-core driving Debian's chromium)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "setup"
scripts/setup.sh --browser

step "PostgreSQL"
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  # The machine's cluster; started the way the machine starts it.
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
fi
pg_isready -h 127.0.0.1 -p 5432

step "the committed tracker bundle is current (the server embeds it)"
scripts/build-tracker.sh --check

step "native tests (rules, server on SQLite and PostgreSQL)"
cargo test --workspace --exclude attendance-tracker

step "rules crate for wasm32"
cargo build -p attendance-rules --target wasm32-unknown-unknown

step "tracker build and wasm tests in Chromium"
scripts/build-tracker.sh
CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver} \
  CARGO_TARGET_DIR="$PWD/target/wasm" \
  cargo test -p attendance-tracker --target wasm32-unknown-unknown

step "browser end-to-end tests"
cargo build -p attendance-server
node --test --test-concurrency=1 tests/*.test.mjs

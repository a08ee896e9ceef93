#!/usr/bin/env bash
# Installs what building and testing need, idempotently: each step is skipped
# when its tool is already there. Usage: scripts/setup.sh [--browser]
# (--browser: also Chromium and the npm packages, which the browser tests and
# the outbound webhook tests' receiver use)
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_BINDGEN_VERSION=$(sed -n 's/^wasm-bindgen = "=\(.*\)"$/\1/p' Cargo.toml)

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  echo "setup: adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  echo "setup: installing wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "setup: installing ${missing[*]} from Debian's packages"
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
}

# binaryen's wasm-opt shrinks the tracker; the build works without it.
apt_install binaryen || echo "setup: binaryen unavailable; the tracker is built without wasm-opt"

if [ "${1:-}" = "--browser" ]; then
  apt_install chromium chromium-driver
  # Every dev dependency (playwright-core, axe-core, standardwebhooks, …) must be
  # there; a package added since the last install triggers a fresh one.
  missing_npm=$(node -e '
    const fs = require("fs");
    const deps = Object.keys(require("./package.json").devDependencies || {});
    console.log(deps.filter((d) => !fs.existsSync(`node_modules/${d}/package.json`)).join(" "));
  ')
  if [ -n "$missing_npm" ]; then
    echo "setup: installing npm packages (playwright-core drives Debian's chromium; no browser download)"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
  fi
fi

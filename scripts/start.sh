#!/usr/bin/env bash
# `npm start`: builds the tracker and runs the service on embedded SQLite,
# serving the pages, in demo mode unless told otherwise.
#
# Without LiveKit keys in the environment it uses livekit-server --dev's
# well-known pair (devkey / secret), which is only fit for trying it out.
set -euo pipefail
cd "$(dirname "$0")/.."

# The built tracker is committed (and embedded in the binary): rebuild it
# only when its sources changed.
if ! scripts/build-tracker.sh --check >/dev/null 2>&1; then
  scripts/setup.sh
  if [ -d node_modules/livekit-client ] || npm ci --no-audit --no-fund --ignore-scripts >/dev/null 2>&1; then :; fi
  scripts/build-tracker.sh
fi

if [ -z "${LIVEKIT_KEYS:-}" ] && [ -z "${LIVEKIT_API_KEY:-}" ]; then
  echo "start: no LiveKit keys set; using the development pair devkey/secret"
  export LIVEKIT_API_KEY=devkey LIVEKIT_API_SECRET=secret
fi
export ATTENDANCE_DEMO="${ATTENDANCE_DEMO:-true}"
# The demo keeps its own database: demo mode refuses one with real classes.
if [ "$ATTENDANCE_DEMO" = "true" ]; then
  export DATABASE_URL="${DATABASE_URL:-sqlite://demo.db}"
fi
exec cargo run --release -p attendance-server -- serve "$@"

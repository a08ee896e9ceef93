#!/usr/bin/env bash
# Runs the load generator against a fresh server per scenario, over loopback
# only, and appends each `RESULT {json}` line to bench/results/<target>.jsonl.
#
#   bench/run.sh TARGET [SCENARIO ...]
#
# TARGET:   sqlite | postgres | ref-fsync | ref-none
#           (ref-* = bench/reference-node, the Node.js REFERENCE, not the product)
# SCENARIO: ingest ingest-256 wrk-ingest wrk-ingest-256 hb-http hb-ws hb-ws-30s
#           fan-500 fan-1room fan-1room-node fan-10k idle   (default: all)
#           wrk-*: webhooks sent by wrk (an outside tool) from unique pre-signed
#           requests (`attendance-loadgen presign`), server CPU per webhook from
#           /proc, then how long the inbox takes to drain
#
# Needs a release build first:
#   CARGO_TARGET_DIR=target/bench cargo build --release -p attendance-server -p attendance-loadgen
# and, for ref-*, `npm install` in bench/reference-node; for postgres, the
# PostgreSQL at 127.0.0.1:5432 (trust auth, database `test`): each scenario
# creates and drops its own database.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=${1:?usage: bench/run.sh sqlite|postgres|ref-fsync|ref-none [scenario ...]}
shift
SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(ingest ingest-256 wrk-ingest wrk-ingest-256 hb-http hb-ws fan-500 fan-1room fan-1room-node fan-10k idle)

BIN=${CARGO_TARGET_DIR:-$PWD/target/bench}/release
# The server binary to measure (default: the one built beside the load generator).
SERVER_BIN=${SERVER_BIN:-$BIN/attendance-server}
export LIVEKIT_API_KEY=benchkey
export LIVEKIT_API_SECRET=bench-secret-0123456789abcdefghijklmnop
# As many connections as descriptors allow (the server lowers it to fit):
# the 10,000-socket room still needs room for the webhooks beside it.
export ATTENDANCE_MAX_CONNECTIONS=100000
OUT=bench/results
mkdir -p "$OUT"
# 20,000 WebSockets need as many descriptors on each side.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

SERVER_PID=
DB_NAME=
WORK=$(mktemp -d /tmp/attendance-bench.XXXXXX)

stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
  fi
  if [ -n "$DB_NAME" ]; then
    psql -q -h 127.0.0.1 -U postgres -d test -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" || true
    DB_NAME=
  fi
  rm -f "$WORK"/*
}
trap 'stop_server; rm -rf "$WORK"' EXIT

start_server() {
  local fifo="$WORK/stdout"
  mkfifo "$fifo"
  case "$TARGET" in
    sqlite)
      RUST_LOG=warn "$SERVER_BIN" serve --listen 127.0.0.1:0 \
        --database-url "sqlite://$WORK/bench.db" --www-dir www >"$fifo" 2>"$WORK/stderr" &
      ;;
    postgres)
      DB_NAME="bench_$(date +%s)_$$"
      psql -q -h 127.0.0.1 -U postgres -d test -c "CREATE DATABASE $DB_NAME"
      RUST_LOG=warn "$SERVER_BIN" serve --listen 127.0.0.1:0 \
        --database-url "postgres://postgres@127.0.0.1:5432/$DB_NAME" --www-dir www >"$fifo" 2>"$WORK/stderr" &
      ;;
    ref-fsync | ref-none)
      node bench/reference-node/server.mjs --listen 127.0.0.1:0 --store "${TARGET#ref-}" \
        --file "$WORK/events.log" >"$fifo" 2>"$WORK/stderr" &
      ;;
    *) echo "unknown target $TARGET" >&2; exit 2 ;;
  esac
  SERVER_PID=$!
  exec 3<"$fifo"
  local line
  read -r -t 30 line <&3 || { cat "$WORK/stderr" >&2; exit 1; }
  URL=${line#listening on }
  # Keep draining stdout so the server never blocks on it.
  cat <&3 >/dev/null &
  exec 3<&-
}

loadgen() {
  "$BIN/attendance-loadgen" "$@" --url "$URL" --server-pid "$SERVER_PID" | tee -a "$WORK/out"
}

# Server CPU time so far, in seconds (utime + stime from /proc).
server_cpu_s() {
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$SERVER_PID/stat"
}

# wrk drives the webhooks: unique pre-signed requests, `$1` connections for 10 s.
wrk_ingest() {
  local connections=$1
  "$BIN/attendance-loadgen" presign --count 600000 --out "$WORK/presigned"
  local cpu0 cpu1 drain="null" t0 t1
  cpu0=$(server_cpu_s)
  t0=$(date +%s.%N)
  wrk -t2 -c"$connections" -d10s --timeout 10s -s bench/wrk/webhooks.lua "$URL" -- "$WORK/presigned" 2 \
    | tee "$WORK/wrk" >&2
  if [ "${TARGET#ref-}" = "$TARGET" ]; then
    # Not drained within the minute is a result too (drained_after_s: null).
    drain=$("$BIN/attendance-loadgen" drain --url "$URL" --within 60s | sed -n 's/^RESULT //p' || true)
  fi
  t1=$(date +%s.%N)
  cpu1=$(server_cpu_s)
  local wrk_json
  wrk_json=$(sed -n 's/^WRK //p' "$WORK/wrk")
  node -e '
    const [wrk, drain, cpu0, cpu1, t0, t1, conns] = process.argv.slice(1);
    const w = JSON.parse(wrk), d = JSON.parse(drain);
    const ok = w.requests - w.non_2xx - w.socket_errors;
    const cpu = cpu1 - cpu0;
    console.log("RESULT " + JSON.stringify({
      scenario: "wrk-ingest", concurrency: +conns, tool: "wrk -t2", ...w, ok,
      ok_per_s: Math.round(ok / w.seconds),
      drain: d,
      server_cpu: { seconds: +cpu.toFixed(3), cores: +(cpu / (t1 - t0)).toFixed(2),
                    us_per_webhook: +(cpu / ok * 1e6).toFixed(1) },
    }));
  ' "$wrk_json" "$drain" "$cpu0" "$cpu1" "$t0" "$t1" "$connections" | tee -a "$WORK/out"
}

for scenario in "${SCENARIOS[@]}"; do
  start_server
  echo "== $TARGET $scenario ($URL, pid $SERVER_PID)" >&2
  case "$scenario" in
    ingest) loadgen ingest --rooms 200 --students 25 --concurrency 64 --duration 10s ;;
    # The same with 256 webhooks in flight (a burst from many LiveKit nodes).
    ingest-256) loadgen ingest --rooms 200 --students 25 --concurrency 256 --duration 10s ;;
    wrk-ingest) wrk_ingest 64 ;;
    wrk-ingest-256) wrk_ingest 256 ;;
    hb-http) loadgen heartbeats --students 1000 --mode http --concurrency 64 --duration 10s ;;
    # Paced under the server's per-socket message cap: 8,000 × 2.5/s = 20,000 msgs/s offered.
    hb-ws) loadgen heartbeats --students 8000 --mode ws --interval 400ms --source-ips 2 --duration 10s ;;
    # The same for 30 s: the sustained rate, past the first seconds' connect storm.
    hb-ws-30s) loadgen heartbeats --students 8000 --mode ws --interval 400ms --source-ips 2 --duration 30s ;;
    fan-500) loadgen fanout --rooms 1 --per-room 500 ;;
    # One room, 10,000 teacher sockets, a participant change every 500 ms:
    # every change goes to all 10,000 (20,000 messages/s).
    fan-1room) loadgen fanout --rooms 1 --per-room 10000 --teachers 10000 --events 40 --rate 2 --concurrency 1 --source-ips 2 ;;
    # The same room, driven by the npm `ws` client instead.
    fan-1room-node) node bench/node-client/fanout.mjs --url "$URL" --sockets 10000 --events 40 --rate 2 | tee -a "$WORK/out" ;;
    fan-10k) loadgen fanout --rooms 100 --per-room 100 --source-ips 2 ;;
    idle) loadgen idle --connections 20000 --source-ips 2 --hold 3s ;;
    *) echo "unknown scenario $scenario" >&2; exit 2 ;;
  esac
  grep '^RESULT ' "$WORK/out" | sed "s/^RESULT /{\"target\":\"$TARGET\",\"at\":\"$(date -u +%FT%TZ)\",\"result\":/; s/\$/}/" >>"$OUT/$TARGET.jsonl"
  stop_server
done

#!/usr/bin/env bash
# Runs the load generator against a fresh server per scenario, over loopback
# only, and appends each `RESULT {json}` line to bench/results/<target>.jsonl.
#
#   bench/run.sh TARGET [SCENARIO ...]
#
# TARGET:   sqlite | postgres | postgres-2 | ref-fsync | ref-none
#           (postgres-2 = two server instances on one fresh PostgreSQL database;
#           wrk-* split their connections over both, fan-cross spans them,
#           other scenarios drive the first instance only;
#           ref-* = bench/reference-node, the Node.js REFERENCE, not the product)
# SCENARIO: ingest ingest-256 wrk-ingest wrk-ingest-256 hb-http hb-ws hb-ws-30s
#           hb-ws-max fan-500 fan-1room fan-1room-node fan-10k idle   (default: all but hb-ws-max)
#           fan-cross (postgres-2 only: webhooks to one instance, sockets on the other)
#           schoolday (not in the default set: a capacity search of many minutes)
#           wrk-*: webhooks sent by wrk (an outside tool) from unique pre-signed
#           requests (`attendance-loadgen presign`), server CPU per webhook from
#           /proc, then how long the inbox takes to drain
#           schoolday: `attendance-loadgen schoolday` at SCHOOLDAY_START_ROOMS
#           rooms (default 10), doubling while it passes, up to
#           SCHOOLDAY_MAX_ROOMS (default 2560), then SCHOOLDAY_BISECT (default 2)
#           halvings between the last pass and the first failure; every step on
#           a fresh server (and database); each step's RESULT and then one
#           `schoolday-capacity` RESULT are appended. SCHOOLDAY_ARGS adds
#           arguments to every step, e.g. for a short run:
#             SCHOOLDAY_ARGS="--join-spread 20s --hold 15s --heartbeat-interval 10s"
#
# Needs a release build first:
#   CARGO_TARGET_DIR=target/bench cargo build --release -p attendance-server -p attendance-loadgen
# and, for ref-*, `npm install` in bench/reference-node; for postgres, the
# PostgreSQL at 127.0.0.1:5432 (trust auth, database `test`): each scenario
# creates and drops its own database.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=${1:?usage: bench/run.sh sqlite|postgres|postgres-2|ref-fsync|ref-none [scenario ...]}
shift
SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(ingest ingest-256 wrk-ingest wrk-ingest-256 hb-http hb-ws fan-500 fan-1room fan-1room-node fan-10k idle)

BIN=${CARGO_TARGET_DIR:-$PWD/target/bench}/release
# The server binary to measure (default: the one built beside the load generator).
SERVER_BIN=${SERVER_BIN:-$BIN/attendance-server}
# The load generator (default: the one built beside the server).
LOADGEN_BIN=${LOADGEN_BIN:-$BIN/attendance-loadgen}
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
# Every instance of the server under test: URLS[i], PIDS[i] (URL and
# SERVER_PID are the first).
URLS=()
PIDS=()
WORK=$(mktemp -d /tmp/attendance-bench.XXXXXX)

stop_server() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
  URLS=()
  SERVER_PID=
  if [ -n "$DB_NAME" ]; then
    psql -q -h 127.0.0.1 -U postgres -d test -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" || true
    DB_NAME=
  fi
  rm -f "$WORK"/*
}
trap 'stop_server; rm -rf "$WORK"' EXIT

# Starts one server process (the command in "$@"), waits for its
# `listening on URL` line and adds it to URLS / PIDS.
launch() {
  local n=${#PIDS[@]}
  local fifo="$WORK/stdout.$n"
  mkfifo "$fifo"
  "$@" >"$fifo" 2>"$WORK/stderr.$n" &
  PIDS+=("$!")
  exec 3<"$fifo"
  local line
  read -r -t 30 line <&3 || { cat "$WORK/stderr.$n" >&2; exit 1; }
  URLS+=("${line#listening on }")
  # Keep draining stdout so the server never blocks on it.
  cat <&3 >/dev/null &
  exec 3<&-
}

start_server() {
  case "$TARGET" in
    sqlite)
      RUST_LOG=warn launch "$SERVER_BIN" serve --listen 127.0.0.1:0 \
        --database-url "sqlite://$WORK/bench.db" --www-dir www
      ;;
    postgres | postgres-2)
      DB_NAME="bench_$(date +%s)_$$"
      psql -q -h 127.0.0.1 -U postgres -d test -c "CREATE DATABASE $DB_NAME"
      local instances=1 i
      [ "$TARGET" = postgres-2 ] && instances=2
      for ((i = 0; i < instances; i++)); do
        # The first instance migrates the fresh database before the second starts.
        RUST_LOG=warn launch "$SERVER_BIN" serve --listen 127.0.0.1:0 \
          --database-url "postgres://postgres@127.0.0.1:5432/$DB_NAME" --www-dir www
      done
      ;;
    ref-fsync | ref-none)
      launch node bench/reference-node/server.mjs --listen 127.0.0.1:0 --store "${TARGET#ref-}" \
        --file "$WORK/events.log"
      ;;
    *) echo "unknown target $TARGET" >&2; exit 2 ;;
  esac
  URL=${URLS[0]}
  SERVER_PID=${PIDS[0]}
}

loadgen() {
  "$LOADGEN_BIN" "$@" --url "$URL" --server-pid "$SERVER_PID" | tee -a "$WORK/out"
}

# Server CPU time so far of every instance, in seconds.
servers_cpu_s() {
  local pid total=0
  for pid in "${PIDS[@]}"; do
    total=$(awk -v t="$total" -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", t + ($14 + $15) / hz }' "/proc/$pid/stat")
  done
  echo "$total"
}

# Bytes written so far by every instance (files and sockets: `wchar`).
servers_written_bytes() {
  local pid total=0
  for pid in "${PIDS[@]}"; do
    total=$((total + $(awk '/^wchar:/ { print $2 }' "/proc/$pid/io")))
  done
  echo "$total"
}

# wrk drives the webhooks: unique pre-signed requests, `$1` connections for
# 10 s, split evenly over the instances of the target (one wrk each, with
# its own pre-signed file, side by side).
wrk_ingest() {
  local connections=$1 n=${#URLS[@]} i
  local per=$((connections / n))
  for ((i = 0; i < n; i++)); do
    "$LOADGEN_BIN" presign --count $((600000 / n)) --out "$WORK/presigned.$i"
  done
  local cpu0 cpu1 written0 written1 drain="null" t0 t1
  cpu0=$(servers_cpu_s)
  written0=$(servers_written_bytes)
  t0=$(date +%s.%N)
  local wrks=()
  for ((i = 0; i < n; i++)); do
    wrk -t2 -c"$per" -d10s --timeout 10s -s bench/wrk/webhooks.lua "${URLS[$i]}" -- "$WORK/presigned.$i" 2 \
      >"$WORK/wrk.$i" &
    wrks+=($!)
  done
  wait "${wrks[@]}"
  cat "$WORK"/wrk.* >&2
  if [ "${TARGET#ref-}" = "$TARGET" ]; then
    # One inbox for every instance. Not drained within the minute is a
    # result too (drained_after_s: null).
    drain=$("$LOADGEN_BIN" drain --url "$URL" --within 60s | sed -n 's/^RESULT //p' || true)
  fi
  t1=$(date +%s.%N)
  cpu1=$(servers_cpu_s)
  written1=$(servers_written_bytes)
  node -e '
    const [drain, cpu0, cpu1, written, t0, t1, conns, ...files] = process.argv.slice(1);
    const fs = require("fs");
    const runs = files.map((f) => JSON.parse(fs.readFileSync(f, "utf8").split("\n")
      .find((l) => l.startsWith("WRK ")).slice(4)));
    const sum = (k) => runs.reduce((t, r) => t + r[k], 0);
    // One run: its own figures; several: totals, and the worst latencies.
    const w = runs.length === 1 ? runs[0] : {
      requests: sum("requests"), seconds: Math.max(...runs.map((r) => r.seconds)),
      per_s: sum("per_s"), repeated: sum("repeated"), non_2xx: sum("non_2xx"),
      socket_errors: sum("socket_errors"),
      latency_ms: Object.fromEntries(Object.keys(runs[0].latency_ms)
        .map((k) => [k, Math.max(...runs.map((r) => r.latency_ms[k]))])),
    };
    const ok = w.requests - w.non_2xx - w.socket_errors;
    const cpu = cpu1 - cpu0;
    console.log("RESULT " + JSON.stringify({
      scenario: "wrk-ingest", concurrency: +conns, instances: runs.length, tool: "wrk -t2", ...w, ok,
      ok_per_s: Math.round(ok / w.seconds),
      drain: JSON.parse(drain),
      server_cpu: { seconds: +cpu.toFixed(3), cores: +(cpu / (t1 - t0)).toFixed(2),
                    us_per_webhook: +(cpu / ok * 1e6).toFixed(1) },
      // Log, checkpoints and responses: what storing a webhook costs in writes.
      server_written: { bytes: +written, kib_per_webhook: +(written / ok / 1024).toFixed(1) },
    }));
  ' "$drain" "$cpu0" "$cpu1" "$((written1 - written0))" "$t0" "$t1" "$connections" "$WORK"/wrk.* | tee -a "$WORK/out"
}

# Appends this scenario's RESULT lines to bench/results/TARGET.jsonl.
append_results() {
  grep '^RESULT ' "$WORK/out" | sed "s/^RESULT /{\"target\":\"$TARGET\",\"at\":\"$(date -u +%FT%TZ)\",\"result\":/; s/\$/}/" >>"$OUT/$TARGET.jsonl" || true
}

# One school day of $1 rooms on a fresh server (every instance of the
# target): true when it passed; its RESULT json in STEP_RESULT.
schoolday_step() {
  local rooms=$1 url pid
  local args=()
  start_server
  INSTANCES=${#URLS[@]}
  echo "== $TARGET schoolday, $rooms rooms (${URLS[*]}, pid ${PIDS[*]})" >&2
  for url in "${URLS[@]}"; do args+=(--url "$url"); done
  for pid in "${PIDS[@]}"; do args+=(--server-pid "$pid"); done
  # shellcheck disable=SC2086 # SCHOOLDAY_ARGS: extra arguments, split on spaces
  "$LOADGEN_BIN" schoolday --rooms "$rooms" "${args[@]}" ${SCHOOLDAY_ARGS:-} \
    | tee -a "$WORK/out" || true
  STEP_RESULT=$(sed -n 's/^RESULT //p' "$WORK/out" | tail -n 1)
  append_results
  stop_server
  [[ $STEP_RESULT == *'"pass":true'* ]]
}

# The largest school day that passes: doubling from SCHOOLDAY_START_ROOMS
# while it passes, then SCHOOLDAY_BISECT halvings of the gap to the first
# failure. Ends with one `schoolday-capacity` RESULT.
schoolday_search() {
  local rooms=${SCHOOLDAY_START_ROOMS:-10} max=${SCHOOLDAY_MAX_ROOMS:-2560}
  local bisect=${SCHOOLDAY_BISECT:-2} passed=0 failed=0 best=null steps="" mid ok
  local started=$SECONDS
  # The load generator holds every socket in one process: one descriptor
  # each (students and a teacher per room), plus its HTTP connections.
  local per_room fits
  per_room=$(sed -n 's/.*--students[= ]\([0-9]*\).*/\1/p' <<<"${SCHOOLDAY_ARGS:-}")
  fits=$((($(ulimit -n) - 256) / (${per_room:-30} + 1)))
  if [ "$fits" -lt "$max" ]; then
    echo "schoolday: $(ulimit -n) descriptors fit $fits rooms: the search stops there" >&2
    max=$fits
  fi
  while [ "$rooms" -le "$max" ]; do
    if schoolday_step "$rooms"; then ok=true; else ok=false; fi
    steps+="${steps:+,}{\"rooms\":$rooms,\"pass\":$ok}"
    if [ "$ok" = true ]; then
      passed=$rooms best=$STEP_RESULT rooms=$((rooms * 2))
      # The last doubling would not fit: the most that fits, once.
      if [ "$rooms" -gt "$max" ] && [ "$passed" -lt "$max" ]; then rooms=$max; fi
    else
      failed=$rooms
      break
    fi
  done
  while [ "$failed" -gt 0 ] && [ "$bisect" -gt 0 ] && [ $((failed - passed)) -gt 1 ]; do
    mid=$(((passed + failed) / 2)) bisect=$((bisect - 1))
    if schoolday_step "$mid"; then ok=true; else ok=false; fi
    steps+=",{\"rooms\":$mid,\"pass\":$ok}"
    if [ "$ok" = true ]; then passed=$mid best=$STEP_RESULT; else failed=$mid; fi
  done
  local students peak
  students=$(sed -n 's/.*"students":\([0-9]*\).*/\1/p' <<<"$best")
  peak=$(sed -n 's/.*"concurrent_peak":\([0-9]*\).*/\1/p' <<<"$best")
  local summary="{\"scenario\":\"schoolday-capacity\",\"instances\":${INSTANCES:-0}"
  summary+=",\"max_rooms\":$passed,\"max_students\":${students:-0},\"concurrent_peak\":${peak:-0}"
  summary+=",\"first_failing_rooms\":$([ "$failed" -gt 0 ] && echo "$failed" || echo null)"
  summary+=",\"max_rooms_tried\":$max,\"fd_limit\":$(ulimit -n)"
  summary+=",\"search_seconds\":$((SECONDS - started)),\"steps\":[$steps],\"best\":$best}"
  echo "RESULT $summary" | tee -a "$WORK/out"
  append_results
  rm -f "$WORK/out"
}

for scenario in "${SCENARIOS[@]}"; do
  if [ "$scenario" = schoolday ]; then
    case "$TARGET" in
      ref-*) echo "schoolday needs the attendance server (lessons, the inbox): skipped on $TARGET" >&2 ;;
      *) schoolday_search ;;
    esac
    continue
  fi
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
    # As many sockets as this container's 20,000 descriptors per process
    # allow on both sides, each as often as the server's cap (30 messages
    # per 10 s, a pong included) allows: 19,000 / 0.36 s = 52,800 msgs/s offered.
    hb-ws-max) loadgen heartbeats --students 19000 --mode ws --interval 360ms --source-ips 4 --duration 20s ;;
    # The same for 30 s: the sustained rate, past the first seconds' connect storm.
    hb-ws-30s) loadgen heartbeats --students 8000 --mode ws --interval 400ms --source-ips 2 --duration 30s ;;
    fan-500) loadgen fanout --rooms 1 --per-room 500 ;;
    # One room, 10,000 teacher sockets, a participant change every 500 ms:
    # every change goes to all 10,000 (20,000 messages/s).
    fan-1room) loadgen fanout --rooms 1 --per-room 10000 --teachers 10000 --events 40 --rate 2 --concurrency 1 --source-ips 2 ;;
    # The same room, driven by the npm `ws` client instead.
    fan-1room-node) node bench/node-client/fanout.mjs --url "$URL" --sockets 10000 --events 40 --rate 2 | tee -a "$WORK/out" ;;
    fan-10k) loadgen fanout --rooms 100 --per-room 100 --source-ips 2 ;;
    # postgres-2: 1,000 sockets (10 rooms of 100, a teacher each) on the
    # second instance, every webhook to the first: push latency across
    # instances, end to end.
    fan-cross)
      [ ${#URLS[@]} -gt 1 ] || { echo "fan-cross needs two instances (target postgres-2)" >&2; exit 2; }
      "$LOADGEN_BIN" fanout --rooms 10 --per-room 100 --rate 100 --url "${URLS[1]}" \
        --webhooks-url "${URLS[0]}" --server-pid "${PIDS[1]}" | tee -a "$WORK/out"
      ;;
    idle) loadgen idle --connections 20000 --source-ips 2 --hold 3s ;;
    *) echo "unknown scenario $scenario" >&2; exit 2 ;;
  esac
  append_results
  stop_server
done

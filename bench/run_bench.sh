#!/usr/bin/env bash
# WebSocket fan-out benchmark: runs the scenarios S1-S4 against chatd with
# build/chatd-bench, the same scenarios against the peer servers of the
# external yardstick (when it is there and its peers can be installed), then
# the scaling runs (throughput and p99 against subscribers per room, server
# RSS against idle connections), and writes the "WebSocket fan-out" section of
# docs/BENCHMARKS.md with its plots docs/bench-throughput.svg and
# docs/bench-rss.svg. Run it with `make bench` (which builds chatd and
# chatd-bench first).
#
# Every chatd run: a fresh SQLite database, THREADS=1, chatd pinned to CPU 0
# and chatd-bench to CPU 1 (taskset), RATE_LIMIT_MESSAGES=0,
# RATE_LIMIT_AUTH=0, LOG_LEVEL=warn; chatd is stopped with SIGTERM after each
# run and must exit cleanly. Exits non-zero when a chatd run lost or
# duplicated a delivery, got error events, failed connections, or chatd
# logged an error or did not exit cleanly.
#
# Environment:
#   RUNS=1                 runs per scenario (tables show the median)
#   SCENARIOS="S1 S2 S2L S3 S3PG S4"  (S2L: S2 plus 200 concurrent logins;
#                          S3PG: S3 with PostgreSQL; both chatd only)
#   PEERS="c-limit node-ws socketio nats"   "" skips the peers
#   SHARED_BENCH=../shared/bench            the external yardstick (wsbench,
#                          peers, run-peers.sh); skipped when absent
#   SCALING=1              0 skips the scaling runs and the plots
#   SUBS_POINTS="100 1000 10000"            subscribers per room
#   HOLD_POINTS="1000 5000 10000 <S4>"      idle connections for the RSS plot
#   QUIET_LOAD=0.5 QUIET_WAIT=1200          wait up to QUIET_WAIT s for the
#                          1-minute load average to drop under QUIET_LOAD
#   UPDATE_DOC=1           0: leave docs/ alone, only write bench/results/
#   CHATD_BIN=build/chatd  CHATD_BENCH_BIN=build/chatd-bench
#   RESULTS_DIR=bench/results/ws-<time>
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CHATD=${CHATD_BIN:-$ROOT/build/chatd}
BENCH=${CHATD_BENCH_BIN:-$ROOT/build/chatd-bench}
SHARED_BENCH=${SHARED_BENCH:-$ROOT/../shared/bench}
RUNS=${RUNS:-1}
SCENARIOS=${SCENARIOS:-"S1 S2 S2L S3 S3PG S4"}
# The peers have no accounts and no database: the login storm and the
# PostgreSQL run are chatd's alone.
PEER_SCENARIOS=$(echo " $SCENARIOS " | sed 's/ S2L / /g; s/ S3PG / /g; s/^ *//; s/ *$//')
# S3PG: a throwaway PostgreSQL 15 cluster (scripts/pg_throwaway.sh), fsync on
# as in production, not pinned (the database is a service of its own); one
# fresh database per run.
PG_PORT=${PG_PORT:-55499}
PG_URL=""
PEERS=${PEERS-"c-limit node-ws socketio nats"}
SCALING=${SCALING:-1}
SUBS_POINTS=${SUBS_POINTS:-"100 1000 10000"}
QUIET_LOAD=${QUIET_LOAD:-0.5}
QUIET_WAIT=${QUIET_WAIT:-1200}
UPDATE_DOC=${UPDATE_DOC:-1}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=${RESULTS_DIR:-$ROOT/bench/results/ws-$STAMP}
RAW=$RESULTS/raw.jsonl
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=python3
SOURCES=127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4

log() { echo "[bench] $*" >&2; }
die() {
  echo "run_bench: $*" >&2
  exit 1
}

[ -x "$CHATD" ] || die "$CHATD not found: run 'make bench' (it builds chatd first)"
[ -x "$BENCH" ] || die "$BENCH not found: run 'make bench' (it builds chatd-bench first)"
"$BENCH" --selftest >/dev/null || die "chatd-bench --selftest failed"

# S4 wants 20,000 connections, but each side needs a few more descriptors
# than its connections; where the hard limit cannot be raised, use what fits.
HARD_NOFILE=$(ulimit -Hn)
if [ "$HARD_NOFILE" = unlimited ] || [ "$HARD_NOFILE" -ge 20600 ]; then
  S4_CONNS=${S4_CONNS:-20000}
  ulimit -n 20600
else
  S4_CONNS=${S4_CONNS:-$((HARD_NOFILE - 500))}
  ulimit -n "$HARD_NOFILE"
fi
HOLD_POINTS=${HOLD_POINTS:-"1000 5000 10000 $S4_CONNS"}

PIN_SERVER=()
PIN_CLIENT=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  PIN_SERVER=(taskset -c 0)
  PIN_CLIENT=(taskset -c 1)
fi

mkdir -p "$RESULTS"
: >"$RAW"
WORK=$(mktemp -d /tmp/chatd-ws-bench.XXXXXX)
CHATD_PID=""
FAILURES=()

cleanup() {
  set +e
  [ -n "$CHATD_PID" ] && kill -KILL "$CHATD_PID" 2>/dev/null && wait "$CHATD_PID" 2>/dev/null
  [ -n "$PG_URL" ] && "$ROOT/scripts/pg_throwaway.sh" stop "$PG_PORT" >/dev/null 2>&1
  [ "${KEEP_TMP:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

load1() { cut -d' ' -f1 /proc/loadavg; }

# Numbers from a shared machine are noise: wait for it to calm down first.
wait_quiet() {
  local deadline=$((SECONDS + QUIET_WAIT))
  while awk -v l="$(load1)" -v q="$QUIET_LOAD" 'BEGIN { exit !(l >= q) }'; do
    if [ $SECONDS -ge "$deadline" ]; then
      log "load average still $(load1) after ${QUIET_WAIT}s; going on"
      return
    fi
    log "load average $(load1) >= $QUIET_LOAD: waiting for a quiet machine"
    sleep 30
  done
}

start_chatd() { # run-dir [database-url]
  local dir=$1 db=${2:-sqlite:$1/chat.db}
  mkdir -p "$dir"
  PORT=$(free_port)
  (
    cd "$dir"
    exec env PORT="$PORT" HOST=127.0.0.1 DATABASE_URL="$db" \
      JWT_SECRET="$JWT_SECRET" THREADS=1 LOG_LEVEL=warn RATE_LIMIT_MESSAGES=0 \
      RATE_LIMIT_AUTH=0 "${PIN_SERVER[@]}" "$CHATD" 2>"$dir/chatd.log"
  ) &
  CHATD_PID=$!
  local deadline=$((SECONDS + 20))
  until curl -sf -o /dev/null "http://127.0.0.1:$PORT/health"; do
    kill -0 "$CHATD_PID" 2>/dev/null || die "chatd exited at start-up: $(tail -5 "$dir/chatd.log")"
    [ $SECONDS -lt $deadline ] || die "chatd did not answer /health within 20 s"
    sleep 0.1
  done
}

stop_chatd() { # label run-dir (its name is the stem of the saved log)
  local rc=0 deadline=$((SECONDS + 30))
  kill -TERM "$CHATD_PID" 2>/dev/null || true
  while kill -0 "$CHATD_PID" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      FAILURES+=("$1: chatd did not exit within 30 s of SIGTERM")
      kill -KILL "$CHATD_PID"
      break
    fi
    sleep 0.1
  done
  wait "$CHATD_PID" || rc=$?
  CHATD_PID=""
  [ $rc -eq 0 ] || FAILURES+=("$1: chatd exited with status $rc after SIGTERM")
  if grep -q '"level":"error"\|level=error' "$2/chatd.log"; then
    FAILURES+=("$1: chatd logged errors (see $RESULTS/logs/)")
  fi
  mkdir -p "$RESULTS/logs"
  cp "$2/chatd.log" "$RESULTS/logs/$(basename "$2").chatd.log"
}

scenario_args() {
  case "$1" in
  S1) echo "--subs 1000 --pubs 1 --rooms 1 --rate 0 --window 64 --warmup 2 --duration 5" ;;
  S2) echo "--subs 1000 --pubs 1 --rooms 1 --rate 100 --warmup 2 --duration 8" ;;
  S2L) echo "--subs 1000 --pubs 1 --rooms 1 --rate 100 --warmup 2 --duration 8 --login-storm 200 --login-at 2" ;;
  S3 | S3PG) echo "--subs 1000 --pubs 100 --rooms 100 --rate 0 --window 64 --warmup 2 --duration 5" ;;
  S4) echo "--hold --subs $S4_CONNS --duration 3 --connect-rate 5000 --max-pending 256 --source-ips $SOURCES" ;;
  esac
}

# bench_one KIND NAME RUN ARGS...: one fresh chatd, one chatd-bench run, one
# JSON line in raw.jsonl.
bench_one() {
  local kind=$1 name=$2 run=$3 db=""
  shift 3
  local dir=$WORK/$kind-$name-$run line
  if [ "$name" = S3PG ]; then
    pg_fresh_database || die "PostgreSQL: no fresh database"
    db=$PG_URL
  fi
  start_chatd "$dir" "$db"
  log "chatd $name run $run: chatd-bench $*"
  echo "chatd-bench --port $PORT --pid $CHATD_PID $*" >"$dir/command"
  line=$(timeout 300 "${PIN_CLIENT[@]}" "$BENCH" --port "$PORT" --pid "$CHATD_PID" --json "$@" \
    2>"$dir/bench.log" | tail -n 1) || true
  stop_chatd "$kind $name run $run" "$dir"
  cp "$dir/bench.log" "$RESULTS/logs/$(basename "$dir").bench.log"
  if [ -z "$line" ]; then
    FAILURES+=("$kind $name run $run: chatd-bench gave no result (see $RESULTS/logs/)")
    return
  fi
  echo "{\"server\":\"chatd\",\"kind\":\"$kind\",\"name\":\"$name\",\"run\":$run,\"args\":\"$*\",\"result\":$line}" >>"$RAW"
  log "  $line"
  # A chatd run must lose nothing and fail nothing.
  "$PYTHON" - "$line" "$kind $name run $run" <<'EOF' || FAILURES+=("$kind $name run $run: see above")
import json, sys
r, label = json.loads(sys.argv[1]), sys.argv[2]
bad = []
if r.get("connect_failures"): bad.append(f"{r['connect_failures']} connect failures")
if r.get("closed_by_server"): bad.append(f"{r['closed_by_server']} closed by the server")
if r["mode"] == "load":
    for k in ("missing", "unexpected", "duplicates_or_reordered", "unacked", "error_events",
              "protocol_errors", "stalls", "logins_failed"):
        if r.get(k): bad.append(f"{k} {r[k]}")
if bad:
    print(f"run_bench: {label}: " + ", ".join(bad), file=sys.stderr)
    sys.exit(1)
EOF
}

api() { # METHOD PATH [TOKEN] [BODY]: prints the answer's body
  local args=(-sS -X "$1" "http://127.0.0.1:$PORT$2")
  [ -n "${3:-}" ] && args+=(-H "Authorization: Bearer $3")
  [ -n "${4:-}" ] && args+=(-H 'Content-Type: application/json' -d "$4")
  curl "${args[@]}"
}

json_field() { "$PYTHON" -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }

# wsbench_one SCENARIO RUN: chatd under the yardstick's own load generator,
# with one registered user's token for every connection.
wsbench_one() {
  local sc=$1 run=$2 dir=$WORK/wsbench-$1-$2 token base=1 line i
  start_chatd "$dir"
  token=$(api POST /auth/register "" \
    '{"email":"wsbench@example.com","password":"bench-password-1","username":"wsbench"}' |
    json_field token) || die "registration failed"
  if [ "$sc" = S3 ]; then
    base=$(api POST /rooms "$token" '{"name":"wsbench 0"}' | json_field id)
    for i in $(seq 1 99); do
      api POST /rooms "$token" "{\"name\":\"wsbench $i\"}" >/dev/null
    done
  fi
  log "chatd $sc run $run: wsbench $(scenario_args "$sc")"
  # shellcheck disable=SC2046
  line=$(timeout 120 "${PIN_CLIENT[@]}" "$WSBENCH" \
    --url "ws://127.0.0.1:$PORT/ws/{room}?token=$token" --room-base "$base" \
    --pub-template '{"type":"message","content":"#T{ts}# seq {seq} hello from the bench"}' \
    $(scenario_args "$sc") --pid "$CHATD_PID" 2>"$dir/bench.log" | tail -n 1) || true
  stop_chatd "wsbench $sc run $run" "$dir"
  cp "$dir/bench.log" "$RESULTS/logs/$(basename "$dir").bench.log"
  if [ -n "$line" ]; then
    echo "{\"server\":\"chatd\",\"kind\":\"wsbench\",\"name\":\"$sc\",\"run\":$run,\"result\":$line}" >>"$RAW"
    log "  $line"
  else
    FAILURES+=("wsbench $sc run $run against chatd: no result")
  fi
}

pg_fresh_database() {
  local psql=(/usr/lib/postgresql/15/bin/psql -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres)
  "${psql[@]}" -c "DROP DATABASE IF EXISTS chat WITH (FORCE)" -c "CREATE DATABASE chat" >/dev/null
}

JWT_SECRET=$(head -c 48 /dev/urandom | base64 -w0)
export LC_ALL=C.UTF-8
mkdir -p "$RESULTS/logs"

# The tree the measured binaries were built from (HEAD may move during the run).
TREE=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git -C "$ROOT" status --porcelain 2>/dev/null)" ] || TREE="$TREE plus uncommitted changes"
LOAD_BEFORE=$(cat /proc/loadavg)
wait_quiet
LOAD_START=$(cat /proc/loadavg)
log "results in $RESULTS; load average $LOAD_START"
# The 1-minute load average after each phase, for the doc's quiet verdict.
PHASE_LOADS=()
phase_done() { PHASE_LOADS+=(--phase-load "$1=$(cut -d' ' -f1 /proc/loadavg)"); }

if [ "${SCENARIOS/S3PG/}" != "$SCENARIOS" ]; then
  PG_URL=$("$ROOT/scripts/pg_throwaway.sh" start "$PG_PORT") || die "S3PG: PostgreSQL did not start"
  log "S3PG: PostgreSQL at $PG_URL"
fi

# ---- chatd: S1..S4
for sc in $SCENARIOS; do
  for run in $(seq 1 "$RUNS"); do
    # shellcheck disable=SC2046
    bench_one scenario "$sc" "$run" $(scenario_args "$sc")
  done
done

phase_done "chatd scenarios"

# ---- the peers, with the yardstick's own driver, in the same session
PEERS_NOTE=""
if [ -z "$PEERS" ]; then
  PEERS_NOTE="skipped (PEERS is empty)"
elif [ ! -d "$SHARED_BENCH" ] || [ ! -x "$SHARED_BENCH/run-peers.sh" ]; then
  PEERS_NOTE="skipped: $SHARED_BENCH is not there (set SHARED_BENCH to the wsbench folder)"
  log "peers: $PEERS_NOTE"
else
  # The yardstick may be read-only: run a copy, keeping its node_modules
  # between runs so npm is asked only once.
  PEER_DIR=$ROOT/build/bench-peers
  mkdir -p "$PEER_DIR"
  (cd "$SHARED_BENCH" && tar --exclude=node_modules --exclude=./results -cf - .) |
    (cd "$PEER_DIR" && tar -xf -)
  chmod -R u+w "$PEER_DIR"
  case " $PEERS " in
  *" nats "*)
    command -v nats-server >/dev/null ||
      CHATD_DEPS_EXTRA="nats-server" "$ROOT/scripts/deps.sh" >&2 || log "nats-server could not be installed"
    ;;
  esac
  log "peers: RUNS=$RUNS PEERS=\"$PEERS\" SCENARIOS=\"$PEER_SCENARIOS\" $PEER_DIR/run-peers.sh"
  if RUNS=$RUNS PEERS="$PEERS" SCENARIOS="$PEER_SCENARIOS" "$PEER_DIR/run-peers.sh" \
    >"$RESULTS/peers.out" 2>"$RESULTS/peers.log"; then
    # shellcheck disable=SC2012 # run-peers.sh names its folders by time
    peer_raw=$(ls -td "$PEER_DIR"/results/*/ | head -1)raw.jsonl
    cp "$peer_raw" "$RESULTS/peers.raw.jsonl"
    cp "$(dirname "$peer_raw")/table.md" "$RESULTS/peers.table.md" 2>/dev/null || true
  else
    PEERS_NOTE="their driver failed (see $RESULTS/peers.log)"
    log "peers: $PEERS_NOTE"
  fi
fi

[ -n "$PEERS_NOTE" ] || phase_done "peers"

# ---- chatd driven by wsbench, the peers' client, for a like-for-like row
WSBENCH=${PEER_DIR:-/nonexistent}/wsbench
if [ -x "$WSBENCH" ]; then
  for sc in $PEER_SCENARIOS; do
    for run in $(seq 1 "$RUNS"); do
      wsbench_one "$sc" "$run"
    done
  done
fi

[ -x "$WSBENCH" ] && phase_done "chatd under wsbench"

# ---- scaling
if [ "$SCALING" = 1 ]; then
  for n in $SUBS_POINTS; do
    # Max rate: throughput. A fixed 100k deliveries/s: latency.
    bench_one subs-max "$n" 1 --subs "$n" --pubs 1 --rooms 1 --rate 0 --window 64 \
      --warmup 2 --duration 5 --source-ips "$SOURCES"
    bench_one subs-fixed "$n" 1 --subs "$n" --pubs 1 --rooms 1 --rate "$((100000 / n))" \
      --warmup 2 --duration 8 --source-ips "$SOURCES"
  done
  for n in $HOLD_POINTS; do
    bench_one hold "$n" 1 --hold --subs "$n" --duration 3 --connect-rate 5000 \
      --max-pending 256 --source-ips "$SOURCES"
  done
fi
[ "$SCALING" = 1 ] && phase_done "scaling"
LOAD_END=$(cat /proc/loadavg)
FINISHED=$(date -u +"%Y-%m-%d %H:%M UTC")

# ---- report: tables, data files, plots, the doc section
REPORT_ARGS=(--raw "$RAW" --out "$RESULTS" --runs "$RUNS" --s4-conns "$S4_CONNS"
  --load-before "$LOAD_BEFORE" --load-start "$LOAD_START" --load-end "$LOAD_END"
  --quiet-load "$QUIET_LOAD" --chatd "$CHATD" --peers-note "$PEERS_NOTE" --tree "$TREE"
  --when "$FINISHED" "${PHASE_LOADS[@]}")
[ -f "$RESULTS/peers.raw.jsonl" ] && REPORT_ARGS+=(--peers-raw "$RESULTS/peers.raw.jsonl")
"$PYTHON" "$ROOT/bench/ws_report.py" "${REPORT_ARGS[@]}"

if [ "$SCALING" = 1 ]; then
  if ! command -v gnuplot >/dev/null; then
    CHATD_DEPS_EXTRA="gnuplot-nox" "$ROOT/scripts/deps.sh" || log "gnuplot-nox could not be installed"
  fi
  if command -v gnuplot >/dev/null; then
    gnuplot -e "datadir='$RESULTS'" "$ROOT/bench/ws_plots.gp"
    if [ "$UPDATE_DOC" = 1 ]; then
      cp "$RESULTS/bench-throughput.svg" "$RESULTS/bench-rss.svg" "$ROOT/docs/"
    fi
  else
    FAILURES+=("no gnuplot: plots not drawn")
  fi
fi
if [ "$UPDATE_DOC" = 1 ]; then
  "$PYTHON" "$ROOT/bench/ws_report.py" --splice "$RESULTS/section.md" "$ROOT/docs/BENCHMARKS.md"
  log "docs/BENCHMARKS.md: WebSocket fan-out section updated"
fi
cat "$RESULTS/tables.md"
echo
echo "raw output: $RESULTS"

if [ ${#FAILURES[@]} -gt 0 ]; then
  echo >&2
  echo "run_bench: FAILED" >&2
  printf '  %s\n' "${FAILURES[@]}" >&2
  exit 1
fi

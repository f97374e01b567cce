#!/usr/bin/env bash
# REST posting benchmark: acknowledged POST /rooms/:id/messages per second with
# 1, 16 and 64 keep-alive clients (wrk connections), on SQLite and on a
# throwaway PostgreSQL 15 cluster. Run it with `make bench-rest` (which builds
# build/chatd first); docs/BENCHMARKS.md explains the set-up and the results.
#
# Every run starts build/chatd on a free loopback port with a fresh database,
# registers one user, runs wrk with bench/post.lua, stops chatd gracefully and
# then checks that the content of every 201 is in the messages table.
# Exits non-zero when a run saw any non-201 response, a socket error or
# timeout, an acknowledged message missing from the database, a duplicated
# row, an error in chatd's log, or chatd not exiting cleanly on SIGTERM.
#
# Environment:
#   DURATION=10          seconds per run
#   CLIENTS="1 16 64"    connection counts for the pinned runs (may be empty)
#   BACKENDS="sqlite postgres"
#   EXTRA_RUNS=1         also: 64 clients unpinned with THREADS=2 (each
#                        backend), 64 clients with LOG_LEVEL=info (SQLite)
#   BENCH_LOG_LEVEL=warn chatd's LOG_LEVEL for the pinned runs
#   PERF=0               1: one more 64-client run per backend under
#                        `perf record -g`; reports land in the results folder
#   QUIET_WAIT=60        seconds to wait for other work on the machine to
#                        calm down before each run
#   CHATD_BIN=build/chatd  RESULTS_DIR=bench/results/rest-<time>  KEEP_TMP=0
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CHATD=${CHATD_BIN:-$ROOT/build/chatd}
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS-"1 16 64"}
BACKENDS=${BACKENDS:-"sqlite postgres"}
EXTRA_RUNS=${EXTRA_RUNS:-1}
PERF=${PERF:-0}
RESULTS=${RESULTS_DIR:-$ROOT/bench/results/rest-$(date +%Y%m%d-%H%M%S)}
PGBIN=/usr/lib/postgresql/15/bin
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=python3

die() {
  echo "rest_bench: $*" >&2
  exit 1
}

[ -x "$CHATD" ] || die "$CHATD not found: run 'make bench-rest' (it builds chatd first)"
if ! command -v wrk >/dev/null || ! command -v sqlite3 >/dev/null; then
  CHATD_DEPS_EXTRA="wrk sqlite3" "$ROOT/scripts/deps.sh"
fi
case " $BACKENDS " in
*" postgres "*) [ -x "$PGBIN/initdb" ] || die "PostgreSQL 15 is missing (scripts/deps.sh installs postgresql-15)" ;;
esac

mkdir -p "$RESULTS"
WORK=$(mktemp -d /tmp/chatd-rest-bench.XXXXXX)
chmod 755 "$WORK" # the postgres user must reach its cluster directory below
CHATD_PID=""
PG_DATA=""
PG_PORT=""
FAILURES=()
ROWS=()

cleanup() {
  set +e
  [ -n "$CHATD_PID" ] && kill -KILL "$CHATD_PID" 2>/dev/null && wait "$CHATD_PID" 2>/dev/null
  [ -n "$PG_DATA" ] && as_pg "$PGBIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null 2>&1
  [ "${KEEP_TMP:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# CPU time (user + system, clock ticks) used so far by the given processes.
proc_ticks() {
  local p t sum=0
  for p in "$@"; do
    t=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null) || t=0
    sum=$((sum + ${t:-0}))
  done
  echo "$sum"
}

# The throwaway cluster's postmaster and its children (none for SQLite runs).
db_pids() {
  if [ -n "$PG_DATA" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
    local pm
    pm=$(head -1 "$PG_DATA/postmaster.pid")
    echo "$pm"
    pgrep -P "$pm" || true
  fi
}

db_ticks() {
  local pids
  mapfile -t pids < <(db_pids)
  proc_ticks "${pids[@]}"
}

# Busy clock ticks of the whole machine (first line), then of each core.
busy_ticks() {
  awk '/^cpu/ { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat
}

# Busy share of each core between two busy_ticks snapshots: "97/88%".
core_busy() {
  paste -d' ' <(echo "$1" | tail -n +2) <(echo "$2" | tail -n +2) |
    awk '{ b = $3 - $1; i = $4 - $2; out = out (NR > 1 ? "/" : "") int(100 * b / (b + i + 0.001)) } END { print out "%" }'
}

# Percent of one core the machine is busy over one second.
background_load() {
  local a b
  a=$(busy_ticks | head -1)
  sleep 1
  b=$(busy_ticks | head -1)
  awk -v a="$a" -v b="$b" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { split(a, x, " "); split(b, y, " "); printf "%d", 100 * (y[1] - x[1]) / hz }'
}

# Other work on the machine skews the figures: wait up to QUIET_WAIT seconds
# for it to drop under 15% of a core, then go on and say how busy it was.
wait_quiet() {
  local deadline=$((SECONDS + ${QUIET_WAIT:-60}))
  BACKGROUND=$(background_load)
  while [ "$BACKGROUND" -ge 15 ] && [ $SECONDS -lt $deadline ]; do
    BACKGROUND=$(background_load)
  done
  if [ "$BACKGROUND" -ge 15 ]; then
    echo "rest_bench: warning: the machine is busy with other work ($BACKGROUND% of a core)" >&2
  fi
}

# Pinning keeps the load generator from stealing the server's core: chatd on
# core 0, wrk on core 1 (PostgreSQL's own processes are left to the scheduler).
PIN=0
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  PIN=1
fi

machine_info() {
  echo "- command: \`DURATION=$DURATION make bench-rest\`"
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- CPU: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "- RAM: $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
  echo "- OS: Debian $(cat /etc/debian_version), Linux $(uname -r)"
  echo "- wrk: $(wrk -v 2>&1 | head -1 | awk '{ print $2 }'), SQLite $(sqlite3 --version | awk '{ print $1 }'), PostgreSQL $("$PGBIN/postgres" --version 2>/dev/null | awk '{ print $3 }')"
  local rev
  rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  [ -z "$(git -C "$ROOT" status --porcelain 2>/dev/null)" ] || rev="$rev + uncommitted changes"
  echo "- chatd: $("$CHATD" --version 2>/dev/null | head -1) (tree $rev)"
  if [ "$PIN" = 1 ]; then
    echo "- pinning: chatd on core 0 (taskset -c 0), wrk on core 1 (taskset -c 1) unless the row says unpinned"
  else
    echo "- pinning: none (taskset missing or a single core)"
  fi
}

pg_start() {
  local dir=$WORK/pg
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
  PG_PORT=$(free_port)
  as_pg "$PGBIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
    >"$dir/initdb.log" 2>&1 || die "initdb failed: see $dir/initdb.log"
  PG_DATA=$dir/data
  as_pg "$PGBIN/pg_ctl" -D "$PG_DATA" -l "$dir/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $dir" start >/dev/null ||
    die "PostgreSQL did not start: see $dir/server.log"
}

# start_chatd RUN_DIR DATABASE_URL THREADS LOG_LEVEL PINNED
start_chatd() {
  local dir=$1 url=$2 threads=$3 level=$4 pinned=$5 pin=()
  [ "$pinned" = 1 ] && pin=(taskset -c 0)
  PORT=$(free_port)
  # The run directory is the working directory, so no .env of the checkout
  # and no ./data are picked up.
  (
    cd "$dir"
    exec env PORT="$PORT" HOST=127.0.0.1 DATABASE_URL="$url" JWT_SECRET="$JWT_SECRET" \
      THREADS="$threads" LOG_LEVEL="$level" RATE_LIMIT_MESSAGES=0 RATE_LIMIT_AUTH=0 \
      "${pin[@]}" "$CHATD" 2>"$dir/chatd.log"
  ) &
  CHATD_PID=$!
  local deadline=$((SECONDS + 20))
  until curl -sf -o /dev/null "http://127.0.0.1:$PORT/health"; do
    kill -0 "$CHATD_PID" 2>/dev/null || die "chatd exited at start-up: $(tail -5 "$dir/chatd.log")"
    [ $SECONDS -lt $deadline ] || die "chatd did not answer /health within 20 s"
    sleep 0.1
  done
}

# SIGTERM lets chatd finish in-flight requests and flush the store, so the row
# count below includes everything it committed.
stop_chatd() {
  kill -TERM "$CHATD_PID"
  local deadline=$((SECONDS + 30)) rc=0
  while kill -0 "$CHATD_PID" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      echo "rest_bench: chatd did not exit within 30 s of SIGTERM; killing it" >&2
      kill -KILL "$CHATD_PID"
      break
    fi
    sleep 0.1
  done
  wait "$CHATD_PID" || rc=$?
  CHATD_PID=""
  [ $rc -eq 0 ] || FAILURES+=("$LABEL: chatd exited with status $rc after SIGTERM")
}

# Dies with chatd's exit status (or signal) and the end of its log when it is
# no longer running.
check_chatd_alive() {
  kill -0 "$CHATD_PID" 2>/dev/null && return 0
  local rc=0
  wait "$CHATD_PID" || rc=$?
  CHATD_PID=""
  if [ $rc -gt 128 ]; then
    rc="signal $(kill -l $((rc - 128)))"
  else
    rc="status $rc"
  fi
  die "chatd exited unexpectedly ($rc); its log ends with: $(tail -5 "$1/chatd.log")"
}

register() {
  local body
  body=$(curl -sS -X POST "http://127.0.0.1:$PORT/auth/register" \
    -H 'Content-Type: application/json' \
    -d "{\"email\":\"bench-$RANDOM@example.com\",\"password\":\"bench-password-1\",\"username\":\"bench\"}")
  TOKEN=$("$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["token"])' <<<"$body") ||
    die "registration failed: $body"
}

field() { # field NAME FILE: a value from wrk's RESULT line
  grep -m1 '^RESULT ' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"
}

# run BACKEND CLIENTS THREADS LOG_LEVEL PINNED [perf]
run() {
  local backend=$1 clients=$2 threads=$3 level=$4 pinned=$5 perf=${6:-}
  local n=$((${#ROWS[@]} + 1)) url dir wrk_threads=1 pin=() setup
  dir=$WORK/run-$n
  mkdir -p "$dir/acked"
  local tag="r$n"
  if [ "$pinned" = 1 ]; then
    setup="THREADS=$threads, pinned"
    pin=(taskset -c 1)
  else
    setup="THREADS=$threads, unpinned"
    [ "$clients" -ge 2 ] && wrk_threads=2
  fi
  [ "$level" = warn ] || setup="$setup, LOG_LEVEL=$level"
  [ -n "$perf" ] && setup="$setup, under perf"
  LABEL="$backend, $clients clients, $setup"
  echo
  echo "== run $n: $LABEL"

  if [ "$backend" = sqlite ]; then
    url="sqlite:$dir/chat.db"
  else
    as_pg "$PGBIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "chat_$n"
    url="postgres://postgres@127.0.0.1:$PG_PORT/chat_$n"
  fi
  start_chatd "$dir" "$url" "$threads" "$level" "$pinned"
  register
  wait_quiet
  check_chatd_alive "$dir"

  # CPU use over the run: chatd, wrk (bash's time), the database server,
  # and everything else on the machine (kernel softirq work included).
  local chatd0 db0 busy0 t0 perf_pid="" TIMEFORMAT='%U %S'
  chatd0=$(proc_ticks "$CHATD_PID")
  db0=$(db_ticks)
  busy0=$(busy_ticks)
  t0=$(date +%s.%N)
  if [ -n "$perf" ]; then
    perf record -g -p "$CHATD_PID" -o "$RESULTS/perf-$backend.data" -- sleep "$((DURATION > 3 ? DURATION - 2 : 1))" \
      >"$dir/perf.log" 2>&1 &
    perf_pid=$!
  fi
  {
    time BENCH_TOKEN=$TOKEN BENCH_ROOM=1 BENCH_TAG=$tag BENCH_ACK_DIR=$dir/acked \
      "${pin[@]}" wrk -t"$wrk_threads" -c"$clients" -d"${DURATION}s" --timeout 5s \
      -s "$ROOT/bench/post.lua" "http://127.0.0.1:$PORT" >"$dir/wrk.out" 2>&1
  } 2>"$dir/wrk.time" || {
    cat "$dir/wrk.out"
    check_chatd_alive "$dir"
    die "wrk failed (run $n: $LABEL)"
  }
  local chatd1 db1 busy1 t1
  chatd1=$(proc_ticks "$CHATD_PID")
  db1=$(db_ticks)
  busy1=$(busy_ticks)
  t1=$(date +%s.%N)
  cat "$dir/wrk.out"
  [ -n "$perf_pid" ] && wait "$perf_pid"
  stop_chatd
  cp "$dir/wrk.out" "$RESULTS/wrk-run$n.out"
  cp "$dir/chatd.log" "$RESULTS/chatd-run$n.log"

  grep -q '^RESULT ' "$dir/wrk.out" || die "wrk printed no RESULT line (see above)"
  local n201 other sock p50 p99 dur_us rate acked rows missing cpu busy
  n201=$(field status_201 "$dir/wrk.out")
  other=$(field status_other "$dir/wrk.out")
  sock=$(($(field connect_errors "$dir/wrk.out") + $(field read_errors "$dir/wrk.out") +
    $(field write_errors "$dir/wrk.out") + $(field timeouts "$dir/wrk.out")))
  p50=$(field p50_us "$dir/wrk.out")
  p99=$(field p99_us "$dir/wrk.out")
  dur_us=$(field duration_us "$dir/wrk.out")
  rate=$(awk -v n="$n201" -v d="$dur_us" 'BEGIN { printf "%d", n / (d / 1e6) }')
  # Percent of one core each: chatd/wrk/db/rest.
  cpu=$(awk -v c="$((chatd1 - chatd0))" -v d="$((db1 - db0))" \
    -v all="$(($(head -1 <<<"$busy1" | cut -d' ' -f1) - $(head -1 <<<"$busy0" | cut -d' ' -f1)))" \
    -v w="$(cat "$dir/wrk.time")" -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" 'BEGIN {
      split(w, u, " "); wt = (u[1] + u[2]) * hz; s = hz * (t1 - t0) / 100
      rest = all - c - d - wt; if (rest < 0) rest = 0
      printf "%d/%d/%d/%d", c / s, wt / s, d / s, rest / s }')
  busy=$(core_busy "$busy0" "$busy1")

  # Contents of every 201 (as echoed in the response) against the table.
  cat "$dir/acked"/acked.* 2>/dev/null | LC_ALL=C sort >"$dir/acked.sorted"
  acked=$(wc -l <"$dir/acked.sorted")
  if [ "$backend" = sqlite ]; then
    sqlite3 -readonly "$dir/chat.db" "SELECT content FROM messages WHERE content LIKE 'bench $tag %'"
  else
    psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "chat_$n" -XAt \
      -c "SELECT content FROM messages WHERE content LIKE 'bench $tag %'"
  fi | LC_ALL=C sort >"$dir/db.sorted"
  rows=$(wc -l <"$dir/db.sorted")
  missing=$(LC_ALL=C comm -23 "$dir/acked.sorted" "$dir/db.sorted" | wc -l)
  local dups
  dups=$(LC_ALL=C uniq -d "$dir/db.sorted" | wc -l)
  echo "201 responses: $n201, rows in messages: $rows, acknowledged but missing: $missing," \
    "duplicated rows: $dups, CPU % of a core (chatd/wrk/db/rest): $cpu, cores busy: $busy, background before: $BACKGROUND%"

  local stored="yes"
  [ "$acked" -eq "$n201" ] || {
    stored="unchecked"
    FAILURES+=("$LABEL: $((n201 - acked)) of $n201 201 responses had no content to check")
  }
  if [ "$missing" -ne 0 ] || [ "$dups" -ne 0 ]; then
    stored="NO: $missing missing, $dups duplicated"
    FAILURES+=("$LABEL: $missing acknowledged messages missing from the database, $dups duplicated")
  fi
  [ "$other" -eq 0 ] || FAILURES+=("$LABEL: $other non-201 responses ($(field other_statuses "$dir/wrk.out"))")
  [ "$sock" -eq 0 ] || FAILURES+=("$LABEL: $sock socket errors/timeouts")
  [ "$n201" -gt 0 ] || FAILURES+=("$LABEL: no 201 at all")
  if grep -q '"level":"error"\|level=error' "$dir/chatd.log"; then
    FAILURES+=("$LABEL: chatd logged errors (see $RESULTS/chatd-run$n.log)")
  fi

  local name=SQLite
  [ "$backend" = postgres ] && name=PostgreSQL
  ROWS+=("| $name | $clients | $setup | **$rate** | $(awk -v u="$p50" 'BEGIN { printf "%.2f", u / 1000 }') | $(awk -v u="$p99" 'BEGIN { printf "%.2f", u / 1000 }') | $((other + sock)) | $n201 | $rows | $stored | $cpu | $busy | $BACKGROUND% |")

  if [ -n "$perf" ]; then
    # Flat profile, then the split by library and by thread.
    local data=$RESULTS/perf-$backend.data
    {
      perf report -i "$data" --no-children --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40
      echo
      perf report -i "$data" --no-children --stdio -g none --sort dso 2>/dev/null | grep '%' | head -12
      echo
      perf report -i "$data" --no-children --stdio -g none --sort pid 2>/dev/null | grep '%' | head -8
    } >"$RESULTS/perf-$backend.txt" || true
    echo "perf report: $RESULTS/perf-$backend.txt"
  fi
}

JWT_SECRET=$(head -c 48 /dev/urandom | base64 -w0)
export LC_ALL=C.UTF-8

for backend in $BACKENDS; do
  [ "$backend" = postgres ] && pg_start
  for c in $CLIENTS; do
    run "$backend" "$c" 1 "${BENCH_LOG_LEVEL:-warn}" "$PIN"
  done
  if [ "$EXTRA_RUNS" = 1 ]; then
    run "$backend" 64 2 warn 0
    [ "$backend" = sqlite ] && run "$backend" 64 1 info "$PIN"
  fi
  if [ "$PERF" = 1 ]; then
    command -v perf >/dev/null || die "perf is missing (Debian package linux-perf)"
    run "$backend" 64 1 warn "$PIN" perf
  fi
done

{
  echo "### Machine"
  echo
  machine_info
  echo
  echo "### Results (${DURATION} s per run)"
  echo
  echo "| backend | clients | chatd | posts/s (201s) | p50 ms | p99 ms | errors | 201s | rows in DB | every 201 stored | CPU chatd/wrk/db/rest | cores busy | background before |"
  echo "|---|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"
  printf '%s\n' "${ROWS[@]}"
} | tee "$RESULTS/table.md"
echo
echo "raw output: $RESULTS"

if [ ${#FAILURES[@]} -gt 0 ]; then
  echo >&2
  echo "rest_bench: FAILED" >&2
  printf '  %s\n' "${FAILURES[@]}" >&2
  exit 1
fi

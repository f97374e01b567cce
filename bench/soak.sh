#!/usr/bin/env bash
# Soak test: chatd (fresh SQLite) under WebSocket churn, REST posts, history
# reads and logins for SOAK_SECONDS (default 600), with its RSS and open
# descriptors sampled to a CSV; exits non-zero unless both are flat after
# warm-up. docs/BENCHMARKS.md ("Soak") describes it and every setting
# (SOAK_* variables, CHATD_BIN, RESULTS_DIR); bench/soak.py does the work.
#
#   bench/soak.sh                                   10 minutes, build/chatd
#   SOAK_SECONDS=60 bench/soak.sh                   a quick look
#   CHATD_BIN=build/asan/chatd bench/soak.sh        under ASan: leaks fail it
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=python3

scripts/deps.sh
if [ -z "${CHATD_BIN:-}" ]; then
  make --no-print-directory build/chatd >/dev/null
elif [ "$CHATD_BIN" = build/asan/chatd ] || [ "$CHATD_BIN" = "$ROOT/build/asan/chatd" ]; then
  make --no-print-directory BUILD=build/asan SAN=1 CFLAGS="-O1 -g" build/asan/chatd >/dev/null
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
  export SOAK_CHECK_RSS=${SOAK_CHECK_RSS:-0}
fi
export CHATD_BIN=${CHATD_BIN:-$ROOT/build/chatd}
[ "${CHATD_BIN#/}" != "$CHATD_BIN" ] || CHATD_BIN=$ROOT/$CHATD_BIN
exec "$PYTHON" "$ROOT/bench/soak.py"

#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster on loopback, for running the store tests
# and benchmarks against PostgreSQL without any installed service.
#
#   scripts/pg_throwaway.sh start [PORT]   initdb + start + createdb chat;
#                                          prints the DATABASE_URL
#   scripts/pg_throwaway.sh stop [PORT]    stops it and deletes its files
#
# PORT defaults to 55432. The cluster lives in $PG_THROWAWAY_DIR (default
# /tmp/chatd-pg-PORT), trusts local connections, and listens on 127.0.0.1
# only. PG_FSYNC=off trades durability for speed (tests that never crash
# PostgreSQL itself); the default keeps fsync on, as in production.
# Example:
#   url=$(scripts/pg_throwaway.sh start) &&
#     CHATD_TEST_DATABASE_URL=$url build/tests/test_store_sqlite
#   scripts/pg_throwaway.sh stop
set -euo pipefail

PG_BIN=/usr/lib/postgresql/15/bin
cmd=${1:-}
port=${2:-55432}
dir=${PG_THROWAWAY_DIR:-/tmp/chatd-pg-$port}

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

start() {
  [ -x "$PG_BIN/initdb" ] || { echo "pg_throwaway: $PG_BIN/initdb missing (postgresql-15)" >&2; exit 1; }
  if [ -e "$dir/data/postmaster.pid" ]; then
    echo "pg_throwaway: a cluster already runs in $dir (stop it first)" >&2
    exit 1
  fi
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
  chmod 700 "$dir"
  if [ ! -d "$dir/data" ]; then
    as_postgres "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 \
      --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 1; }
  fi
  local opts="-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200"
  [ "${PG_FSYNC:-on}" = off ] && opts="$opts -c fsync=off -c full_page_writes=off"
  as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -w -t 60 -l "$dir/pg.log" -o "$opts" start \
    >/dev/null || { tail -n 30 "$dir/pg.log" >&2; exit 1; }
  "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres chat
  echo "postgres://postgres@127.0.0.1:$port/chat"
}

stop() {
  if [ -d "$dir/data" ]; then
    as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *)
    echo "usage: $0 start|stop [PORT]" >&2
    exit 2
    ;;
esac

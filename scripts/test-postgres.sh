#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster for the test suite and print the URL to use.
# Usage: eval "$(scripts/test-postgres.sh start)"   (exports QIFU_TEST_PG_URL)
#        scripts/test-postgres.sh stop
# Needs Debian's postgresql package (initdb, pg_ctl); runs the server as the 'postgres' user when root.
set -euo pipefail
PORT="${QIFU_TEST_PG_PORT:-55432}"
DIR="${QIFU_TEST_PG_DIR:-/tmp/qifu-pg-$PORT}"
BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
if [ -z "$BIN" ]; then
  echo "test-postgres: Debian's postgresql is not installed; PostgreSQL tests will be skipped" >&2
  exit 0
fi
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi; }
case "${1:-start}" in
  start)
    if ! "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
      rm -rf "$DIR"; mkdir -p "$DIR"
      [ "$(id -u)" = 0 ] && chown postgres "$DIR"
      as_pg "'$BIN/initdb' -D '$DIR/data' -A trust -U postgres -E UTF8 --locale=C.UTF-8" >/dev/null
      as_pg "'$BIN/pg_ctl' -D '$DIR/data' -l '$DIR/log' -w -o \"-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200\" start" >/dev/null
    fi
    echo "export QIFU_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres"
    ;;
  stop)
    as_pg "'$BIN/pg_ctl' -D '$DIR/data' -m fast stop" >/dev/null 2>&1 || true
    ;;
esac

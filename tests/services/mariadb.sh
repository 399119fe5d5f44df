#!/usr/bin/env bash
# A MariaDB server for the tests, examples and benches: `start` (installs Debian's mariadb-server if missing,
# initialises a private data directory, starts mariadbd on 127.0.0.1, creates the test user and database) and
# `stop`. Both are idempotent and safe to run concurrently (flock). Prints nothing on success but the DSN
# (go-sql-driver form) on `start` and `dsn`.
#
# Environment: MARIADB_PORT (13306), SERVICES_DIR (target/services), MARIADB_USER / MARIADB_PASS (consthash),
# MARIADB_DB (consthash).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DIR="${SERVICES_DIR:-$ROOT/target/services}/mariadb"
PORT="${MARIADB_PORT:-13306}"
USER_="${MARIADB_USER:-consthash}"
PASS="${MARIADB_PASS:-consthash}"
DB="${MARIADB_DB:-consthash}"
SOCK="$DIR/run/mysqld.sock"
PID="$DIR/run/mysqld.pid"

say() { echo "mariadb.sh: $*" >&2; }
dsn() { echo "$USER_:$PASS@tcp(127.0.0.1:$PORT)/$DB"; }
running() { [ -S "$SOCK" ] && mariadb-admin --socket="$SOCK" -uroot ping >/dev/null 2>&1; }

install() {
  command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] && return 0
  say "installing mariadb-server (Debian)"
  for attempt in 1 2; do
    if { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server mariadb-client >/dev/null; }; then
      return 0
    fi
    say "install attempt $attempt failed"
  done
  say "could not install mariadb-server"; exit 1
}

start() {
  install
  if running; then dsn; return 0; fi
  mkdir -p "$DIR/run" "$DIR/log"
  if [ ! -d "$DIR/data/mysql" ]; then
    rm -rf "$DIR/data"
    mariadb-install-db --user=mysql --datadir="$DIR/data" --auth-root-authentication-method=socket \
      --skip-test-db >"$DIR/log/install.log" 2>&1 || { cat "$DIR/log/install.log" >&2; say "mariadb-install-db failed"; exit 1; }
  fi
  chown -R mysql "$DIR/data" "$DIR/run" "$DIR/log"
  # mysqld must be able to reach its socket and data directories through every parent.
  local d="$DIR"; while [ "$d" != / ]; do chmod o+x "$d" 2>/dev/null || true; d="$(dirname "$d")"; done
  rm -f "$PID" "$SOCK"
  /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$DIR/data" --socket="$SOCK" --pid-file="$PID" \
    --bind-address=127.0.0.1 --port="$PORT" --log-error="$DIR/log/error.log" --skip-name-resolve \
    --innodb-buffer-pool-size=256M --innodb-flush-log-at-trx-commit=2 --max-connections=500 \
    </dev/null >/dev/null 2>&1 9>&- &
  for _ in $(seq 1 300); do
    running && break
    sleep 0.1
  done
  running || { tail -20 "$DIR/log/error.log" >&2 || true; say "mariadbd did not start (log: $DIR/log/error.log)"; exit 1; }
  mariadb --socket="$SOCK" -uroot <<SQL
CREATE DATABASE IF NOT EXISTS \`$DB\`;
CREATE USER IF NOT EXISTS '$USER_'@'127.0.0.1' IDENTIFIED BY '$PASS';
CREATE USER IF NOT EXISTS '$USER_'@'localhost' IDENTIFIED BY '$PASS';
GRANT ALL ON *.* TO '$USER_'@'127.0.0.1';
GRANT ALL ON *.* TO '$USER_'@'localhost';
FLUSH PRIVILEGES;
SQL
  dsn
}

stop() {
  [ -f "$PID" ] || return 0
  local pid; pid="$(cat "$PID" 2>/dev/null || true)"
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  rm -f "$PID"
}

mkdir -p "$DIR"
exec 9>"$DIR/.lock"
flock 9
case "${1:-}" in
  start) start ;;
  stop) stop ;;
  dsn) dsn ;;
  client) shift; exec mariadb --socket="$SOCK" -uroot "$@" ;;
  *) echo "usage: $0 start|stop|dsn|client [args]" >&2; exit 2 ;;
esac

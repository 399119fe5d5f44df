#!/usr/bin/env bash
# Relay memory with a dead destination: peak RSS grows with the configured queue bound, not with the number of
# lines sent. For each out_queue_lines bound Q in QUEUES and each line count N in COUNTS, consthash relays N
# graphite lines (statblast over TCP) to one live TCP sink and one destination nobody listens on; the dead
# destination's queue fills to Q and the rest of its lines are dropped and counted. Prints peak RSS (VmHWM), the
# dead destination's queue depth and drop count (from /metrics), and checks sent = delivered + dropped.
#
#   bash benches/memory.sh
#   QUEUES="10000 1000000" COUNTS="1000000 5000000" bash benches/memory.sh
set -euo pipefail
QUEUES=${QUEUES:-"10000 100000 1000000"}
COUNTS=${COUNTS:-"1000000 4000000"}
BASE_PORT=${BASE_PORT:-14100}

cd "$(dirname "$0")/.."
cargo build --release --workspace --quiet
BIN=$PWD/target/release
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

RELAY=$BASE_PORT LIVE=$((BASE_PORT + 1)) DEAD=$((BASE_PORT + 2)) ADMIN=$((BASE_PORT + 9))
wait_port() {
  local deadline=$((SECONDS + 20))
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    ((SECONDS < deadline)) || { echo "port $1 never opened" >&2; exit 1; }
    sleep 0.05
  done
}
metric() { # NAME FILTER: sum of the samples of a family whose labels contain FILTER
  curl -sf "http://127.0.0.1:$ADMIN/metrics" | awk -v n="$1" -v f="$2" 'index($1, n "{") == 1 && index($1, f) { s += $NF } END { printf "%.0f\n", s }'
}

printf '%-12s %-10s %10s %12s %12s %12s %s\n' queue_lines sent peak_MB dead_queued dead_dropped delivered books
for q in $QUEUES; do
  for n in $COUNTS; do
    "$BIN/echoserver" --count --servers "tcp://127.0.0.1:$LIVE" >"$WORK/echo.out" 2>/dev/null &
    local_echo=$!; PIDS+=("$local_echo")
    cat >"$WORK/relay.toml" <<TOML
[default]
internal_health_server_listen = "127.0.0.1:$ADMIN"
out_queue_lines = $q
out_block_timeout = 100
reconnect_backoff_max = 1000
[relay]
listen = "tcp://127.0.0.1:$RELAY"
msg_type = "graphite"
  [[relay.servers]]
  servers = ["tcp://127.0.0.1:$LIVE", "tcp://127.0.0.1:$DEAD"]
TOML
    wait_port "$LIVE"
    "$BIN/consthash" --config "$WORK/relay.toml" --loglevel error >"$WORK/relay.log" 2>&1 &
    relay=$!; PIDS+=("$relay")
    wait_port "$RELAY"
    "$BIN/statblast" --servers "tcp://127.0.0.1:$RELAY" --forks 1 --type graphite --keys 100000 --lines "$n" \
      --buffer 65536 --rate 0 >/dev/null 2>&1
    # settled: every line delivered, queued or dropped
    deadline=$((SECONDS + 120))
    while :; do
      sent=$(metric consthash_lines_sent_total "")
      dropped=$(metric consthash_lines_dropped_total "$DEAD")
      queued=$(metric consthash_out_queue_lines "$DEAD")
      ((sent + dropped + queued >= n)) && break
      ((SECONDS < deadline)) || { echo "not settled: sent=$sent dropped=$dropped queued=$queued" >&2; break; }
      sleep 0.2
    done
    peak=$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$relay/status")
    books=$([ $((sent + dropped + queued)) -eq "$n" ] && echo "sent=delivered+dropped+queued" || echo "MISMATCH")
    printf '%-12s %-10s %10s %12s %12s %12s %s\n' "$q" "$n" "$peak" "$queued" "$dropped" "$sent" "$books"
    kill -TERM "$relay"; wait "$relay" 2>/dev/null || true
    kill -TERM "$local_echo"; wait "$local_echo" 2>/dev/null || true
  done
done

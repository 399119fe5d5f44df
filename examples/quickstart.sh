#!/usr/bin/env bash
# Quick start: build consthash, start echoserver sinks, relay graphite (TCP) and statsd (UDP) lines through
# consthash with configs/quickstart.toml, and show where each line went.
#
#   bash examples/quickstart.sh            # 20 graphite + 20 statsd lines, printed by the sinks
#   LINES=1000000 bash examples/quickstart.sh   # more traffic: the sinks count instead of printing
set -euo pipefail
LINES=${LINES:-20}
cd "$(dirname "$0")/.."
cargo build --release --workspace --quiet
BIN=$PWD/target/release
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

mode=()
[ "$LINES" -gt 1000 ] && mode=(--count)
echo "== graphite sinks: tcp 12101-12103; statsd sinks: udp 12201-12202"
"$BIN/echoserver" "${mode[@]}" --servers tcp://127.0.0.1:12101,tcp://127.0.0.1:12102,tcp://127.0.0.1:12103 &
PIDS+=($!)
"$BIN/echoserver" "${mode[@]}" --servers udp://127.0.0.1:12201,udp://127.0.0.1:12202 &
PIDS+=($!)

echo "== consthash --config configs/quickstart.toml"
"$BIN/consthash" --config configs/quickstart.toml &
PIDS+=($!)
deadline=$((SECONDS + 20))
until (exec 3<>/dev/tcp/127.0.0.1/12003) 2>/dev/null; do
  ((SECONDS < deadline)) || { echo "consthash did not start" >&2; exit 1; }
  sleep 0.1
done

echo "== statblast: $LINES graphite lines over TCP, $LINES statsd lines over UDP"
"$BIN/statblast" --servers tcp://127.0.0.1:12003 --type graphite --lines "$LINES" --keys 10 --forks 1 --rate 0
"$BIN/statblast" --servers udp://127.0.0.1:18125 --type statsd --lines "$LINES" --keys 10 --forks 1 --rate 0

sleep 1 # give the sinks a moment to print what they received before stopping them
echo "== each key always reached the same sink (see [ECHO from ...] above); stopping, each echoserver prints its totals:"

#!/usr/bin/env bash
# statsd -> graphite with consthash as the statsd daemon: UDP statsd in, aggregated every 10 s, graphite out to
# an echoserver standing in for carbon, and the 10 s / 1 m bins written to /tmp/consthash-example/stats_*s.
#   bash examples/statsd-to-graphite.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --quiet
BIN=$PWD/target/release
mkdir -p /tmp/consthash-example
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$BIN/echoserver" --servers tcp://127.0.0.1:12101 & PIDS+=($!)
"$BIN/consthash" --config examples/statsd-to-graphite/relay.toml --prereg examples/statsd-to-graphite/prereg.toml & PIDS+=($!)
sleep 1 # consthash binds its UDP socket at start-up; UDP has no connection to wait for
echo "== 1000 statsd lines (counters, timers, gauges) over UDP"
"$BIN/statblast" --servers udp://127.0.0.1:18125 --type statsd --keys 5 --lines 1000 --rate 0 --forks 1
echo "== waiting for the next aligned 10 s flush (graphite lines from the accumulator show up below)"
sleep 11
echo "== consthash stops: a final flush writes every bin"
kill -TERM "${PIDS[1]}"; wait "${PIDS[1]}" || true
echo "== bins written by the file writer:"
tail -n 3 /tmp/consthash-example/stats_10s || true

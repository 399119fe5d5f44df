#!/usr/bin/env bash
# Loopback topology: two consthash processes, each hashing statsd over the accumulating listeners of both, so
# each key is aggregated by exactly one accumulator. Their graphite output goes to one echoserver.
#   bash examples/loopback.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --quiet
BIN=$PWD/target/release
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$BIN/echoserver" --servers tcp://127.0.0.1:12101 & PIDS+=($!)
"$BIN/consthash" --config examples/loopback/a.toml --prereg examples/loopback/prereg.toml --loglevel warning & PIDS+=($!)
"$BIN/consthash" --config examples/loopback/b.toml --prereg examples/loopback/prereg.toml --loglevel warning & PIDS+=($!)
for port in 18201 18202; do
  deadline=$((SECONDS + 20))
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    ((SECONDS < deadline)) || { echo "consthash did not start" >&2; exit 1; }
    sleep 0.1
  done
done
echo "== 2 x 1000 statsd counter lines for 5 keys, half into each process"
for port in 18125 18126; do
  for chunk in $(seq 0 19); do
    batch=""
    for i in $(seq 1 50); do batch+="loop.key$((i % 5)):1|c"$'\n'; done
    printf '%s' "$batch" >"/dev/udp/127.0.0.1/$port"   # one datagram of 50 lines
  done
done
echo "== the next aligned 5 s flush prints each key once, from one accumulator: stats.counters.loop.keyN.count 400"
sleep 6 # wait for that flush to reach the echoserver before stopping everything

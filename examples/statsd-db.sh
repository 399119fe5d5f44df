# Shared by examples/statsd-to-mysql.sh and examples/statsd-to-cassandra.sh (sourced, not run): builds
# consthash, starts it with examples/statsd-to-db/relay.toml and the PreReg text in $PREREG, sends a short statsd
# load, and stops consthash (its SIGTERM flush writes every bin).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --workspace --quiet
BIN=$PWD/target/release
WORK=$(mktemp -d /tmp/consthash-db-example.XXXXXX)
printf '%s\n' "$PREREG" >"$WORK/prereg.toml"
"$BIN/consthash" --config examples/statsd-to-db/relay.toml --prereg "$WORK/prereg.toml" 2>"$WORK/consthash.log" &
CONSTHASH=$!
trap 'kill -TERM $CONSTHASH 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  (exec 3<>/dev/tcp/127.0.0.1/16061) 2>/dev/null && break
  sleep 0.1
done
echo "== 20000 statsd lines (counters, timers, gauges) over 50 keys, over UDP"
"$BIN/statblast" --servers udp://127.0.0.1:18126 --type statsd --keys 50 --lines 20000 --rate 1ms --forks 1
echo "== waiting for a 5 s flush, then SIGTERM (the final flush writes the 1 m bin too)"
sleep 6
echo "== consthash's writer counters (/metrics):"
curl -fsS http://127.0.0.1:16061/metrics | grep -E '^consthash_(writer|indexer)_(records|dropped_records)_total' || true
kill -TERM $CONSTHASH; wait $CONSTHASH || true
trap - EXIT
grep -E ' ERRO ' "$WORK/consthash.log" || echo "(no errors logged; the log is $WORK/consthash.log)"

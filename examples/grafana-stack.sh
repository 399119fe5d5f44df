#!/usr/bin/env bash
# What Grafana sees, in one command: a database, consthash writing statsd into it with its reader API on, and
# graphite-api 1.1.3 with the stock cyanite finder in front of the reader (Grafana's Graphite datasource would
# point at graphite-api). Sends statsd counters at a known rate and prints graphite-api's /metrics/find and
# /render JSON, which you can compare with what was sent.
#   bash examples/grafana-stack.sh [cassandra|mysql]     (default cassandra)
# Ports: statsd udp 18126, consthash admin 16061, reader 18080 (/graphite), graphite-api 18090.
set -euo pipefail
cd "$(dirname "$0")/.."
STORE="${1:-cassandra}"
case "$STORE" in
  cassandra)
    DSN=$(bash tests/services/cassandra.sh start)
    OPTS='keyspace = "grafana_example", create_schema = true' ;;
  mysql)
    DSN=$(bash tests/services/mariadb.sh start)
    OPTS='table = "grafana_example", path_table = "grafana_example_path", create_schema = true' ;;
  *) echo "usage: $0 [cassandra|mysql]" >&2; exit 2 ;;
esac
bash tests/services/graphite.sh install
cargo build --release --quiet
WORK=$(mktemp -d /tmp/consthash-grafana-stack.XXXXXX)
bash examples/statsd-to-db/prereg.sh "$STORE" "$DSN" "$OPTS" 127.0.0.1:18080 "$WORK/reader-access.log" \
  >"$WORK/prereg.toml"
target/release/consthash --config examples/statsd-to-db/relay.toml --prereg "$WORK/prereg.toml" 2>"$WORK/consthash.log" &
CONSTHASH=$!
bash tests/services/graphite.sh api "$WORK/graphite-api" 18090 http://127.0.0.1:18080/graphite 2>"$WORK/graphite-api.log" &
GRAPHITE=$!
trap 'kill -TERM $GRAPHITE $CONSTHASH 2>/dev/null || true' EXIT
wait_http() { for _ in $(seq 1 300); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }
wait_http "http://127.0.0.1:18080/graphite/paths?query=*"
wait_http "http://127.0.0.1:18090/metrics/find?query=*"

echo "== statsd every second for 16 s: example.web1.requests:1|c, example.web2.requests:2|c, example.web3.requests:3|c"
echo "   so each full 5 s bin of sumSeries(example.*.requests) holds 5 x 6 = 30 (the first and last bins are partial)"
for _ in $(seq 1 16); do
  printf 'example.web1.requests:1|c\nexample.web2.requests:2|c\nexample.web3.requests:3|c\n' >/dev/udp/127.0.0.1/18126
  sleep 1
done
sleep 6 # the last bin's flush
echo "== graphite-api /metrics/find?query=example.*"
curl -fsS "http://127.0.0.1:18090/metrics/find?query=example.*"; echo
echo "== graphite-api /render?target=sumSeries(example.*.requests)&from=-30s&format=json"
curl -fsS "http://127.0.0.1:18090/render?target=sumSeries(example.*.requests)&from=-30s&format=json"; echo
echo "== what the reader was asked (its access log, $WORK/reader-access.log):"
tail -n 3 "$WORK/reader-access.log"

#!/usr/bin/env bash
# Starts a consthash cluster on this machine: CONSTHASH_NODE_COUNT nodes (default 4), each key aggregated by
# CONSTHASH_REPLICA_FACTOR of them (default 2). Every node hashes graphite and statsd over the accumulating
# listeners of all nodes with one member list (the loopback topology), so any node accepts any metric.
#   bash examples/cluster/start.sh                         # idempotent: running nodes are left alone
#   CONSTHASH_NODE_COUNT=3 CONSTHASH_REPLICA_FACTOR=1 CONSTHASH_OUTPUT=tcp://127.0.0.1:2003 bash examples/cluster/start.sh
# Variables: CONSTHASH_BASE_PORT (6000), CONSTHASH_FLUSH (10s), CONSTHASH_OUTPUT (accumulated graphite lines to a
# tcp://host:port), CONSTHASH_CASSANDRA (store them in Cassandra at host:port; keyspace CONSTHASH_CASSANDRA_KEYSPACE,
# default metric, created if missing; without either, a file writer per node under the cluster directory),
# CONSTHASH_CLUSTER_DIR (target/cluster), CONSTHASH_BIN (target/release/consthash, built when missing).
source "$(dirname "$0")/common.sh"
if ! [[ "$NODES" =~ ^[1-9][0-9]*$ && "$R" =~ ^[1-9][0-9]*$ ]] || ((R > NODES)); then
  echo "start.sh: need 1 <= CONSTHASH_REPLICA_FACTOR ($R) <= CONSTHASH_NODE_COUNT ($NODES)" >&2
  exit 2
fi
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release --quiet --bin consthash)
echo "$NODES" >"$DIR/nodes"
for i in $(seq 1 "$NODES"); do write_config "$i" "$NODES"; start_node "$i"; done
for i in $(seq 1 "$NODES"); do wait_ping "$i"; done

# Every node must place keys alike: compare their /hashcheck answers for the ingest sections, over a sample of keys.
# A node just (re)started is down in the others' rings until their next health checks see it, so the answers may
# take a few seconds to agree.
ingest() { # NODE KEY
  curl -fsS "http://127.0.0.1:$(port "$1" 1)/hashcheck?key=$2" |
    python3 -c 'import json, sys; h = json.load(sys.stdin); print(h["graphite-in"], h["statsd-in"])'
}
differs() { # prints the first disagreement, if any
  local k key first other i
  for k in $(seq 1 20); do
    key="cluster.check.key$k"
    first=$(ingest 1 "$key")
    for i in $(seq 2 "$NODES"); do
      other=$(ingest "$i" "$key")
      [ "$other" = "$first" ] || { echo "node $i places $key differently from node 1"; return; }
    done
  done
}
deadline=$((SECONDS + 20))
while disagreement=$(differs) && [ -n "$disagreement" ]; do
  ((SECONDS < deadline)) || { echo "$disagreement" >&2; exit 1; }
  sleep 0.5
done

printf '%-5s %-8s %-8s %-15s %-15s %-13s %-13s %s\n' node pid admin graphite-tcp statsd-udp acc-graphite acc-statsd
for i in $(seq 1 "$NODES"); do
  printf '%-5s %-8s %-8s %-15s %-15s %-13s %-13s %s\n' "$i" "$(cat "$DIR/node$i/pid")" "$(port "$i" 1)" \
    "$(port "$i" 3)" "$(port "$i" 4)" "$(port "$i" 5)" "$(port "$i" 6)" "$DIR/node$i"
done
echo "replica factor $R; every node places keys alike (20 keys checked); placement: curl 127.0.0.1:$(port 1 1)/placement"

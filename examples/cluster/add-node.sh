#!/usr/bin/env bash
# Grows a running cluster by one node: prints what would move (dry_run) on node 1, starts node N+1 with the
# member list of N+1 nodes, and adds its accumulating listeners to the rings of every running node, live.
# The configs of all nodes are rewritten with the new member list, so a restart keeps it.
source "$(dirname "$0")/common.sh"
[ -f "$DIR/nodes" ] || { echo "add-node.sh: no cluster running under $DIR (start.sh first)" >&2; exit 1; }
new=$((NODES + 1))
post() { curl -fsS -X POST -H 'X-Requested-By: add-node.sh' "$@"; }
for s in statsd:6 graphite:5; do
  echo "== $s: what moves on ${s%%:*}-in when node $new joins (dry run on node 1)"
  post "http://127.0.0.1:$(port 1 1)/${s%%:*}-in/addserver" -d dry_run=1 \
    --data-urlencode "server=tcp://127.0.0.1:$(port "$new" "${s##*:}")"
  echo
done
for i in $(seq 1 "$new"); do write_config "$i" "$new"; done
start_node "$new"
wait_ping "$new"
# section:offset of the new node's member in it (the accumulating sections' stand-in ring is the admin ports).
for i in $(seq 1 "$NODES"); do
  for s in statsd-in:6 graphite-in:5 statsd-acc:1 graphite-acc:1; do
    post "http://127.0.0.1:$(port "$i" 1)/${s%%:*}/addserver" \
      --data-urlencode "server=tcp://127.0.0.1:$(port "$new" "${s##*:}")" >/dev/null
  done
done
echo "$new" >"$DIR/nodes"
echo "node $new added: admin $(port "$new" 1), graphite $(port "$new" 3), statsd $(port "$new" 4)"

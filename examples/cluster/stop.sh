#!/usr/bin/env bash
# Stops the cluster started by start.sh (by pid file; each node flushes what it holds within shutdown_timeout).
source "$(dirname "$0")/common.sh"
for i in $(seq 1 "$NODES"); do
  if running "$i"; then kill -TERM "$(cat "$DIR/node$i/pid")"; fi
done
for i in $(seq 1 "$NODES"); do
  deadline=$((SECONDS + 15))
  while running "$i"; do
    ((SECONDS < deadline)) || { echo "node $i did not stop" >&2; exit 1; }
    sleep 0.1
  done
done
rm -f "$DIR/nodes"
echo "stopped $NODES node(s)"

#!/usr/bin/env bash
# Reader benchmark: find latency over PATHS (1 M) indexed paths and render of SERIES (100) series x 24 h at 10 s,
# for each store, asked of the consthash reader directly and through graphite-api 1.1.3 (cyanite finder).
#
#   bash benches/reader.sh                          # both stores, 5 runs
#   STORES=mysql RUNS=1 bash benches/reader.sh      # quick look
#
# Data: `target/release/examples/reader_bench load` (examples/reader_bench.rs) writes, through consthash's own
# indexer and writer code, the paths rb.s<a>.h<b>.m<c> (100 x 100 x 100) and rb.render.r<0..99>, and 8640 points
# of 10 s per render series ending at the load's last 10 s tick (TTL 2 days). Loaded once per store and kept
# (marker under target/bench/; delete it or set RELOAD=1 to load again; a load older than a day is redone).
# Then one consthash (examples/statsd-to-db/relay.toml and prereg.sh: that store's writer and the reader API, no
# traffic) and graphite-api in front.
#
# Cases, FINDS requests each (RENDERS for renders), one after another; each request differs from the last by a
# `{…,x<n>}` alternative that matches nothing, or by a window shifted 10 s, so the reader's 10 s caches never
# answer (what is measured is the store):
#   find2      depth 2:  {rb,x<n>}.*                -> rb's 101 children (all branches)
#   find4      depth 4:  rb.s7.h3.{m*,x<n>}         -> 100 leaves under one parent
#   find4wide  depth 4:  rb.*.h3.{m5,x<n>}          -> 100 leaves spread over 100 parents (the store scans every
#                                                      path of depth 4 under rb: the worst case; WIDE requests)
#   render     100 series x 24 h at 10 s (8640 slots each), /metrics?path=… (direct) or
#              /render?target=rb.render.*&format=json (graphite-api: its find, then one /metrics call)
# Per case it prints each run's p50 / p99 / max (ms), then min / median / max over the runs of p50 and p99.
set -euo pipefail
cd "$(dirname "$0")/.."
STORES=${STORES:-"cassandra mysql"}
PATHS=${PATHS:-1000000}
SERIES=${SERIES:-100}
POINTS=${POINTS:-8640}
RUNS=${RUNS:-5}
FINDS=${FINDS:-100}
WIDE=${WIDE:-10}
RENDERS=${RENDERS:-20}
NAME=${NAME:-rbench}
OUT=target/bench/reader
mkdir -p "$OUT"
cargo build --release --quiet --bin consthash --example reader_bench
BENCH=target/release/examples/reader_bench
bash tests/services/graphite.sh install

source benches/lib.sh # stats, field

PIDS=()
cleanup() { # stop and wait, so that the next store's run can take the ports
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

wait_http() { for _ in $(seq 1 600); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

for store in $STORES; do
  case $store in
    cassandra) DSN=$(bash tests/services/cassandra.sh start); OPTS="keyspace = \"$NAME\"" ;;
    mysql) DSN=$(bash tests/services/mariadb.sh start); OPTS="table = \"$NAME\", path_table = \"${NAME}_path\"" ;;
  esac
  MARK="$OUT/$store-$NAME-$PATHS-$SERIES-$POINTS.loaded"
  if [ -n "${RELOAD:-}" ] || [ ! -f "$MARK" ] || [ -n "$(find "$MARK" -mmin +1440)" ]; then
    echo "== $store: loading $PATHS paths and $SERIES x $POINTS points"
    $BENCH load "$store" "$DSN" "$NAME" "$PATHS" "$SERIES" "$POINTS" | tee "$MARK.tmp"
    mv "$MARK.tmp" "$MARK"
  fi
  LAST=$(field last <"$MARK")
  RPORT=18580; APORT=18590
  TIMES='["10s:48h", "1m:720h"]' bash examples/statsd-to-db/prereg.sh "$store" "$DSN" "$OPTS" \
    "127.0.0.1:$RPORT" none >"$OUT/prereg.toml"
  target/release/consthash --config examples/statsd-to-db/relay.toml --prereg "$OUT/prereg.toml" 2>"$OUT/consthash-$store.log" &
  PIDS+=($!)
  bash tests/services/graphite.sh api "$OUT/graphite-api-$store" $APORT "http://127.0.0.1:$RPORT/graphite" 2>"$OUT/graphite-api-$store.log" &
  PIDS+=($!)
  R="http://127.0.0.1:$RPORT/graphite"; A="http://127.0.0.1:$APORT"
  wait_http "$R/paths?query=rb"; wait_http "$A/metrics/find?query=rb"
  render_paths=$(for i in $(seq 0 $((SERIES - 1))); do printf '&path=rb.render.r%d' "$i"; done)
  # The render window: the loaded day, shifted back 10 s per request (the oldest requests still in the data).
  T0=$((LAST - POINTS * 10 + 10)); T1=$((LAST + 10))
  declare -A P50 P99
  for run in $(seq 1 "$RUNS"); do
    for via in direct graphite-api; do
      for c in find2 find4 find4wide render; do
        case $via:$c in
          direct:find2) args=("$FINDS" "$R/paths?query=%7Brb,x{n}%7D.*") ;;
          direct:find4) args=("$FINDS" "$R/paths?query=rb.s7.h3.%7Bm*,x{n}%7D") ;;
          direct:find4wide) args=("$WIDE" "$R/paths?query=rb.*.h3.%7Bm5,x{n}%7D") ;;
          direct:render) args=("$RENDERS" "$R/metrics?from={t}&to={u}$render_paths" "$T0" "$T1" 10) ;;
          graphite-api:find2) args=("$FINDS" "$A/metrics/find?query=%7Brb,x{n}%7D.*") ;;
          graphite-api:find4) args=("$FINDS" "$A/metrics/find?query=rb.s7.h3.%7Bm*,x{n}%7D") ;;
          graphite-api:find4wide) args=("$WIDE" "$A/metrics/find?query=rb.*.h3.%7Bm5,x{n}%7D") ;;
          graphite-api:render) args=("$RENDERS" "$A/render?target=rb.render.*&format=json&from={t}&until={u}" "$T0" "$T1" 10) ;;
        esac
        line=$($BENCH latency "${args[@]}")
        echo "$store run $run $via $c: $line"
        k="$via $c"
        P50[$k]="${P50[$k]:-} $(field p50_ms <<<"$line")"
        P99[$k]="${P99[$k]:-} $(field p99_ms <<<"$line")"
      done
    done
  done
  echo "== $store: $PATHS paths, render $SERIES x $POINTS at 10 s"
  for via in direct graphite-api; do
    for c in find2 find4 find4wide render; do
      k="$via $c"
      # shellcheck disable=SC2086
      printf '  %-26s %s ms (%d runs)\n' "$k p50" "$(printf '%s\n' ${P50[$k]} | stats 2)" "$RUNS"
      # shellcheck disable=SC2086
      printf '  %-26s %s ms (%d runs)\n' "$k p99" "$(printf '%s\n' ${P99[$k]} | stats 2)" "$RUNS"
    done
  done
  unset P50 P99
  cleanup; PIDS=()
done

#!/usr/bin/env bash
# Writer benchmark: an accumulator holding KEYS (1 M) statsd counter keys flushing every 10 s into MariaDB and into
# Cassandra, next to the floor of the same store on this machine (same driver, no consthash around it).
#
#   bash benches/writers.sh                                   # both stores, 5 interleaved runs each
#   STORES=cassandra RUNS=1 FLUSHES=2 bash benches/writers.sh # quick look
#
# Servers: tests/services/mariadb.sh and tests/services/cassandra.sh (started if needed, left running, as the
# tests leave them). Per store, before the timed runs: one short consthash run creates the schema (create_schema),
# and a sweep of the floor picks its best concurrency (unless WORKERS is set): for MariaDB over CONNECTIONS
# (statements in flight, one per connection; consthash's writer keeps two in flight), for Cassandra over
# CONCURRENCIES, which is then also consthash's `write_workers`.
#
# Then RUNS rounds, each a floor run and a consthash run (interleaved, so both see the same machine):
#  * consthash: a fresh process with a statsd TCP listener whose PreReg group accumulates (`times = ["10s:1h"]`,
#    BLACKHOLE backend) into the store's writer (no indexer), `metric_queue_length` QUEUE (the default 102 400 is
#    smaller than one flush of 1 M keys, which would be skipped as a whole). FLUSHES times: right after an aligned
#    10 s boundary the KEYS lines `bench.k<i>:1|c` are sent over one TCP connection (a prebuilt file, sent in a
#    thread while the measurement keeps polling); the accumulator must hold all KEYS keys before the next tick.
#    The flush time is from that aligned tick to the moment `consthash_writer_records_total` (/metrics, polled
#    every 20 ms) has grown by KEYS; points/s = KEYS / flush time. The next interval's lines are sent while a flush
#    is still being written, as live traffic would (so a flush that waits for the previous one includes the wait;
#    sustained points/s is all flushes' points over first tick to last flush stored; busy points/s is all flushes'
#    points over the time a flush was pending: from its tick, or from the previous flush stored if later, to its
#    being stored). `skipped_flushes` and `dropped_records` must stay 0. peak_MB is the process's VmHWM at the end.
#  * floor: `target/release/examples/writer_floor` (examples/writer_floor.rs) writes FLUSHES x KEYS points:
#    MariaDB, the writer's multi-row INSERT of BATCH rows, keys in order (as the writer sorts a batch), at the
#    chosen number of connections;
#    Cassandra, the writer's prepared `INSERT … USING TTL ?` in unlogged batches of the writer's BATCH_ROWS (10),
#    at most the chosen concurrency of batches in flight, LZ4.
#  * MariaDB: the bench table is truncated before every run, so each run inserts into an empty table.
#
# It prints per run and flush, then min / median / max of points/s and flush time per store, and the ratios to the
# floor's median of consthash's per-flush points/s (tick to stored: render, queue and writes included) and of its
# sustained and busy points/s (target >= 0.7; Cassandra: every flush stored in 10 s). Sustained is capped by the
# load: one flush of KEYS per 10 s gives at most KEYS*FLUSHES / (10*(FLUSHES-1) + flush secs), e.g. ~120 k/s for
# 1 M keys, 3 flushes, 5 s each, whatever the writer's speed; busy is not (it leaves out the time the writer waited
# for the next tick), so busy is the rate to hold against the floor, which writes its FLUSHES x KEYS points without
# a pause. When flushes overlap (each takes longer than its interval) busy equals sustained.
# LOGLEVEL=debug logs how long each stage of a flush takes (render, drain, sort, store) to consthash.log.
# KEEP_WORK=DIR keeps the configs, logs and load files in DIR instead of a temporary directory removed at exit.
set -euo pipefail

STORES=${STORES:-"mysql cassandra"}
KEYS=${KEYS:-1000000}
RUNS=${RUNS:-5}
FLUSHES=${FLUSHES:-3}
BATCH=${BATCH:-1000}
QUEUE=${QUEUE:-2000000}
CONCURRENCIES=${CONCURRENCIES:-"64 128 256 512 1024"}
CONNECTIONS=${CONNECTIONS:-"1 2 3"}
SWEEP_POINTS=${SWEEP_POINTS:-500000}
WORKERS=${WORKERS:-}
BASE_PORT=${BASE_PORT:-15300}

cd "$(dirname "$0")/.."
die() { echo "writers.sh: $*" >&2; exit 1; }
command -v python3 >/dev/null || die "python3 not found"
cargo build --release --workspace --quiet
cargo build --release --example writer_floor --quiet
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release
WORK=${KEEP_WORK:-$(mktemp -d)}
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$BASE_PORT
ADMIN=$((BASE_PORT + 1))
python3 -c "
import sys
with open(sys.argv[1], 'w') as f:
    f.writelines(f'bench.k{i}:1|c\n' for i in range(int(sys.argv[2])))" "$WORK/load" "$KEYS"
python3 -c "
import sys
with open(sys.argv[1], 'w') as f:
    f.writelines(f'warm.k{i}:1|c\n' for i in range(10))" "$WORK/warm"

cat >"$WORK/relay.toml" <<TOML
[default]
shutdown_timeout = 60
internal_health_server_listen = "127.0.0.1:$ADMIN"

[statsd-in]
listen = "tcp://127.0.0.1:$PORT"
msg_type = "statsd"
  [[statsd-in.servers]]            # unused: every line goes to the accumulator
  servers = ["tcp://127.0.0.1:9"]
TOML

# prereg STORE DSN WORKERS: the PreReg file of a consthash run.
prereg() {
  local options
  case $1 in
    mysql) options="{ table = \"bench\", create_schema = true, batch_count = $BATCH }" ;;
    cassandra) options="{ keyspace = \"consthash_bench\", create_schema = true, write_workers = $3 }" ;;
  esac
  cat >"$WORK/prereg.toml" <<TOML
[statsd]
listen_server = "statsd-in"
default_backend = "statsd-in"
  [[statsd.map]]
  noop = "true"
  [statsd.accumulator]
  backend = "BLACKHOLE"
  input_format = "statsd"
  output_format = "graphite"
  times = ["10s:1h"]
  max_keys = $((KEYS + KEYS / 10))
    [statsd.accumulator.writer]
    metric_queue_length = $QUEUE
    metrics = { driver = "$1", dsn = "$2", options = $options }
TOML
}

# consthash_run FILE FLUSHES: starts consthash, runs the measurement, stops it; prints one line per flush
# (`flush=<k> secs=<s> points_per_s=<r>`) and `peak_mb=<m> skipped=<n> dropped=<n>`.
consthash_run() {
  "$BIN/consthash" --config "$WORK/relay.toml" --prereg "$WORK/prereg.toml" --loglevel "${LOGLEVEL:-info}" 2>>"$WORK/consthash.log" &
  local pid=$!
  PIDS+=("$pid")
  python3 - "$pid" "$PORT" "$ADMIN" "$1" "$2" <<'PY'
import socket, sys, threading, time, urllib.request

pid, port, admin, path, flushes = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
data = open(path, 'rb').read()
keys = data.count(b'\n')

def metrics():
    out = {}
    body = urllib.request.urlopen(f'http://127.0.0.1:{admin}/metrics', timeout=5).read().decode()
    for line in body.splitlines():
        if line.startswith('#') or not line:
            continue
        name = line.split('{')[0].split(' ')[0]
        out[name] = out.get(name, 0) + float(line.rsplit(' ', 1)[1])
    return out

def wait_for(cond, secs, what):
    end = time.time() + secs
    while time.time() < end:
        try:
            m = metrics()
            if cond(m):
                return m
        except OSError:
            pass
        time.sleep(0.02)
    sys.exit(f'writers.sh: timed out waiting for {what}')

base = wait_for(lambda m: True, 30, 'consthash /metrics')['consthash_writer_records_total']
conn = socket.create_connection(('127.0.0.1', port))
ticks, done = [], []   # the aligned tick of each flush; when each was stored

def note_stored(m):
    """Notes the time of every flush whose records /metrics shows stored."""
    while len(done) < len(ticks) and m['consthash_writer_records_total'] >= base + keys * (len(done) + 1):
        done.append(time.time())
for k in range(flushes):
    boundary = (int(time.time()) // 10 + 1) * 10
    # Poll until the boundary, noting completed flushes, then send this interval's lines.
    while time.time() < boundary + 0.2:
        note_stored(metrics())
        time.sleep(0.02)
    sender = threading.Thread(target=conn.sendall, args=(data,))
    sender.start()
    tick = boundary + 10
    while sender.is_alive() or metrics()['consthash_accumulator_keys'] < keys:
        note_stored(metrics())
        if time.time() > tick - 0.5:
            sys.exit(f'writers.sh: the accumulator did not hold {keys} keys 0.5 s before the tick')
        time.sleep(0.02)
    ticks.append(tick)
end = ticks[-1] + 120
while len(done) < len(ticks):
    note_stored(metrics())
    if len(done) < len(ticks) and time.time() > end:
        sys.exit(f'writers.sh: flush {len(done) + 1} not stored 120 s after its tick')
    time.sleep(0.02)
m = metrics()
for k, (t, d) in enumerate(zip(ticks, done), 1):
    print(f'flush={k} secs={d - t:.3f} points_per_s={keys / (d - t):.0f}')
# Sustained: every flush's points over the time from the first tick to the last flush stored (capped by the load
# when a flush is stored within its interval), and over the time the writer had a flush to store (busy: from a
# flush's tick, or the previous flush stored if later, to this flush stored), the rate comparable to the floor's.
print(f'sustained_points_per_s={keys * len(ticks) / (done[-1] - ticks[0]):.0f}')
busy = sum(d - max(t, prev) for t, d, prev in zip(ticks, done, [ticks[0]] + done[:-1]))
print(f'busy_points_per_s={keys * len(ticks) / busy:.0f}')
hwm = next(l for l in open(f'/proc/{pid}/status') if l.startswith('VmHWM')).split()[1]
print(f"peak_mb={int(hwm) / 1024:.0f} skipped={m['consthash_writer_skipped_flushes_total']:.0f} "
      f"dropped={m['consthash_writer_dropped_records_total']:.0f}")
PY
  kill -TERM "$pid"
  wait "$pid" || true
  PIDS=("${PIDS[@]/$pid/}")
}

# floor STORE ADDR POINTS CONCURRENCY
floor() {
  case $1 in
    mysql) "$BIN/examples/writer_floor" mysql "mysql://consthash:consthash@$2/consthash" bench_10s "$3" "$BATCH" "$4" ;;
    cassandra) "$BIN/examples/writer_floor" cassandra "$2" consthash_bench metric "$3" "$4" ;;
  esac
}

truncate_table() {
  if [ "$1" = mysql ]; then bash tests/services/mariadb.sh client -e 'TRUNCATE TABLE consthash.bench_10s'; fi
}

# stats, median, field
source benches/lib.sh

for store in $STORES; do
  case $store in
    mysql) addr=$(bash tests/services/mariadb.sh start); addr=${addr#*@tcp(}; addr=${addr%%)*}
           dsn="consthash:consthash@tcp($addr)/consthash" ;;
    cassandra) addr=$(bash tests/services/cassandra.sh start); dsn=$addr ;;
    *) die "unknown store $store (mysql, cassandra)" ;;
  esac
  echo "== $store at $addr"
  workers=${WORKERS:-128}
  prereg "$store" "$dsn" "$workers"
  consthash_run "$WORK/warm" 1 >/dev/null   # creates the schema
  if [ -z "$WORKERS" ]; then
    case $store in
      mysql) sweep=$CONNECTIONS ;;
      cassandra) sweep=$CONCURRENCIES ;;
    esac
    best=0
    for c in $sweep; do
      rates=$(for _ in 1 2; do truncate_table "$store"; floor "$store" "$addr" "$SWEEP_POINTS" "$c" | field points_per_s; done)
      rate=$(printf '%s\n' "$rates" | sort -g | tail -1)
      echo "   floor sweep: concurrency $c: $(printf '%s ' $rates)points/s"
      if [ "${rate%.*}" -gt "$best" ]; then best=${rate%.*}; workers=$c; fi
    done
    echo "   concurrency $workers (the floor's; for Cassandra also write_workers)"
    prereg "$store" "$dsn" "$workers"
  fi
  : >"$WORK/floor.$store"
  : >"$WORK/consthash.$store"
  for run in $(seq 1 "$RUNS"); do
    truncate_table "$store"
    out=$(floor "$store" "$addr" $((KEYS * FLUSHES)) "$workers")
    echo "   run $run floor:     $out"
    echo "$out" >>"$WORK/floor.$store"
    truncate_table "$store"
    out=$(consthash_run "$WORK/load" "$FLUSHES")
    echo "$out" | sed "s/^/   run $run consthash: /"
    echo "$out" >>"$WORK/consthash.$store"
  done
  echo "-- $store: $RUNS runs, $FLUSHES flushes of $KEYS keys each"
  echo "   floor points/s:     $(field points_per_s <"$WORK/floor.$store" | stats)"
  echo "   consthash points/s: $(grep '^flush=' "$WORK/consthash.$store" | field points_per_s | stats) per flush (tick to stored)"
  echo "   sustained points/s: $(field sustained_points_per_s <"$WORK/consthash.$store" | stats) (first tick to last flush stored)"
  echo "   busy points/s:      $(field busy_points_per_s <"$WORK/consthash.$store" | stats) (while a flush was pending)"
  echo "   flush secs:         $(grep '^flush=' "$WORK/consthash.$store" | field secs | stats 2)"
  echo "   peak MB:            $(field peak_mb <"$WORK/consthash.$store" | stats)"
  echo "   skipped flushes:    $(field skipped <"$WORK/consthash.$store" | paste -sd+ | bc), dropped records: $(field dropped <"$WORK/consthash.$store" | paste -sd+ | bc)"
  f=$(field points_per_s <"$WORK/floor.$store" | median)
  p=$(grep '^flush=' "$WORK/consthash.$store" | field points_per_s | median)
  pmin=$(grep '^flush=' "$WORK/consthash.$store" | field points_per_s | sort -g | head -1)
  echo "   per flush consthash / floor (medians): $(echo "scale=2; $p / $f" | bc); worst flush / floor median: $(echo "scale=2; $pmin / $f" | bc)"
  c=$(field sustained_points_per_s <"$WORK/consthash.$store" | median)
  cmin=$(field sustained_points_per_s <"$WORK/consthash.$store" | sort -g | head -1)
  echo "   sustained consthash / floor (medians): $(echo "scale=2; $c / $f" | bc); worst run / floor median: $(echo "scale=2; $cmin / $f" | bc)"
  b=$(field busy_points_per_s <"$WORK/consthash.$store" | median)
  bmin=$(field busy_points_per_s <"$WORK/consthash.$store" | sort -g | head -1)
  echo "   busy consthash / floor (medians): $(echo "scale=2; $b / $f" | bc); worst run / floor median: $(echo "scale=2; $bmin / $f" | bc)"
done

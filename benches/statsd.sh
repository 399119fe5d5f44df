#!/usr/bin/env bash
# statsd daemon benchmark: UDP statsd in -> accumulator -> graphite lines out, consthash vs Etsy statsd 0.9.0.
#
#   bash benches/statsd.sh                                    # full run (several minutes)
#   RATES="250000 1000000" LINES=1000000 BIG_KEYS=200000 bash benches/statsd.sh   # quick check
#   DAEMONS=consthash bash benches/statsd.sh                  # without node/statsd
#   RUNS=5 bash benches/statsd.sh                             # min / median / max over 5 runs
#
# Workload: statblast over UDP, KEYS (100 k) keys, MIX 60/30/10 counters/timers/gauges (each key one type; with
# MIX_PER_LINE=1 each line draws its type, so every key is a counter, a timer and a gauge), BUFFER bytes per datagram
# (~48 lines), SOCKETS sending sockets (statblast targets, one sender task each: the kernel spreads datagrams over
# consthash's SO_REUSEPORT receive sockets by source address, so a single sending socket would reach only one of
# them). For each offered rate R in RATES (ascending) it sends max(LINES, R x SECS) lines; statblast's --rate
# (paced sleep per send) is SOCKETS x lines-per-datagram / R, the lines per datagram measured by a calibration
# send. The achieved rate is statblast's TOTAL rate. Within one run, a daemon that loses more than STOP_LOSS % at
# some rate is not run at the higher ones.
#
# Daemons (fresh processes per run, flush every FLUSH seconds):
#  * consthash: a UDP listener section (read_buffer_size RCVBUF, default udp_receivers and shards: one per worker
#    thread) whose PreReg group accumulates statsd and sends graphite to a backend_only section -> `echoserver
#    --count` on TCP.
#  * relay: the relay path, no accumulator: the same UDP listener routing every statsd line over its ring to one
#    TCP destination -> `echoserver --count`; a line counts as received when the sink counted it.
#  * statsd: node stats.js with the graphite backend -> a printing echoserver (flushInterval = FLUSH,
#    dumpMessages false, deleteIdleStats true).
#
# Measures:
#  * loss: consthash 1 - (consthash_lines_received_total (framed by the listener) -
#    consthash_accumulator_input_dropped_total) / sent, from /metrics, read once it stops growing; relay: 1 - lines
#    the sink counted / sent. Lines the kernel dropped are lost in these figures, as they never reach the daemon;
#    the kernel's own count is shown beside them: /proc/net/snmp Udp RcvbufErrors (delta, system wide) and, for
#    consthash, its consthash_udp_kernel_drops_total (the sockets' drop counters, in datagrams). statsd: 1 - sum of its own stats_counts.statsd.metrics_received over every flush the sink
#    printed, up to the first flush that starts 2 s after the send ended. (The management port's `stats` does not
#    carry metrics_received, and `counters` dumps every key.) Both count the lines the daemon parsed; datagrams the
#    kernel dropped (/proc/net/snmp Udp RcvbufErrors, delta shown) never reach either.
#  * cpu_s/M: user+sys (/proc/<pid>/stat) from the start of the send to the first flush after it, per million
#    lines received (so it includes flushing). peak_MB: VmHWM.
#  * max rate: per run, the highest R with loss <= 0.1 % (and achieved rate >= 95 % of R) below which every rate
#    also met it; reported as min / median / max over the runs. Per rate, loss is min / median / max over the
#    runs, the other columns medians, and `zero` counts the runs without a single lost line.
#  * mem/key: fresh daemon, VmRSS at idle; right after a flush send MEM_LINES lines (KEYS keys, MIX) at MEM_RATE;
#    VmRSS again before the next flush; divided by the distinct key names held (consthash_accumulator_keys, which
#    counts names; for statsd, which keeps one stat per (name, type), the expected distinct names among the
#    metrics_received of that flush). Includes the timer samples of that interval.
#  * consthash only, BIG_KEYS (1 M) counter keys: mem/key as above with counters only (3 x BIG_KEYS lines), then
#    the flush time: the sink `echoserver --count --expect 2K` (K = keys held, 2 lines per counter) is started
#    after the send (outgoing connections are dialled lazily), and the flush time is from the aligned tick
#    (unix time multiple of FLUSH) to the exit of the sink, i.e. formatting, routing and writing every line.
#
# Needs: cargo, curl; for statsd node and `bash tests/statsd_compat/install.sh` (STATSD_DIR). As root it raises
# net.core.rmem_max to RCVBUF for the run (restored on exit) so consthash gets the receive buffer it asks for;
# statsd (node dgram) keeps the kernel default net.core.rmem_default.
set -euo pipefail

RATES=${RATES:-"100000 250000 500000 1000000 2000000 4000000"}
LINES=${LINES:-5000000}
SECS=${SECS:-5}
KEYS=${KEYS:-100000}
MIX=${MIX:-60,30,10}
MIX_PER_LINE=${MIX_PER_LINE:-0}
BUFFER=${BUFFER:-1450}
SOCKETS=${SOCKETS:-8}
RUNS=${RUNS:-1}
FLUSH=${FLUSH:-10}
RCVBUF=${RCVBUF:-33554432}
STOP_LOSS=${STOP_LOSS:-10}
MEM_LINES=${MEM_LINES:-1000000}
MEM_RATE=${MEM_RATE:-200000}
BIG_KEYS=${BIG_KEYS:-1000000}
BIG_RATE=${BIG_RATE:-1000000}
DAEMONS=${DAEMONS:-"consthash relay statsd"}
BASE_PORT=${BASE_PORT:-15100}
STATSD_DIR=${STATSD_DIR:-/work/.cache/statsd}

cd "$(dirname "$0")/.."
die() { echo "statsd.sh: $*" >&2; exit 1; }
MIX_FLAG="" MIX_NOTE="one type per key"
if [ "$MIX_PER_LINE" = 1 ]; then MIX_FLAG=--mix-per-line MIX_NOTE="type drawn per line"; fi
command -v curl >/dev/null || die "curl not found"
if [[ " $DAEMONS " == *" statsd "* ]]; then
  command -v node >/dev/null || die "node not found: install node, then run 'bash tests/statsd_compat/install.sh' (or DAEMONS=consthash)"
  [ -f "$STATSD_DIR/node_modules/statsd/stats.js" ] ||
    die "statsd 0.9.0 not found in $STATSD_DIR: run 'bash tests/statsd_compat/install.sh' (or DAEMONS=consthash)"
fi
# BIN=dir: take consthash, statblast and echoserver from there instead of building (to compare two builds).
if [ -z "${BIN:-}" ]; then
  cargo build --release --workspace --quiet
  BIN=${CARGO_TARGET_DIR:-$PWD/target}/release
fi
WORK=$(mktemp -d)
PIDS=()
RMEM_MAX_OLD=""
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "$RMEM_MAX_OLD" ]; then echo "$RMEM_MAX_OLD" >/proc/sys/net/core/rmem_max 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

TCK=$(getconf CLK_TCK)
UDP_PORT=$BASE_PORT
SINK_PORT=$((BASE_PORT + 1))
ADMIN_PORT=$((BASE_PORT + 2))
MGMT_PORT=$((BASE_PORT + 3))
CAL_PORT=$((BASE_PORT + 4))

RMEM_NOTE="net.core.rmem_max $(cat /proc/sys/net/core/rmem_max)"
if [ "$(id -u)" = 0 ] && [ "$(cat /proc/sys/net/core/rmem_max)" -lt "$RCVBUF" ] &&
  old=$(cat /proc/sys/net/core/rmem_max) && echo "$RCVBUF" >/proc/sys/net/core/rmem_max 2>/dev/null; then
  RMEM_MAX_OLD=$old
  RMEM_NOTE="net.core.rmem_max raised $old -> $RCVBUF for this run (restored on exit)"
fi
RMEM_NOTE="$RMEM_NOTE; rmem_default $(cat /proc/sys/net/core/rmem_default) (statsd's socket)"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
peak_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
now() { date +%s.%N; }
rcvbuf_errors() { awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) c[$i] = i; h = 1 } else print $c["RcvbufErrors"] }' /proc/net/snmp; }
gt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'; }

wait_tcp() { # PORT [SECONDS]
  local deadline=$((SECONDS + ${2:-20}))
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    ((SECONDS > deadline)) && die "port $1 never opened"
    sleep 0.05
  done
}
metric() { # NAME: sum of the samples of one family on consthash's /metrics
  curl -sf --max-time 5 "http://127.0.0.1:$ADMIN_PORT/metrics" |
    awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $NF } END { printf "%.0f\n", s }'
}
wait_metrics() {
  local deadline=$((SECONDS + 20))
  until curl -sf --max-time 1 "http://127.0.0.1:$ADMIN_PORT/metrics" >/dev/null; do
    ((SECONDS > deadline)) && { cat "$WORK/daemon.log" >&2; die "consthash admin server never answered"; }
    sleep 0.05
  done
}
# Waits until consthash_lines_received_total has not moved for 1 s; prints it.
wait_received_stable() {
  local deadline=$((SECONDS + 60)) last=-1 same=0 cur
  while :; do
    cur=$(metric consthash_lines_received_total)
    if [ "$cur" = "$last" ]; then same=$((same + 1)); else same=0; last=$cur; fi
    ((same >= 5)) && break
    ((SECONDS > deadline)) && { echo "warning: lines_received still moving after 60 s" >&2; break; }
    sleep 0.2
  done
  echo "$cur"
}
# Sleeps until SKEW seconds after the next unix time multiple of FLUSH (consthash's aligned ticks).
sleep_past_tick() {
  sleep "$(awk -v t="$(now)" -v f="$FLUSH" -v s="${1:-0.3}" 'BEGIN { n = (int(t / f) + 1) * f; printf "%.3f", n + s - t }')"
}
# Waits for consthash_accumulator_flushes_total to pass N.
wait_flush_after() {
  local deadline=$((SECONDS + FLUSH + 20))
  while [ "$(metric consthash_accumulator_flushes_total)" -le "$1" ]; do
    ((SECONDS > deadline)) && die "consthash never flushed"
    sleep 0.2
  done
}
TARGETS=$(printf "udp://127.0.0.1:$UDP_PORT,%.0s" $(seq "$SOCKETS")); TARGETS=${TARGETS%,}
blast() { # LINES RATE_SLEEP KEYS MIX [extra...]: prints statblast's TOTAL line
  "$BIN/statblast" --servers "$TARGETS" --type statsd --forks 1 --buffer "$BUFFER" \
    --lines "$1" --rate "$2" --keys "$3" --mix "$4" $MIX_FLAG 2>/dev/null | grep '^TOTAL'
}
field() { sed -n "s/.*\b$1=\([0-9.]*\).*/\1/p"; }
# Per-sender sleep (ns) for an offered rate.
sleep_for() { awk -v r="$1" -v f="$SOCKETS" -v p="$PER_SEND" 'BEGIN { printf "%dns", f * p / r * 1e9 }'; }

start_bg() { # LOGFILE COMMAND...: starts a process, records its pid in LAST_PID and PIDS
  local log=$1; shift
  "$@" >"$log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}
stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# The admin server and the UDP statsd listener section both configurations start with.
listener_toml() {
  cat <<TOML
[default]
internal_health_server_listen = "127.0.0.1:$ADMIN_PORT"
shutdown_timeout = 2
[statsd-in]
listen = "udp://127.0.0.1:$UDP_PORT"
msg_type = "statsd"
read_buffer_size = $RCVBUF
TOML
}
consthash_conf() { # OUT_QUEUE_LINES
  { listener_toml; cat; } >"$WORK/consthash.toml" <<TOML
  [[statsd-in.servers]]            # unused: every line goes to the accumulator
  servers = ["tcp://127.0.0.1:$SINK_PORT"]
[carbon]
listen = "backend_only"
msg_type = "graphite"
out_queue_lines = ${1:-1000000}
pool_buffersize = 65536
  [[carbon.servers]]
  servers = ["tcp://127.0.0.1:$SINK_PORT"]
TOML
  cat >"$WORK/prereg.toml" <<TOML
[statsd]
listen_server = "statsd-in"
default_backend = "statsd-in"
  [[statsd.map]]
  noop = "true"
  [statsd.accumulator]
  backend = "carbon"
  input_format = "statsd"
  output_format = "graphite"
  accumulate_flush = "${FLUSH}s"
TOML
}
start_consthash() {
  start_bg "$WORK/daemon.log" "$BIN/consthash" --config "$WORK/consthash.toml" --prereg "$WORK/prereg.toml" --loglevel warning
  DAEMON_PID=$LAST_PID
  wait_metrics
}
# The relay path: the same UDP listener, every line routed over the ring to the sink, no accumulator.
start_relay() {
  { listener_toml; cat; } >"$WORK/relay.toml" <<TOML
out_queue_lines = 1000000
pool_buffersize = 65536
  [[statsd-in.servers]]
  servers = ["tcp://127.0.0.1:$SINK_PORT"]
TOML
  start_bg "$WORK/daemon.log" "$BIN/consthash" --config "$WORK/relay.toml" --loglevel warning
  DAEMON_PID=$LAST_PID
  wait_metrics
}
# Waits until consthash has sent everything it received (or 60 s); prints the sink's line count after stopping it.
relay_delivered() { # SINK_PID
  local deadline=$((SECONDS + 60)) got sent dropped
  wait_received_stable >/dev/null
  while :; do
    got=$(metric consthash_lines_received_total)
    sent=$(metric consthash_lines_sent_total)
    dropped=$(metric consthash_lines_dropped_total)
    ((sent + dropped >= got)) && break
    ((SECONDS > deadline)) && { echo "warning: relay still sending after 60 s" >&2; break; }
    sleep 0.2
  done
  kill -TERM "$1" 2>/dev/null || true # not our child here (a command substitution): wait for its totals instead
  deadline=$((SECONDS + 10))
  until grep -q '^TOTAL lines=' "$WORK/sink.log"; do
    ((SECONDS > deadline)) && { echo "warning: the sink printed no totals" >&2; break; }
    sleep 0.05
  done
  sed -n 's/^TOTAL lines=\([0-9]*\).*/\1/p' "$WORK/sink.log"
}
start_statsd() {
  cat >"$WORK/statsd.js" <<JS
{ port: $UDP_PORT, address: "127.0.0.1", mgmt_address: "127.0.0.1", mgmt_port: $MGMT_PORT,
  graphiteHost: "127.0.0.1", graphitePort: $SINK_PORT, backends: ["./backends/graphite"],
  flushInterval: $((FLUSH * 1000)), dumpMessages: false, deleteIdleStats: true }
JS
  start_bg "$WORK/daemon.log" node "$STATSD_DIR/node_modules/statsd/stats.js" "$WORK/statsd.js"
  DAEMON_PID=$LAST_PID
  wait_tcp "$MGMT_PORT"
}
# statsd's flushes seen by the printing sink: "<flush unix time> <metrics_received> <numStats>" per flush.
statsd_flushes() {
  awk '/stats_counts\.statsd\.metrics_received / { m[$NF] = $(NF-1) } /statsd\.numStats / { k[$NF] = $(NF-1) }
       END { for (t in m) print t, m[t], k[t] + 0 }' "$WORK/sink.log" | sort -n
}
wait_statsd_flush_after() { # UNIX_TIME: waits for a flush stamped after it
  local deadline=$((SECONDS + FLUSH + 30))
  until statsd_flushes | awk -v t="$1" '$1 > t { f = 1 } END { exit !f }'; do
    ((SECONDS > deadline)) && { tail -5 "$WORK/daemon.log" >&2; die "statsd never flushed after $1"; }
    sleep 0.2
  done
}

# One measured run. Appends "daemon run rate achieved per_send sent received loss% cpu_s/M peak_MB rcvbufE kdrops
# dropped" (kdrops: consthash's kernel-drop counter, datagrams; dropped: lines the daemon dropped itself).
run_rate() { # DAEMON RUN RATE
  local d=$1 run=$2 r=$3 lines
  lines=$(awk -v l="$LINES" -v r="$r" -v s="$SECS" 'BEGIN { n = r * s; printf "%d", (n > l ? n : l) }')
  if [ "$d" = statsd ]; then
    start_bg "$WORK/sink.log" "$BIN/echoserver" --servers "tcp://127.0.0.1:$SINK_PORT"
  else
    start_bg "$WORK/sink.log" "$BIN/echoserver" --count --servers "tcp://127.0.0.1:$SINK_PORT"
  fi
  local sink=$LAST_PID
  wait_tcp "$SINK_PORT"
  "start_$d"
  sleep 1
  local e0 c0 total t_end received kdrops=- dropped=-
  e0=$(rcvbuf_errors)
  c0=$(cpu_ticks "$DAEMON_PID")
  total=$(blast "$lines" "$(sleep_for "$r")" "$KEYS" "$MIX")
  t_end=$(date +%s)
  case $d in
  consthash)
    received=$(wait_received_stable)
    # Lines the listener framed but the accumulator's full input channel had to drop are lost too.
    dropped=$(metric consthash_accumulator_input_dropped_total)
    received=$((received - dropped))
    # Include the flush of what was received (statsd's figure includes its flushes too).
    wait_flush_after "$(metric consthash_accumulator_flushes_total)"
    kdrops=$(metric consthash_udp_kernel_drops_total)
    ;;
  relay)
    received=$(relay_delivered "$sink")
    # After relay_delivered's waits: the kernel-drop counter is read from /proc once a second.
    dropped=$(metric consthash_lines_dropped_total)
    kdrops=$(metric consthash_udp_kernel_drops_total)
    ;;
  statsd)
    wait_statsd_flush_after $((t_end + 2))
    received=$(statsd_flushes | awk -v t="$((t_end + 2))" '$1 <= t || !done { s += $2; if ($1 > t) done = 1 } END { print s + 0 }')
    ;;
  esac
  local c1 peak e1
  c1=$(cpu_ticks "$DAEMON_PID")
  peak=$(peak_kb "$DAEMON_PID")
  e1=$(rcvbuf_errors)
  stop "$DAEMON_PID"; stop "$sink"
  awk -v d="$d" -v run="$run" -v r="$r" -v tot="$total" -v got="${received:-0}" -v c0="$c0" -v c1="$c1" -v tck="$TCK" \
      -v pk="$peak" -v e="$((e1 - e0))" -v kd="$kdrops" -v dr="$dropped" 'BEGIN {
        split(tot, f, /[ =]/); sent = f[3]; rate = f[7]; ps = f[9]
        cpu = (c1 - c0) / tck
        printf "%s %d %d %.0f %.1f %d %d %.4f %.3f %.1f %d %s %s\n", d, run, r, rate, ps, sent, got,
               100 * (sent - got) / sent, (got > 0 ? cpu / (got / 1e6) : 0), pk / 1024, e, kd, dr }' |
    tee -a "$WORK/results" >&2
}

# Memory per distinct key name at KEYS keys (MIX). Writes "bytes_per_key keys" to $WORK/mem.DAEMON.
mem_per_key() { # DAEMON
  local d=$1 sink
  if [ "$d" = consthash ]; then
    start_bg "$WORK/sink.log" "$BIN/echoserver" --count --servers "tcp://127.0.0.1:$SINK_PORT"
  else
    start_bg "$WORK/sink.log" "$BIN/echoserver" --servers "tcp://127.0.0.1:$SINK_PORT"
  fi
  sink=$LAST_PID
  wait_tcp "$SINK_PORT"
  "start_$d"
  sleep 2
  local r0 r1 keys t
  if [ "$d" = consthash ]; then
    sleep_past_tick
    r0=$(rss_kb "$DAEMON_PID")
    blast "$MEM_LINES" "$(sleep_for "$MEM_RATE")" "$KEYS" "$MIX" >/dev/null
    wait_received_stable >/dev/null
    r1=$(rss_kb "$DAEMON_PID")
    keys=$(metric consthash_accumulator_keys)
  else
    t=$(date +%s)
    wait_statsd_flush_after "$t"
    sleep 0.3
    r0=$(rss_kb "$DAEMON_PID")
    blast "$MEM_LINES" "$(sleep_for "$MEM_RATE")" "$KEYS" "$MIX" >/dev/null
    sleep 1
    r1=$(rss_kb "$DAEMON_PID")
    t=$(date +%s)
    wait_statsd_flush_after "$t"
    # statsd holds one stat per (key, type); consthash one entry per key. Divide by distinct key names
    # instead: the expected number of distinct keys among the lines statsd received (uniform draws).
    keys=$(statsd_flushes | awk -v t="$t" -v k="$KEYS" '$1 > t && !d { m = $2; d = 1 }
      END { printf "%d", k * (1 - exp(-m / k)) }')
  fi
  stop "$DAEMON_PID"; stop "$sink"
  awk -v a="$r0" -v b="$r1" -v k="$keys" 'BEGIN { printf "%.0f %d\n", (k > 0 ? (b - a) * 1024 / k : 0), k }' >"$WORK/mem.$d"
}

# consthash with BIG_KEYS counter keys: writes "bytes_per_key keys flush_seconds lines_out" to $WORK/big.
big_flush() {
  consthash_conf $((2 * BIG_KEYS + 100000))
  start_consthash
  sleep 2
  sleep_past_tick
  local f0 r0 r1 keys tick sink
  f0=$(metric consthash_accumulator_flushes_total)
  r0=$(rss_kb "$DAEMON_PID")
  blast $((3 * BIG_KEYS)) "$(sleep_for "$BIG_RATE")" "$BIG_KEYS" 100,0,0 >/dev/null
  wait_received_stable >/dev/null
  r1=$(rss_kb "$DAEMON_PID")
  keys=$(metric consthash_accumulator_keys)
  [ "$(metric consthash_accumulator_flushes_total)" = "$f0" ] ||
    echo "warning: a flush happened during the $BIG_KEYS-key send; raise BIG_RATE or FLUSH" >&2
  tick=$(awk -v t="$(now)" -v f="$FLUSH" 'BEGIN { printf "%d", (int(t / f) + 1) * f }')
  rm -f "$WORK/sink.done"
  ( "$BIN/echoserver" --count --expect $((2 * keys)) --servers "tcp://127.0.0.1:$SINK_PORT" >"$WORK/sink.log" 2>&1 &
    echo $! >"$WORK/sink.pid"; wait $!; now >"$WORK/sink.done" ) &
  PIDS+=("$!")
  wait_tcp "$SINK_PORT"
  sink=$(cat "$WORK/sink.pid"); PIDS+=("$sink")
  local deadline=$((SECONDS + FLUSH + 120))
  until [ -s "$WORK/sink.done" ]; do
    if ((SECONDS > deadline)); then
      echo "warning: the sink did not get $((2 * keys)) lines in time; dropped: $(metric consthash_lines_dropped_total)" >&2
      kill "$sink" 2>/dev/null || true
      break
    fi
    sleep 0.01
  done
  sleep 0.1
  local fl=NaN
  [ -s "$WORK/sink.done" ] && fl=$(awk -v a="$(cat "$WORK/sink.done")" -v t="$tick" 'BEGIN { printf "%.2f", a - t }')
  local out; out=$(sed -n 's/^TOTAL lines=\([0-9]*\).*/\1/p' "$WORK/sink.log")
  stop "$DAEMON_PID"
  awk -v a="$r0" -v b="$r1" -v k="$keys" -v fl="$fl" -v o="${out:-0}" \
    'BEGIN { printf "%.0f %d %s %d\n", (k > 0 ? (b - a) * 1024 / k : 0), k, fl, o }' >"$WORK/big"
}

# Lines per datagram at BUFFER with this key space and mix.
start_bg "$WORK/cal.log" "$BIN/echoserver" --count --servers "udp://127.0.0.1:$CAL_PORT"
cal=$LAST_PID
sleep 0.3
PER_SEND=$("$BIN/statblast" --servers "udp://127.0.0.1:$CAL_PORT" --forks 1 --buffer "$BUFFER" --lines 200000 \
  --rate 0 --keys "$KEYS" --mix "$MIX" $MIX_FLAG | field per_send)
stop "$cal"
echo "calibration: $PER_SEND lines per datagram at --buffer $BUFFER; $RMEM_NOTE" >&2

: >"$WORK/results"
for d in $DAEMONS; do
  [ "$d" = consthash ] && consthash_conf
  for run in $(seq "$RUNS"); do
    for r in $RATES; do
      echo "== $d run $run rate $r" >&2
      run_rate "$d" "$run" "$r"
      tail -1 "$WORK/results" | awk -v s="$STOP_LOSS" '$8 > s { exit 1 }' || break
    done
  done
  if [ "$d" != relay ]; then
    echo "== $d memory per key" >&2
    mem_per_key "$d"
  fi
  if [ "$d" = consthash ] && [ "$BIG_KEYS" -gt 0 ]; then
    echo "== consthash $BIG_KEYS keys: memory and flush time" >&2
    big_flush
  fi
done

# Per (daemon, rate): loss min / median / max over the runs, medians of the rest, runs without loss.
# Per daemon: each run's highest rate below which every rate met the 0.1 % target, min / median / max.
awk '
  function med(list,   a, n, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    lo = a[1]; hi = a[n]; return a[int((n + 1) / 2)]
  }
  function add(k, f, v) { col[k, f] = (k, f) in col ? col[k, f] " " v : v }
  {
    k = $1 " " $3; if (!(k in n)) keys[++nk] = k; n[k]++
    for (f = 4; f <= 13; f++) add(k, f, $f)
    if ($6 == $7) zero[k]++
    ok = $8 <= 0.1 && $4 >= 0.95 * $3
    rk = $1 " " $2; if (!(rk in best)) { runs[$1] = runs[$1] " " rk; best[rk] = 0; broken[rk] = 0 }
    if (ok && !broken[rk]) best[rk] = $3; else broken[rk] = 1
  }
  END {
    for (i = 1; i <= nk; i++) {
      k = keys[i]; split(k, kr, " ")
      m = med(col[k, 8]); lmin = lo; lmax = hi
      printf "rate %s %s %d %.4f %.4f %.4f %d %.0f %.3f %.1f %s %s %s\n", kr[1], kr[2], n[k], lmin, m, lmax, zero[k] + 0,
        med(col[k, 4]), med(col[k, 9]), med(col[k, 10]), med(col[k, 11]), med(col[k, 12]), med(col[k, 13])
    }
    for (d in runs) {
      nr = split(runs[d], rr, " "); list = ""
      for (j = 1; j <= nr; j += 2) list = list " " best[rr[j] " " rr[j + 1]]
      m = med(list); printf "max %s %d %s %s %s\n", d, nr / 2, lo, m, hi
    }
  }' "$WORK/results" >"$WORK/summary"

echo
echo "workload: statsd over UDP, $KEYS keys, mix c/ms/g $MIX ($MIX_NOTE), $PER_SEND lines/datagram (--buffer $BUFFER), $SOCKETS sending"
echo "          sockets, max($LINES, rate x ${SECS}s) lines per rate, flush ${FLUSH}s, runs: $RUNS; $RMEM_NOTE"
printf '%-9s %-10s %4s %27s %4s %11s %7s %8s %8s %8s %9s\n' daemon offered/s runs "loss% min/median/max" zero \
  achieved/s cpu_s/M peak_MB rcvbufE kdrops dropped
sort -k2,2 -k3,3n "$WORK/summary" | awk '$1 == "rate" {
  printf "%-9s %-10s %4d %27s %4d %11.0f %7.3f %8.1f %8s %8s %9s\n", $2, $3, $4, sprintf("%.4f / %.4f / %.4f", $5, $6, $7),
    $8, $9, $10, $11, $12, $13, $14 }'
echo
for d in $DAEMONS; do
  awk -v d="$d" '$1 == "max" && $2 == d { printf "%-9s max rate with loss <= 0.1%% (every lower rate too), over %d runs: min %s / median %s / max %s", d, $3, $4, $5, $6 }' "$WORK/summary"
  if [ -s "$WORK/mem.$d" ]; then
    read -r bpk k <"$WORK/mem.$d"
    printf '; memory: %s B per key (%s of %s keys held, mix)' "$bpk" "$k" "$KEYS"
  fi
  if [ "$d" = consthash ] && [ -s "$WORK/big" ]; then
    read -r bb bk fl out <"$WORK/big"
    printf '; %s B per counter key (%s keys); flush of %s keys: %s s (%s lines out, tick -> last line at the sink)' \
      "$bb" "$bk" "$bk" "$fl" "$out"
  fi
  echo
done
echo "(zero: runs that lost no line; rcvbufE: kernel UDP RcvbufErrors during the send, system wide, median; kdrops:"
echo " consthash_udp_kernel_drops_total, datagrams; dropped: lines the daemon dropped itself (accumulator input full,"
echo " relay destination drops); a rate whose achieved rate is < 95 % of the offer is sender-limited and fails the target)"

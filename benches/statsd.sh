#!/usr/bin/env bash
# statsd daemon benchmark: UDP statsd in -> accumulator -> graphite lines out, consthash vs Etsy statsd 0.9.0.
#
#   bash benches/statsd.sh                                    # full run (several minutes)
#   RATES="250000 1000000" LINES=1000000 BIG_KEYS=200000 bash benches/statsd.sh   # quick check
#   DAEMONS=consthash bash benches/statsd.sh                  # without node/statsd
#
# Workload: statblast over UDP, KEYS (100 k) keys, MIX 60/30/10 counters/timers/gauges, BUFFER bytes per datagram
# (~48 lines), FORKS senders. For each offered rate R in RATES (ascending) it sends max(LINES, R x SECS) lines;
# statblast's --rate (paced sleep per send) is FORKS x lines-per-datagram / R, the lines per datagram measured by
# a calibration send. The achieved rate is statblast's TOTAL rate. A daemon that loses more than STOP_LOSS % at
# some rate is not run at the higher ones.
#
# Daemons (fresh processes per run, flush every FLUSH seconds):
#  * consthash: a UDP listener section (read_buffer_size RCVBUF) whose PreReg group accumulates statsd and sends
#    graphite to a backend_only section -> `echoserver --count` on TCP.
#  * statsd: node stats.js with the graphite backend -> a printing echoserver (flushInterval = FLUSH,
#    dumpMessages false, deleteIdleStats true).
#
# Measures:
#  * loss: consthash 1 - (consthash_lines_received_total (framed by the listener) - 
#    consthash_accumulator_input_dropped_total) / sent, from /metrics, read once it stops growing. statsd: 1 - sum of its own stats_counts.statsd.metrics_received over every flush the sink
#    printed, up to the first flush that starts 2 s after the send ended. (The management port's `stats` does not
#    carry metrics_received, and `counters` dumps every key.) Both count the lines the daemon parsed; datagrams the
#    kernel dropped (/proc/net/snmp Udp RcvbufErrors, delta shown) never reach either.
#  * cpu_s/M: user+sys (/proc/<pid>/stat) from the start of the send to the first flush after it, per million
#    lines received (so it includes flushing). peak_MB: VmHWM.
#  * max rate: the highest R with loss < 0.1 % (and achieved rate >= 95 % of R).
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
BUFFER=${BUFFER:-1450}
FORKS=${FORKS:-2}
RUNS=${RUNS:-1}
FLUSH=${FLUSH:-10}
RCVBUF=${RCVBUF:-33554432}
STOP_LOSS=${STOP_LOSS:-10}
MEM_LINES=${MEM_LINES:-1000000}
MEM_RATE=${MEM_RATE:-200000}
BIG_KEYS=${BIG_KEYS:-1000000}
BIG_RATE=${BIG_RATE:-1000000}
DAEMONS=${DAEMONS:-"consthash statsd"}
BASE_PORT=${BASE_PORT:-15100}
STATSD_DIR=${STATSD_DIR:-/work/.cache/statsd}

cd "$(dirname "$0")/.."
die() { echo "statsd.sh: $*" >&2; exit 1; }
command -v curl >/dev/null || die "curl not found"
if [[ " $DAEMONS " == *" statsd "* ]]; then
  command -v node >/dev/null || die "node not found: install node, then run 'bash tests/statsd_compat/install.sh' (or DAEMONS=consthash)"
  [ -f "$STATSD_DIR/node_modules/statsd/stats.js" ] ||
    die "statsd 0.9.0 not found in $STATSD_DIR: run 'bash tests/statsd_compat/install.sh' (or DAEMONS=consthash)"
fi
cargo build --release --workspace --quiet
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release
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
blast() { # LINES RATE_SLEEP KEYS MIX [extra...]: prints statblast's TOTAL line
  "$BIN/statblast" --servers "udp://127.0.0.1:$UDP_PORT" --type statsd --forks "$FORKS" --buffer "$BUFFER" \
    --lines "$1" --rate "$2" --keys "$3" --mix "$4" 2>/dev/null | grep '^TOTAL'
}
field() { sed -n "s/.*\b$1=\([0-9.]*\).*/\1/p"; }
# Per-sender sleep (ns) for an offered rate.
sleep_for() { awk -v r="$1" -v f="$FORKS" -v p="$PER_SEND" 'BEGIN { printf "%dns", f * p / r * 1e9 }'; }

start_bg() { # LOGFILE COMMAND...: starts a process, records its pid in LAST_PID and PIDS
  local log=$1; shift
  "$@" >"$log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}
stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

consthash_conf() { # OUT_QUEUE_LINES
  cat >"$WORK/consthash.toml" <<TOML
[default]
internal_health_server_listen = "127.0.0.1:$ADMIN_PORT"
shutdown_timeout = 2
[statsd-in]
listen = "udp://127.0.0.1:$UDP_PORT"
msg_type = "statsd"
read_buffer_size = $RCVBUF
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

# One measured run. Appends "daemon rate achieved per_send sent received loss% cpu_s/M peak_MB rcvbuf_err acc_drops".
run_rate() { # DAEMON RATE
  local d=$1 r=$2 lines
  lines=$(awk -v l="$LINES" -v r="$r" -v s="$SECS" 'BEGIN { n = r * s; printf "%d", (n > l ? n : l) }')
  if [ "$d" = consthash ]; then
    start_bg "$WORK/sink.log" "$BIN/echoserver" --count --servers "tcp://127.0.0.1:$SINK_PORT"
  else
    start_bg "$WORK/sink.log" "$BIN/echoserver" --servers "tcp://127.0.0.1:$SINK_PORT"
  fi
  local sink=$LAST_PID
  wait_tcp "$SINK_PORT"
  "start_$d"
  sleep 1
  local e0 c0 total t_end received
  e0=$(rcvbuf_errors)
  c0=$(cpu_ticks "$DAEMON_PID")
  total=$(blast "$lines" "$(sleep_for "$r")" "$KEYS" "$MIX")
  t_end=$(date +%s)
  if [ "$d" = consthash ]; then
    received=$(wait_received_stable)
    # Lines the listener framed but the accumulator's full input channel had to drop are lost too.
    received=$((received - $(metric consthash_accumulator_input_dropped_total)))
    # Include the flush of what was received (statsd's figure includes its flushes too).
    wait_flush_after "$(metric consthash_accumulator_flushes_total)"
  else
    wait_statsd_flush_after $((t_end + 2))
    received=$(statsd_flushes | awk -v t="$((t_end + 2))" '$1 <= t || !done { s += $2; if ($1 > t) done = 1 } END { print s + 0 }')
  fi
  local c1 peak e1 drops=-
  c1=$(cpu_ticks "$DAEMON_PID")
  peak=$(peak_kb "$DAEMON_PID")
  e1=$(rcvbuf_errors)
  [ "$d" = consthash ] && drops=$(grep -c 'accumulator input full' "$WORK/daemon.log" || true)
  stop "$DAEMON_PID"; stop "$sink"
  awk -v d="$d" -v r="$r" -v tot="$total" -v got="$received" -v c0="$c0" -v c1="$c1" -v tck="$TCK" -v pk="$peak" \
      -v e="$((e1 - e0))" -v dr="$drops" 'BEGIN {
        split(tot, f, /[ =]/); sent = f[3]; rate = f[7]; ps = f[9]
        cpu = (c1 - c0) / tck
        printf "%s %d %.0f %.1f %d %d %.3f %.3f %.1f %d %s\n", d, r, rate, ps, sent, got, 100 * (sent - got) / sent,
               (got > 0 ? cpu / (got / 1e6) : 0), pk / 1024, e, dr }' | tee -a "$WORK/results" >&2
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
  --rate 0 --keys "$KEYS" --mix "$MIX" | field per_send)
stop "$cal"
echo "calibration: $PER_SEND lines per datagram at --buffer $BUFFER; $RMEM_NOTE" >&2

: >"$WORK/results"
for d in $DAEMONS; do
  [ "$d" = consthash ] && consthash_conf
  for run in $(seq "$RUNS"); do
    for r in $RATES; do
      if [ -f "$WORK/stop.$d" ]; then continue; fi
      echo "== $d run $run rate $r" >&2
      run_rate "$d" "$r"
      tail -1 "$WORK/results" | awk -v s="$STOP_LOSS" '$7 > s { exit 1 }' || touch "$WORK/stop.$d"
    done
    rm -f "$WORK/stop.$d"
  done
  echo "== $d memory per key" >&2
  mem_per_key "$d"
  if [ "$d" = consthash ] && [ "$BIG_KEYS" -gt 0 ]; then
    echo "== consthash $BIG_KEYS keys: memory and flush time" >&2
    big_flush
  fi
done

# Median run per (daemon, rate) by loss, then one row per rate with both daemons side by side.
sort -k1,1 -k2,2n -k7,7g "$WORK/results" | awk '
  { k = $1 " " $2; rows[k] = rows[k] ? rows[k] "\n" $0 : $0; n[k]++ }
  END { for (k in rows) { split(rows[k], r, "\n"); print r[int((n[k] + 1) / 2)] } }' >"$WORK/median"

echo
echo "workload: statsd over UDP, $KEYS keys, mix c/ms/g $MIX, $PER_SEND lines/datagram (--buffer $BUFFER), $FORKS senders,"
echo "          max($LINES, rate x ${SECS}s) lines per rate, flush ${FLUSH}s, runs: $RUNS (median by loss); $RMEM_NOTE"
ds=($DAEMONS)
printf '%-10s' offered/s
for d in "${ds[@]}"; do printf ' | %-9s %11s %8s %7s %8s %8s' "$d" achieved/s loss% cpu_s/M peak_MB rcvbufE; done
[[ " $DAEMONS " == *" consthash "* ]] && printf ' %7s' accDrop
echo
for r in $(awk '{print $2}' "$WORK/median" | sort -nu); do
  printf '%-10s' "$r"
  for d in "${ds[@]}"; do
    row=$(awk -v d="$d" -v r="$r" '$1 == d && $2 == r' "$WORK/median")
    if [ -z "$row" ]; then printf ' | %-9s %11s %8s %7s %8s %8s' "" skipped - - - -; continue; fi
    echo "$row" | awk '{ printf " | %-9s %11.0f %8.3f %7.2f %8.1f %8d", "", $3, $7, $8, $9, $10 }'
  done
  [[ " $DAEMONS " == *" consthash "* ]] &&
    awk -v r="$r" '$1 == "consthash" && $2 == r { printf " %7s", $11 }' "$WORK/median"
  echo
done
for d in "${ds[@]}"; do
  best=$(awk -v d="$d" '$1 == d && $7 < 0.1 && $3 >= 0.95 * $2 { b = $2 } END { print b ? b : "none" }' "$WORK/median")
  read -r bpk k <"$WORK/mem.$d"
  printf '%-10s max rate with loss < 0.1%%: %-8s  memory: %s B per key (%s of %s keys held, mix)' "$d" "$best" "$bpk" "$k" "$KEYS"
  if [ "$d" = consthash ] && [ -s "$WORK/big" ]; then
    read -r bb bk fl out <"$WORK/big"
    printf '; %s B per counter key (%s keys); flush of %s keys: %s s (%s lines out, tick -> last line at the sink)' \
      "$bb" "$bk" "$bk" "$fl" "$out"
  fi
  echo
done
echo "(rcvbufE: kernel UDP RcvbufErrors during the send, system wide; accDrop: consthash 'accumulator input full'"
echo " warnings in its log (rate limited: events, not lines); a rate whose achieved rate is < 95 % of the offer is sender-limited)"

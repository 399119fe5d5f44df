#!/usr/bin/env bash
# End-to-end relay benchmark: statblast -> relay -> 4 TCP sinks on loopback, graphite lines.
#
#   bash benches/e2e.sh                 # 10 M lines, 100 k keys, 4 sending connections, 1 run per case
#   LINES=2000000 RUNS=3 bash benches/e2e.sh
#
# The sinks are one `echoserver --count --expect LINES` process with 4 TCP listeners; it exits as soon as every
# line has arrived. Per case the script prints: lines delivered, loss, end-to-end lines/s (wall clock from the
# start of statblast until the last line arrived), the relay's CPU seconds (user+sys from /proc) per million
# delivered lines, and its peak RSS (VmHWM). With more than one run, the median run (by lines/s) is shown.
# When the Debian package carbon-c-relay is installed, the same workload also runs through carbon-c-relay
# (submission mode, 2 workers, default queue) with the equivalent cluster, in the same invocation.
set -euo pipefail

LINES=${LINES:-10000000}
KEYS=${KEYS:-100000}
CONNS=${CONNS:-4}
RUNS=${RUNS:-1}
BASE_PORT=${BASE_PORT:-14000}

cd "$(dirname "$0")/.."
cargo build --release --workspace --quiet
BIN=$PWD/target/release
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

TCK=$(getconf CLK_TCK)
RELAY_PORT=$BASE_PORT
SINK_PORTS=($((BASE_PORT + 1)) $((BASE_PORT + 2)) $((BASE_PORT + 3)) $((BASE_PORT + 4)))

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
peak_rss_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
now() { date +%s.%N; }

wait_port() {
  local deadline=$((SECONDS + 20))
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    if ((SECONDS > deadline)); then echo "port $1 never opened" >&2; return 1; fi
    sleep 0.05
  done
}

# run_case NAME COMMAND... : one measured run; appends "name lines loss rate cpu_per_m rss_mb" to $WORK/results
run_case() {
  local name=$1; shift
  local sinks
  sinks=$(printf 'tcp://127.0.0.1:%s,' "${SINK_PORTS[@]}"); sinks=${sinks%,}
  "$BIN/echoserver" --count --expect "$LINES" --servers "$sinks" >"$WORK/echo.out" 2>/dev/null &
  local echo_pid=$!; PIDS+=("$echo_pid")
  for p in "${SINK_PORTS[@]}"; do wait_port "$p"; done
  "$@" >"$WORK/relay.log" 2>&1 &
  local relay_pid=$!; PIDS+=("$relay_pid")
  wait_port "$RELAY_PORT"
  local targets
  targets=$(printf "tcp://127.0.0.1:$RELAY_PORT,%.0s" $(seq "$CONNS")); targets=${targets%,}

  local cpu0 t0 t1
  cpu0=$(cpu_ticks "$relay_pid")
  t0=$(now)
  "$BIN/statblast" --servers "$targets" --forks 1 --type graphite --keys "$KEYS" --lines "$LINES" \
    --buffer 65536 --rate 0 >"$WORK/blast.out" 2>/dev/null
  # Wait for every line, or (lossy relay) for the relay to go idle: no CPU used for 1 s.
  local last_cpu=-1 idle_since=""
  while kill -0 "$echo_pid" 2>/dev/null; do
    local c; c=$(cpu_ticks "$relay_pid")
    if [[ "$c" == "$last_cpu" ]]; then
      [[ -z "$idle_since" ]] && idle_since=$(now)
      if awk -v a="$(now)" -v b="$idle_since" 'BEGIN{exit !(a-b > 1.0)}'; then
        kill -TERM "$echo_pid"; break
      fi
    else
      last_cpu=$c; idle_since=""
    fi
    sleep 0.01
  done
  wait "$echo_pid" || true
  t1=${idle_since:-$(now)}
  local cpu1 rss
  cpu1=$(cpu_ticks "$relay_pid")
  rss=$(peak_rss_kb "$relay_pid")
  kill -TERM "$relay_pid"; wait "$relay_pid" 2>/dev/null || true
  local got
  got=$(sed -n 's/^TOTAL lines=\([0-9]*\).*/\1/p' "$WORK/echo.out")
  awk -v n="$name" -v got="$got" -v sent="$LINES" -v t0="$t0" -v t1="$t1" -v c0="$cpu0" -v c1="$cpu1" \
      -v tck="$TCK" -v rss="$rss" 'BEGIN {
        secs = t1 - t0; cpu = (c1 - c0) / tck
        printf "%s %d %.2f %.0f %.3f %.1f\n", n, got, 100 * (sent - got) / sent, got / secs, \
               (got > 0 ? cpu / (got / 1e6) : 0), rss / 1024 }' >>"$WORK/results"
}

consthash_case() { # NAME HASHER
  cat >"$WORK/consthash.toml" <<TOML
[default]
hasher_algo = "$2"
hasher_vnodes = 100
[relay]
listen = "tcp://127.0.0.1:$RELAY_PORT"
msg_type = "graphite"
  [[relay.servers]]
  servers = [$(printf '"tcp://127.0.0.1:%s",' "${SINK_PORTS[@]}" | sed 's/,$//')]
TOML
  run_case "$1" "$BIN/consthash" --config "$WORK/consthash.toml" --loglevel warning
}

crelay_case() { # NAME CLUSTER_TYPE
  {
    echo "cluster sinks $2"
    printf '    127.0.0.1:%s\n' "${SINK_PORTS[@]}"
    echo "    ;"
    echo "match * send to sinks stop;"
  } >"$WORK/crelay.conf"
  run_case "$1" carbon-c-relay -f "$WORK/crelay.conf" -p "$RELAY_PORT" -w 2 -s
}

: >"$WORK/results"
for run in $(seq "$RUNS"); do
  consthash_case "consthash:crc32" crc32
  consthash_case "consthash:fnva" fnva
  consthash_case "consthash:md5" md5
  if command -v carbon-c-relay >/dev/null; then
    crelay_case "carbon-c-relay:jump_fnv1a_ch" jump_fnv1a_ch
    crelay_case "carbon-c-relay:fnv1a_ch" fnv1a_ch
    crelay_case "carbon-c-relay:carbon_ch" carbon_ch
  fi
done
[ -n "$(command -v carbon-c-relay)" ] || echo "(carbon-c-relay not installed: apt-get install carbon-c-relay to compare)"

echo "workload: $LINES graphite lines, $KEYS keys, $CONNS connections, 4 TCP sinks, runs per case: $RUNS"
printf '%-30s %12s %8s %14s %14s %10s\n' case delivered loss% lines/s cpu_s/M peak_MB
sort -k1,1 -k4,4n "$WORK/results" | awk -v runs="$RUNS" '
  { rows[$1] = rows[$1] ? rows[$1] "\n" $0 : $0; n[$1]++ }
  END { for (k in rows) { split(rows[k], r, "\n"); print r[int((n[k] + 1) / 2)] } }' |
  sort | awk '{ printf "%-30s %12d %8.2f %14.0f %14.3f %10.1f\n", $1, $2, $3, $4, $5, $6 }'

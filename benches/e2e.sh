#!/usr/bin/env bash
# End-to-end relay benchmark: statblast -> relay -> 4 TCP sinks on loopback, graphite lines, consthash and
# carbon-c-relay side by side in one run.
#
#   bash benches/e2e.sh                        # 10 M lines, 100 k keys, 4 connections, medians of 5 runs
#   LINES=2000000 RUNS=1 bash benches/e2e.sh   # a quick look
#   RINGS="jump_fnv1a_ch md5" REPS="1" bash benches/e2e.sh
#   RESULTS=/tmp/e2e.tsv bash benches/e2e.sh   # also keep every run's row
#
# Per scenario: lines delivered, loss, end-to-end lines/s (wall clock from the start of statblast until the last
# line arrived, or, for a lossy relay, until it went idle), the relay's CPU seconds (user+sys from /proc) per
# million delivered lines, its peak RSS (VmHWM), and the CPU seconds of statblast and echoserver (so you can see
# they are not the bottleneck). The sinks are one `echoserver --count --expect LINES×REP` process with 4 TCP
# listeners. Rings with instances (`=a`…`=d`) so that members on one host are distinct for every algorithm.
# The parse-and-route case sends the same lines to consthash with a PreReg rule rejecting them all, and reports
# lines per CPU second of consthash (lines/s per core). carbon-c-relay runs when the Debian package is installed
# (submission mode `-s`, 2 workers, default queue), with the equivalent `cluster ... <type> replication N`.
set -euo pipefail

LINES=${LINES:-10000000}
KEYS=${KEYS:-100000}
CONNS=${CONNS:-4}
RUNS=${RUNS:-5}
RINGS=${RINGS:-"jump_fnv1a_ch fnv1a_ch carbon_ch carbon_ch_c_relay md5"}
REPS=${REPS:-"1 2"}
BASE_PORT=${BASE_PORT:-14000}

cd "$(dirname "$0")/.."
cargo build --release --workspace --quiet
BIN=$PWD/target/release
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do pkill -TERM -P "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

TCK=$(getconf CLK_TCK)
RELAY_PORT=$BASE_PORT
ADMIN_PORT=$((BASE_PORT + 9))
SINK_PORTS=($((BASE_PORT + 1)) $((BASE_PORT + 2)) $((BASE_PORT + 3)) $((BASE_PORT + 4)))
INSTANCES=(a b c d)
TIME=()
[ -x /usr/bin/time ] && TIME=(/usr/bin/time -f "%U %S" -o)

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

targets() { local t; t=$(printf "tcp://127.0.0.1:$RELAY_PORT,%.0s" $(seq "$CONNS")); echo "${t%,}"; }
cpu_of_time_file() { [ -s "$1" ] && awk '{printf "%.2f", $1 + $2}' "$1" || echo "-"; }

blast() { # OUT_TIME_FILE
  ${TIME[@]:+"${TIME[@]}" "$1"} "$BIN/statblast" --servers "$(targets)" --forks 1 --type graphite --keys "$KEYS" \
    --lines "$LINES" --buffer 65536 --rate 0 >"$WORK/blast.out" 2>/dev/null
}

# run_case NAME REP COMMAND... : one measured run; appends a result row to $WORK/results
run_case() {
  local name=$1 rep=$2; shift 2
  local sinks expect=$((LINES * rep))
  sinks=$(printf 'tcp://127.0.0.1:%s,' "${SINK_PORTS[@]}"); sinks=${sinks%,}
  ${TIME[@]:+"${TIME[@]}" "$WORK/echo.time"} "$BIN/echoserver" --count --expect "$expect" --servers "$sinks" \
    >"$WORK/echo.out" 2>/dev/null &
  local echo_pid=$!; PIDS+=("$echo_pid")
  for p in "${SINK_PORTS[@]}"; do wait_port "$p"; done
  "$@" >"$WORK/relay.log" 2>&1 &
  local relay_pid=$!; PIDS+=("$relay_pid")
  wait_port "$RELAY_PORT" || { cat "$WORK/relay.log" >&2; exit 1; }
  local echo_real_pid; echo_real_pid=$(pgrep -n -f "echoserver --count --expect $expect") || echo_real_pid=$echo_pid
  local cpu0 t0 t1
  cpu0=$(cpu_ticks "$relay_pid")
  t0=$(now)
  blast "$WORK/blast.time"
  # Wait for every line, or (lossy relay) for the relay to go idle: no CPU used for 1 s.
  local last_cpu=-1 idle_since=""
  while kill -0 "$echo_real_pid" 2>/dev/null; do
    local c; c=$(cpu_ticks "$relay_pid")
    if [[ "$c" == "$last_cpu" ]]; then
      [[ -z "$idle_since" ]] && idle_since=$(now)
      if awk -v a="$(now)" -v b="$idle_since" 'BEGIN{exit !(a-b > 1.0)}'; then
        kill -TERM "$echo_real_pid"; break
      fi
    else
      last_cpu=$c; idle_since=""
    fi
    sleep 0.01
  done
  wait "$echo_pid" || true
  t1=${idle_since:-$(now)}
  local cpu1 rss got
  cpu1=$(cpu_ticks "$relay_pid")
  rss=$(peak_rss_kb "$relay_pid")
  kill -TERM "$relay_pid"; wait "$relay_pid" 2>/dev/null || true
  got=$(sed -n 's/^TOTAL lines=\([0-9]*\).*/\1/p' "$WORK/echo.out")
  awk -v n="$name" -v r="$rep" -v got="${got:-0}" -v want="$expect" -v t0="$t0" -v t1="$t1" -v c0="$cpu0" -v c1="$cpu1" \
      -v tck="$TCK" -v rss="$rss" -v bc="$(cpu_of_time_file "$WORK/blast.time")" -v ec="$(cpu_of_time_file "$WORK/echo.time")" 'BEGIN {
        secs = t1 - t0; cpu = (c1 - c0) / tck
        printf "%s rep%d %d %.2f %.0f %.3f %.1f %s %s\n", n, r, got, 100 * (want - got) / want, got / secs, \
               (got > 0 ? cpu / (got / 1e6) : 0), rss / 1024, bc, ec }' >>"$WORK/results"
}

member() { # ALGO INDEX -> hashkey with an instance, in the peer's own syntax
  local port=${SINK_PORTS[$2]} inst=${INSTANCES[$2]}
  case $1 in
    carbon_ch) echo "127.0.0.1:$port:$inst" ;;
    carbon_ch_c_relay | fnv1a_ch | jump_fnv1a_ch) echo "127.0.0.1:$port=$inst" ;;
    *) echo "tcp://127.0.0.1:$port" ;;
  esac
}

consthash_config() { # ALGO REP [PREREG_REJECT_ALL]
  local servers="" hashkeys=""
  for i in 0 1 2 3; do
    servers+="\"tcp://127.0.0.1:${SINK_PORTS[$i]}\","
    hashkeys+="\"$(member "$1" "$i")\","
  done
  cat <<TOML
[default]
hasher_algo = "$1"
hasher_vnodes = 100
num_dupe_replicas = $2
diverse_replicas = false   # all sinks share one host: carbon would otherwise never pick two of them
internal_health_server_listen = "127.0.0.1:$ADMIN_PORT"
[relay]
listen = "tcp://127.0.0.1:$RELAY_PORT"
msg_type = "graphite"
  [[relay.servers]]
  servers = [${servers%,}]
  hashkeys = [${hashkeys%,}]
TOML
}

consthash_case() { # ALGO REP
  consthash_config "$1" "$2" >"$WORK/consthash.toml"
  run_case "consthash:$1" "$2" "$BIN/consthash" --config "$WORK/consthash.toml" --loglevel warning
}

crelay_case() { # TYPE REP
  {
    echo "cluster sinks $1 replication $2"
    for i in 0 1 2 3; do echo "    $(member fnv1a_ch "$i")"; done   # c-relay's member syntax: host:port=instance
    echo "    ;"
    echo "match * send to sinks stop;"
  } >"$WORK/crelay.conf"
  run_case "carbon-c-relay:$1" "$2" carbon-c-relay -f "$WORK/crelay.conf" -p "$RELAY_PORT" -w 2 -s
}

# Placement check (not timed): a sample of lines through consthash to 4 printing sinks; every line must be at
# the destinations `consthash hashcheck` names for its key (all of them, with replication).
verify_case() { # ALGO REP
  consthash_config "$1" "$2" >"$WORK/consthash.toml"
  local pids=() i
  for i in 0 1 2 3; do
    "$BIN/echoserver" --servers "tcp://127.0.0.1:${SINK_PORTS[$i]}" >/dev/null 2>"$WORK/sink$i.out" &
    pids+=($!); PIDS+=($!)
  done
  for i in 0 1 2 3; do wait_port "${SINK_PORTS[$i]}"; done
  "$BIN/consthash" --config "$WORK/consthash.toml" --loglevel warning >"$WORK/relay.log" 2>&1 &
  local relay=$!; PIDS+=("$relay")
  wait_port "$RELAY_PORT"
  "$BIN/statblast" --servers "tcp://127.0.0.1:$RELAY_PORT" --forks 1 --type graphite --keys "$KEYS" --lines 2000 \
    --buffer 65536 --rate 0 >/dev/null 2>&1
  local deadline=$((SECONDS + 30))
  until [ "$(cat "$WORK"/sink?.out | grep -c 'ECHO from')" -ge $((2000 * $2)) ] || ((SECONDS > deadline)); do sleep 0.1; done
  kill -TERM "$relay"; wait "$relay" 2>/dev/null || true
  for i in 0 1 2 3; do kill -TERM "${pids[$i]}"; wait "${pids[$i]}" 2>/dev/null || true; done
  python3 - "$WORK" "$BIN/consthash" "$2" "$1" <<'PY'
import json, re, subprocess, sys
work, consthash, rep, algo = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
where = {}
for i in range(4):
    for line in open(f"{work}/sink{i}.out", errors="replace"):
        m = re.search(r"\[ECHO from tcp://127\.0\.0\.1:(\d+)\] (\S+) ", line)
        if m:
            where.setdefault(m.group(2), set()).add(m.group(1))
keys = sorted(where)
out = subprocess.run([consthash, "hashcheck", "--config", f"{work}/consthash.toml", *keys],
                     capture_output=True, text=True, check=True).stdout.splitlines()
bad = 0
for key, doc in zip(keys, out):
    want = {s.rsplit(":", 1)[1] for s in json.loads(doc)["relay"]["to_servers"]}
    if want != where[key] or len(want) != rep:
        bad += 1
        if bad <= 5:
            print(f"  {key}: at {sorted(where[key])}, ring says {sorted(want)}", file=sys.stderr)
print(f"placement check {algo} rep{rep}: {len(keys)} keys, {'all where the ring says' if bad == 0 else f'{bad} MISPLACED'}")
sys.exit(1 if bad else 0)
PY
}

# Parse and route only: every line is rejected by a PreReg rule after splitting; lines per consthash CPU second.
parse_route_case() {
  consthash_config md5 1 >"$WORK/consthash.toml"
  printf '[all]\nlisten_server = "relay"\ndefault_backend = "relay"\n[[all.map]]\nprefix = "graphitetest"\nreject = true\n' \
    >"$WORK/prereg.toml"
  "$BIN/consthash" --config "$WORK/consthash.toml" --prereg "$WORK/prereg.toml" --loglevel warning >"$WORK/relay.log" 2>&1 &
  local pid=$!; PIDS+=("$pid")
  wait_port "$RELAY_PORT"
  local cpu0 cpu1 n=0 deadline=$((SECONDS + 120))
  cpu0=$(cpu_ticks "$pid")
  blast "$WORK/blast.time"
  while ((n < LINES)) && ((SECONDS < deadline)); do
    n=$(curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '/^consthash_lines_rejected_total/ {print $2}')
    n=${n:-0}
    sleep 0.05
  done
  cpu1=$(cpu_ticks "$pid")
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  awk -v n="$n" -v c0="$cpu0" -v c1="$cpu1" -v tck="$TCK" \
    'BEGIN { cpu = (c1 - c0) / tck; printf "parse-route-reject rep1 %d 0 %.0f %.3f - - -\n", n, n / cpu, cpu / (n / 1e6) }' \
    >>"$WORK/results"
}

for rep in $REPS; do
  for ring in $RINGS; do verify_case "$ring" "$rep"; done
done
: >"$WORK/results"
have_crelay=$(command -v carbon-c-relay || true)
for run in $(seq "$RUNS"); do
  for rep in $REPS; do
    for ring in $RINGS; do
      consthash_case "$ring" "$rep"
      # c-relay's own rings: jump_fnv1a_ch, fnv1a_ch, and carbon_ch (= our carbon_ch_c_relay)
      case $ring in
        jump_fnv1a_ch | fnv1a_ch) [ -n "$have_crelay" ] && crelay_case "$ring" "$rep" ;;
        carbon_ch_c_relay) [ -n "$have_crelay" ] && crelay_case carbon_ch "$rep" ;;
      esac
    done
  done
  parse_route_case
done
[ -n "$have_crelay" ] || echo "(carbon-c-relay not installed: apt-get install carbon-c-relay to compare)"

echo "workload: $LINES graphite lines, $KEYS keys, $CONNS connections, 4 TCP sinks; medians of $RUNS run(s)"
echo "(parse-route-reject: lines/s column = lines per consthash CPU second, i.e. per core)"
printf '%-32s %-5s %12s %8s %12s %10s %9s %10s %9s\n' case rep delivered loss% lines/s cpu_s/M peak_MB blast_cpu echo_cpu
# median by lines/s of each (case, rep)
sort -k1,1 -k2,2 -k5,5n "$WORK/results" | awk '
  { k = $1 " " $2; if (n[k]++) rows[k] = rows[k] "\n" $0; else rows[k] = $0 }
  END { for (k in rows) { split(rows[k], r, "\n"); print r[int((n[k] + 1) / 2)] } }' | sort >"$WORK/medians"
awk '{ printf "%-32s %-5s %12d %8.2f %12.0f %10.3f %9s %10s %9s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }' "$WORK/medians"
echo
echo "lines/s of each case over its $RUNS run(s): min / median / max"
sort -k1,1 -k2,2 -k5,5n "$WORK/results" | awk '
  { k = $1 " " $2; v[k] = v[k] " " $5; n[k]++ }
  END { for (k in v) { split(substr(v[k], 2), a, " ")
        printf "%-38s %12.0f %12.0f %12.0f\n", k, a[1], a[int((n[k] + 1) / 2)], a[n[k]] } }' | sort
[ -z "${RESULTS:-}" ] || cp "$WORK/results" "$RESULTS"
if [ -n "$have_crelay" ]; then
  echo
  echo "ratios (consthash vs carbon-c-relay, same replication; MD5 rings vs c-relay carbon_ch): throughput x, CPU per line /, peak RSS"
  awk 'BEGIN { peer["jump_fnv1a_ch"] = "jump_fnv1a_ch"; peer["fnv1a_ch"] = "fnv1a_ch"; peer["carbon_ch"] = "carbon_ch"
               peer["carbon_ch_c_relay"] = "carbon_ch"; peer["md5"] = "carbon_ch" }
       { split($1, a, ":"); if (a[1] == "consthash") { ring[$1 " " $2] = a[2]; rep[$1 " " $2] = $2; ct[$1 " " $2] = $5; cc[$1 " " $2] = $6; cr[$1 " " $2] = $7 }
         else if (a[1] == "carbon-c-relay") { k = a[2] " " $2; rt[k] = $5; rc[k] = $6; rr[k] = $7 } }
       END { for (k in ct) { p = peer[ring[k]] " " rep[k]; if (p in rt)
             printf "%-20s %-5s vs c-relay %-14s throughput %6.1fx   cpu/line 1/%-6.1f   rss %5.1f MB vs %5.1f MB\n",
             ring[k], rep[k], peer[ring[k]], ct[k] / rt[p], (cc[k] > 0 ? rc[p] / cc[k] : 0), cr[k], rr[p] } }' "$WORK/medians" | sort
fi

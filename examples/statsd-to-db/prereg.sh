#!/usr/bin/env bash
# Prints the PreReg file of the statsd-to-database examples and benches: group `statsd` accumulating the
# `statsd-in` section (examples/statsd-to-db/relay.toml) into a writer and indexer of DRIVER, optionally with the
# reader API on API_LISTEN (base path /graphite, access log to API_LOG).
#   prereg.sh DRIVER DSN OPTIONS [API_LISTEN API_LOG]     OPTIONS: the driver options' inline-table body
# Environment: TIMES (["5s:168h", "1m:720h"]).
set -euo pipefail
TIMES=${TIMES:-'["5s:168h", "1m:720h"]'}
[ $# -ge 3 ] || { echo "usage: $0 DRIVER DSN OPTIONS [API_LISTEN API_LOG]" >&2; exit 2; }
cat <<TOML
[statsd]
listen_server = "statsd-in"
default_backend = "statsd-in"
  [[statsd.map]]
  noop = "true"
  [statsd.accumulator]
  backend = "BLACKHOLE"
  input_format = "statsd"
  output_format = "graphite"
  times = $TIMES
    [statsd.accumulator.writer]
    metrics = { driver = "$1", dsn = "$2", options = { $3 } }
    indexer = { driver = "$1", dsn = "$2", options = { $3 } }
TOML
if [ $# -ge 5 ]; then
  cat <<TOML
    [statsd.accumulator.api]
    listen = "$4"
    base_path = "/graphite"
    log_file = "$5"
TOML
fi

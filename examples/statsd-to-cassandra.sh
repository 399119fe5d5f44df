#!/usr/bin/env bash
# statsd -> consthash -> Cassandra, in one command: starts a Cassandra 5 (tests/services/cassandra.sh fetches it
# from Maven Central and runs it on JDK 17, CQL on 127.0.0.1:19042), runs consthash with a Cassandra writer and
# indexer, sends statsd, and prints stored rows with cqlsh (from PyPI, in a venv under target/).
#   bash examples/statsd-to-cassandra.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ADDR=$(bash tests/services/cassandra.sh start)
VENV=target/services/cqlsh-venv
[ -x "$VENV/bin/cqlsh" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install --quiet cqlsh==6.2.2; }
PREREG=$(bash examples/statsd-to-db/prereg.sh cassandra "$ADDR" 'keyspace = "example", create_schema = true')
source examples/statsd-db.sh
echo "== rows in Cassandra (cqlsh):"
"$VENV/bin/cqlsh" "${ADDR%:*}" "${ADDR#*:}" -e "
  SELECT id, time, point, TTL(point) FROM example.metric LIMIT 5;
  SELECT * FROM example.segment LIMIT 5;
  SELECT * FROM example.path LIMIT 5;"

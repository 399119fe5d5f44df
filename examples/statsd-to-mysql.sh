#!/usr/bin/env bash
# statsd -> consthash -> MariaDB, in one command: starts a MariaDB (tests/services/mariadb.sh installs and starts
# it on 127.0.0.1:13306), runs consthash with a MySQL writer and indexer, sends statsd, and prints stored rows with
# the mariadb client.
#   bash examples/statsd-to-mysql.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DSN=$(bash tests/services/mariadb.sh start)
PREREG=$(bash examples/statsd-to-db/prereg.sh mysql "$DSN" \
  'table = "example", path_table = "example_path", create_schema = true')
source examples/statsd-db.sh
echo "== rows in MariaDB (mariadb client):"
bash tests/services/mariadb.sh client consthash -e "
  SELECT COUNT(*) AS rows_5s, COUNT(DISTINCT stat) AS keys_5s FROM example_5s;
  SELECT stat, sum, mean, min, max, count, resolution, time FROM example_5s ORDER BY time DESC, stat LIMIT 5;
  SELECT stat, sum, mean, min, max, count, resolution, time FROM example_60s ORDER BY time DESC, stat LIMIT 5;
  SELECT path, length FROM example_path ORDER BY path LIMIT 5;"

#!/usr/bin/env bash
# A single-node Cassandra 5 for the tests, examples and benches, from Maven Central (org.apache.cassandra:
# cassandra-all) on JDK 17, with the server's stock limits (batch_size_fail_threshold and friends untouched).
# `start` fetches the jars if missing (kept under SERVICES_DIR between runs), writes a minimal config, starts the
# daemon on 127.0.0.1 and waits until CQL accepts; `stop` stops it. Both idempotent and safe to run concurrently
# (flock). `start` prints the contact point (host:port).
#
# Environment: CASSANDRA_PORT (19042), CASSANDRA_STORAGE_PORT (17000), CASSANDRA_VERSION (5.0.9),
# CASSANDRA_HEAP (768M), SERVICES_DIR (target/services), JAVA17 (JDK 17's java).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BASE="${SERVICES_DIR:-$ROOT/target/services}"
DIR="$BASE/cassandra"
VERSION="${CASSANDRA_VERSION:-5.0.9}"
PORT="${CASSANDRA_PORT:-19042}"
SPORT="${CASSANDRA_STORAGE_PORT:-17000}"
HEAP="${CASSANDRA_HEAP:-768M}"
LIB="$BASE/cassandra-$VERSION-lib"
PID="$DIR/cassandra.pid"

say() { echo "cassandra.sh: $*" >&2; }

find_java17() {
  if [ -n "${JAVA17:-}" ]; then echo "$JAVA17"; return; fi
  for j in /usr/lib/jvm/java-17-openjdk-amd64/bin/java /usr/lib/jvm/java-17-openjdk-*/bin/java; do
    [ -x "$j" ] && { echo "$j"; return; }
  done
  say "installing openjdk-17-jre-headless (Debian)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
  echo /usr/lib/jvm/java-17-openjdk-amd64/bin/java
}

# Is the CQL port accepting?
ready() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
alive() { [ -f "$PID" ] && kill -0 "$(cat "$PID")" 2>/dev/null; }

fetch() {
  [ -f "$LIB/.complete" ] && return 0
  command -v mvn >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq maven >/dev/null; }
  say "fetching cassandra-all $VERSION from Maven Central"
  local work="$BASE/cassandra-fetch"
  rm -rf "$work" "$LIB"; mkdir -p "$work"
  cat >"$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
<groupId>consthash</groupId><artifactId>cassandra-server</artifactId><version>1</version>
<dependencies><dependency><groupId>org.apache.cassandra</groupId><artifactId>cassandra-all</artifactId>
<version>$VERSION</version></dependency></dependencies></project>
POM
  (cd "$work" && mvn -B -q -Dmaven.repo.local="$BASE/m2" \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$LIB") >&2 || { say "maven could not fetch cassandra-all $VERSION"; exit 1; }
  touch "$LIB/.complete"
}

configure() {
  mkdir -p "$DIR/conf" "$DIR/data" "$DIR/logs"
  cat >"$DIR/conf/cassandra.yaml" <<YAML
cluster_name: consthash-test
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
num_tokens: 1
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: $SPORT
native_transport_port: $PORT
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:$SPORT"
commitlog_sync: periodic
commitlog_sync_period: 10000ms
authenticator: AllowAllAuthenticator
authorizer: AllowAllAuthorizer
auto_snapshot: false
data_file_directories: [$DIR/data/data]
commitlog_directory: $DIR/data/commitlog
saved_caches_directory: $DIR/data/saved_caches
hints_directory: $DIR/data/hints
cdc_raw_directory: $DIR/data/cdc_raw
YAML
  cat >"$DIR/conf/logback.xml" <<XML
<configuration><appender name="FILE" class="ch.qos.logback.core.FileAppender"><file>$DIR/logs/system.log</file>
<encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder></appender>
<root level="INFO"><appender-ref ref="FILE"/></root></configuration>
XML
  local f
  {
    for f in java.base/jdk.internal.misc java.management.rmi/com.sun.jmx.remote.internal.rmi java.rmi/sun.rmi.registry \
      java.rmi/sun.rmi.server java.sql/java.sql java.base/java.lang.ref jdk.unsupported/sun.misc \
      jdk.compiler/com.sun.tools.javac.file jdk.attach/sun.tools.attach; do
      echo "--add-exports=$f=ALL-UNNAMED"
    done
    for f in java.base/java.lang.module java.base/jdk.internal.loader java.base/jdk.internal.ref \
      java.base/jdk.internal.reflect java.base/jdk.internal.math java.base/jdk.internal.module \
      java.base/jdk.internal.util.jar jdk.management/com.sun.management.internal java.base/sun.nio.ch java.base/java.io \
      java.base/java.lang.reflect jdk.compiler/com.sun.tools.javac java.base/java.lang java.base/java.util; do
      echo "--add-opens=$f=ALL-UNNAMED"
    done
    echo "-Djdk.attach.allowAttachSelf=true"
    echo "-Dio.netty.tryReflectionSetAccessible=true"
  } >"$DIR/conf/jvm17.args"
}

start() {
  if alive && ready; then echo "127.0.0.1:$PORT"; return 0; fi
  local java; java="$(find_java17)"
  fetch
  if ! alive; then
    configure
    local jamm; jamm="$(ls "$LIB"/jamm-*.jar | head -1)"
    (cd "$DIR" && exec "$java" -Xms"$HEAP" -Xmx"$HEAP" -Xss256k -XX:+UseG1GC -XX:+ParallelRefProcEnabled \
      -XX:MaxTenuringThreshold=1 -ea -javaagent:"$jamm" @"$DIR/conf/jvm17.args" -Djava.net.preferIPv4Stack=true \
      -Dcassandra.config="file://$DIR/conf/cassandra.yaml" -Dcassandra-foreground=yes \
      -Dcassandra.storagedir="$DIR/data" -Dcassandra.logdir="$DIR/logs" \
      -Dlogback.configurationFile="$DIR/conf/logback.xml" -Dcassandra.skip_wait_for_gossip_to_settle=0 \
      -Dcassandra.ring_delay_ms=1000 -cp "$DIR/conf:$LIB/*" org.apache.cassandra.service.CassandraDaemon \
      </dev/null >"$DIR/logs/stdout.log" 2>&1 9>&-) &
    echo $! >"$PID"
  fi
  for _ in $(seq 1 1200); do
    ready && break
    alive || { tail -30 "$DIR/logs/stdout.log" >&2; say "cassandra exited during start (logs: $DIR/logs)"; exit 1; }
    sleep 0.1
  done
  ready || { say "cassandra did not accept CQL on 127.0.0.1:$PORT within 120 s (logs: $DIR/logs)"; exit 1; }
  echo "127.0.0.1:$PORT"
}

stop() {
  alive || { rm -f "$PID"; return 0; }
  local pid; pid="$(cat "$PID")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$PID"
}

mkdir -p "$DIR"
exec 9>"$DIR/.lock"
flock 9
case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac

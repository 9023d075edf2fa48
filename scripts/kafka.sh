#!/usr/bin/env bash
# Makes a real Apache Kafka 4.x broker available on loopback for Runnel's tests and prints its
# bootstrap address (the only line on stdout; everything else goes to stderr so callers can write
# BROKERS="$(bash scripts/kafka.sh)").
#
# No tarball and no Docker: Maven resolves org.apache.kafka:kafka_2.13 and its dependencies (plus a
# log4j2 binding, which the published POM leaves out) into .runnel/kafka/lib, and the broker runs
# from that classpath as a single KRaft node (combined broker+controller). Idempotent: a broker
# already answering on the port is reused; tests isolate themselves with unique topic prefixes.
#
# Usage: scripts/kafka.sh [start|stop]. `start` (the default) is described above; `stop` stops the
# broker on RUNNEL_KAFKA_PORT (SIGTERM, a controlled shutdown, then SIGKILL after 30 s) and keeps its
# data, so a later `start` resumes it with every record it held: tests use the pair to take a
# dedicated broker away and bring it back.
#
# Environment: RUNNEL_KAFKA_PORT (default 19092), RUNNEL_KAFKA_CONTROLLER_PORT (default the next
# port), RUNNEL_KAFKA_DIR (default <repo>/.runnel/kafka; holds the jars), RUNNEL_KAFKA_DATA_DIR
# (default RUNNEL_KAFKA_DIR; the broker's data, configuration, pid and log, so a dedicated broker
# can live in a temporary directory and still share the downloaded jars), RUNNEL_KAFKA_VERSION
# (default 4.1.1), RUNNEL_KAFKA_HEAP (default 512m).
set -euo pipefail
cd "$(dirname "$0")/.."

COMMAND="${1:-start}"
case "$COMMAND" in
start | stop) ;;
*)
  echo "usage: scripts/kafka.sh [start|stop]" >&2
  exit 2
  ;;
esac

PORT="${RUNNEL_KAFKA_PORT:-19092}"
CONTROLLER_PORT="${RUNNEL_KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
HEAP="${RUNNEL_KAFKA_HEAP:-512m}"
# shellcheck source=scripts/kafka-common.sh
source scripts/kafka-common.sh
STATE="${RUNNEL_KAFKA_DATA_DIR:-$BASE}"
DATA="$STATE/data-$PORT"
CONF="$STATE/conf-$PORT"
PIDFILE="$STATE/broker-$PORT.pid"
LOGFILE="$STATE/broker-$PORT.log"
ADDRESS="127.0.0.1:${PORT}"

log() { echo "kafka.sh: $*" >&2; }
fail() {
  echo "kafka.sh: $*" >&2
  exit 1
}

# A TCP connect is not enough: the port opens before KRaft has elected itself and registered the
# broker, so ask the broker for its API versions, which it answers only once it serves requests.
answers() {
  [ -f "$LIB/.complete" ] || return 1
  java -cp "$LIB/*" -Dlog4j2.configurationFile="$CONF/tools-log4j2.properties" \
    org.apache.kafka.tools.BrokerApiVersionsCommand --bootstrap-server "$ADDRESS" >/dev/null 2>&1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

running_pid() {
  [ -f "$PIDFILE" ] || return 1
  local pid
  pid="$(cat "$PIDFILE")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q 'kafka\.Kafka' "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

mkdir -p "$BASE" "$STATE"
# Two test runs starting (or stopping) at once must not both download, format or start the broker.
exec 9>"$STATE/.lock-$PORT"
flock 9

if [ "$COMMAND" = stop ]; then
  if ! pid="$(running_pid)"; then
    log "no broker of ours is running on $ADDRESS"
    exit 0
  fi
  log "stopping the broker on $ADDRESS (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "the broker did not stop within 30 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$PIDFILE"
  exit 0
fi

command -v java >/dev/null 2>&1 || fail "java is not installed (Kafka 4.x needs Java 17+)"

# Fast path: our broker is already up.
if running_pid >/dev/null && port_open; then
  echo "$ADDRESS"
  exit 0
fi

kafka_fetch_jars

mkdir -p "$CONF"
kafka_log_configs "$CONF"

cat >"$CONF/server.properties" <<PROPS
# Runnel test broker (scripts/kafka.sh): one KRaft node, loopback only, disposable data.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:${CONTROLLER_PORT}
listeners=PLAINTEXT://127.0.0.1:${PORT},CONTROLLER://127.0.0.1:${CONTROLLER_PORT}
advertised.listeners=PLAINTEXT://127.0.0.1:${PORT},CONTROLLER://127.0.0.1:${CONTROLLER_PORT}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=${DATA}
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Tests create and delete many topics; let deletion and retention act quickly.
log.retention.check.interval.ms=5000
log.segment.delete.delay.ms=1000
auto.create.topics.enable=false
PROPS

if port_open; then
  if answers; then
    log "reusing the Kafka broker already answering on $ADDRESS"
    echo "$ADDRESS"
    exit 0
  fi
  fail "port $PORT is taken by something that is not a Kafka broker (set RUNNEL_KAFKA_PORT)"
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$CONTROLLER_PORT") 2>/dev/null; then
  fail "controller port $CONTROLLER_PORT is taken (set RUNNEL_KAFKA_CONTROLLER_PORT)"
fi

CP="$LIB/*"
JAVA_OPTS=(-Xms128m "-Xmx$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError
  -Djava.awt.headless=true -Dlog4j2.configurationFile="$CONF/log4j2.properties")

if [ ! -f "$DATA/meta.properties" ]; then
  log "formatting KRaft storage in $DATA"
  rm -rf "$DATA"
  CLUSTER_ID="$(kafka_cluster_id)"
  java -cp "$CP" -Dlog4j2.configurationFile="$CONF/tools-log4j2.properties" kafka.tools.StorageTool format \
    -t "$CLUSTER_ID" -c "$CONF/server.properties" --standalone >&2 || fail "kafka-storage format failed in $DATA"
fi

log "starting Kafka $VERSION on $ADDRESS (log: $LOGFILE)"
# setsid + nohup: the broker must outlive this script and the test run that called it.
nohup setsid java "${JAVA_OPTS[@]}" -cp "$CP" kafka.Kafka "$CONF/server.properties" >"$LOGFILE" 2>&1 </dev/null 9>&- &
BROKER_PID="$!"
echo "$BROKER_PID" >"$PIDFILE"

for _ in $(seq 1 120); do
  # kill -0, not running_pid: until the forked shell has exec'ed java (slow on a loaded machine),
  # its command line is this script's, and a live broker would be taken for a dead one.
  if ! kill -0 "$BROKER_PID" 2>/dev/null; then
    tail -n 20 "$LOGFILE" >&2 || true
    fail "the broker exited while starting; see $LOGFILE"
  fi
  # The broker logs this once KRaft has elected itself and the broker serves requests.
  if grep -q 'Kafka Server started' "$LOGFILE" 2>/dev/null && port_open; then
    echo "$ADDRESS"
    exit 0
  fi
  sleep 0.5
done
tail -n 20 "$LOGFILE" >&2 || true
fail "the broker did not answer on $ADDRESS within 60 s; see $LOGFILE"

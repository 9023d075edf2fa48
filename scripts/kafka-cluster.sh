#!/usr/bin/env bash
# The fault rig's Kafka (issue 19): three Apache Kafka 4.x brokers in KRaft mode on loopback, each
# a combined broker+controller, the three forming the controller quorum, with replication factor 3
# and min.insync.replicas 2 by default, so a topic keeps taking acks=all writes with one broker down.
# It runs from the jars scripts/kafka.sh uses (scripts/kafka-common.sh), on its own ports and
# directories, beside (not instead of) the single test broker.
#
# Usage: scripts/kafka-cluster.sh [start|stop|kill|status] [node id]
#   start          starts every node not running (idempotent), waits until all three serve, prints
#                  the bootstrap list (the only line on stdout): 127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3
#   start <id>     starts node 1, 2 or 3 again (its data kept) and waits until it serves
#   stop [<id>]    SIGTERM (a controlled shutdown, SIGKILL after 30 s); every node without an id
#   kill <id>      SIGKILL: a broker lost without warning
#   status         one line per node: "<id> <address> running|stopped"
#   destroy        stops every node and deletes the rig's data (its jars stay)
#
# Environment: RUNNEL_KAFKA_CLUSTER_PORT (default 19192; node i listens on PORT+i-1 and its controller
# on PORT+100+i-1), RUNNEL_KAFKA_CLUSTER_DIR (default /tmp/runnel-kafka-cluster-<port>: configuration,
# data, pids, logs), RUNNEL_KAFKA_CLUSTER_HEAP (default 384m per node), plus RUNNEL_KAFKA_DIR and
# RUNNEL_KAFKA_VERSION as scripts/kafka.sh.
#
# Group session timeouts: the brokers allow consumer-group (KIP-848) sessions down to 6 s and
# default to 10 s with 2 s heartbeats, so the rig's failovers take seconds, not the 45 s default.
set -euo pipefail
cd "$(dirname "$0")/.."

COMMAND="${1:-start}"
NODE="${2:-}"
usage() {
  echo "usage: scripts/kafka-cluster.sh [start|stop|kill|status|destroy] [node id 1-3]" >&2
  exit 2
}
case "$COMMAND" in
start | stop | status | destroy) ;;
kill) [ -n "$NODE" ] || usage ;;
*) usage ;;
esac
case "$NODE" in
"" | 1 | 2 | 3) ;;
*) usage ;;
esac

BASE_PORT="${RUNNEL_KAFKA_CLUSTER_PORT:-19192}"
# Per machine, not per checkout, as the other test services: the rig outlives a test run (it is
# left whole for the next), so a second checkout on the same machine must find it, not its ports.
STATE="${RUNNEL_KAFKA_CLUSTER_DIR:-/tmp/runnel-kafka-cluster-${BASE_PORT}}"
HEAP="${RUNNEL_KAFKA_CLUSTER_HEAP:-384m}"
NODES=(1 2 3)

log() { echo "kafka-cluster.sh: $*" >&2; }
fail() {
  echo "kafka-cluster.sh: $*" >&2
  exit 1
}
# shellcheck source=scripts/kafka-common.sh
source scripts/kafka-common.sh

port_of() { echo $((BASE_PORT + $1 - 1)); }
controller_port_of() { echo $((BASE_PORT + 100 + $1 - 1)); }
address_of() { echo "127.0.0.1:$(port_of "$1")"; }
pidfile_of() { echo "$STATE/node-$1.pid"; }
logfile_of() { echo "$STATE/node-$1.log"; }
open_port() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

running_pid() {
  local pidfile pid
  pidfile="$(pidfile_of "$1")"
  [ -f "$pidfile" ] || return 1
  pid="$(cat "$pidfile")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q 'kafka\.Kafka' "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

bootstrap() {
  local list="" id
  for id in "${NODES[@]}"; do list="${list:+$list,}$(address_of "$id")"; done
  echo "$list"
}

mkdir -p "$STATE"
# Two callers at once must not both format or start a node.
exec 9>"$STATE/.lock"
flock 9

stop_node() {
  local id="$1" signal="$2" pid
  if ! pid="$(running_pid "$id")"; then
    log "node $id is not running"
    return 0
  fi
  log "node $id ($(address_of "$id"), pid $pid): SIG$signal"
  kill "-$signal" "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "node $id did not stop within 30 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$(pidfile_of "$id")"
}

case "$COMMAND" in
status)
  for id in "${NODES[@]}"; do
    if running_pid "$id" >/dev/null; then state=running; else state=stopped; fi
    echo "$id $(address_of "$id") $state"
  done
  exit 0
  ;;
stop | destroy)
  if [ -n "$NODE" ]; then
    stop_node "$NODE" TERM
  else
    # All at once: stopped one by one, the last would wait for a controller quorum that is gone.
    for id in "${NODES[@]}"; do stop_node "$id" TERM & done
    wait
  fi
  if [ "$COMMAND" = destroy ]; then
    rm -rf "$STATE"/data-* "$STATE"/conf-* "$STATE"/node-*.log "$STATE/cluster.id"
    log "deleted the rig's data in $STATE"
  fi
  exit 0
  ;;
kill)
  stop_node "$NODE" KILL
  exit 0
  ;;
esac

command -v java >/dev/null 2>&1 || fail "java is not installed (Kafka 4.x needs Java 17+)"
kafka_fetch_jars
CP="$LIB/*"

VOTERS=""
for id in "${NODES[@]}"; do VOTERS="${VOTERS:+$VOTERS,}$id@127.0.0.1:$(controller_port_of "$id")"; done
# One cluster id for the three nodes, kept beside their data.
[ -f "$STATE/cluster.id" ] || kafka_cluster_id >"$STATE/cluster.id"
CLUSTER_ID="$(cat "$STATE/cluster.id")"

configure() {
  local id="$1" conf="$STATE/conf-$1"
  mkdir -p "$conf"
  kafka_log_configs "$conf"
  cat >"$conf/server.properties" <<PROPS
# Runnel's fault rig (scripts/kafka-cluster.sh): node $id of three, loopback only, disposable data.
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$VOTERS
listeners=PLAINTEXT://$(address_of "$id"),CONTROLLER://127.0.0.1:$(controller_port_of "$id")
advertised.listeners=PLAINTEXT://$(address_of "$id")
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$STATE/data-$id
num.partitions=3
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
offsets.topic.replication.factor=3
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=6
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
group.initial.rebalance.delay.ms=0
group.consumer.min.session.timeout.ms=6000
group.consumer.session.timeout.ms=10000
group.consumer.min.heartbeat.interval.ms=1000
group.consumer.heartbeat.interval.ms=2000
# A lost broker is fenced, and its partitions led elsewhere, within 6 s.
broker.session.timeout.ms=6000
broker.heartbeat.interval.ms=1000
replica.lag.time.max.ms=10000
auto.create.topics.enable=false
log.retention.check.interval.ms=5000
log.segment.delete.delay.ms=1000
# Three JVMs share a small machine with the tests: few threads each.
num.network.threads=2
num.io.threads=2
num.replica.fetchers=1
background.threads=2
num.recovery.threads.per.data.dir=1
PROPS
}

start_node() {
  local id="$1" conf="$STATE/conf-$1" data="$STATE/data-$1" logfile pid
  logfile="$(logfile_of "$id")"
  if running_pid "$id" >/dev/null; then return 0; fi
  for port in "$(port_of "$id")" "$(controller_port_of "$id")"; do
    open_port "$port" && fail "port $port (node $id) is taken by another process (set RUNNEL_KAFKA_CLUSTER_PORT)"
  done
  configure "$id"
  if [ ! -f "$data/meta.properties" ]; then
    log "formatting node $id's storage in $data"
    rm -rf "$data"
    java -cp "$CP" -Dlog4j2.configurationFile="$conf/tools-log4j2.properties" kafka.tools.StorageTool format \
      -t "$CLUSTER_ID" -c "$conf/server.properties" >&2 || fail "kafka-storage format failed for node $id"
  fi
  log "starting node $id on $(address_of "$id") (log: $logfile)"
  : >"$logfile"
  # -XX:ActiveProcessorCount=1: the JVM sizes its GC and compiler threads for one core, not all.
  nohup setsid java -Xms64m "-Xmx$HEAP" -XX:+UseSerialGC -XX:ActiveProcessorCount=1 -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$conf/log4j2.properties" \
    -cp "$CP" kafka.Kafka "$conf/server.properties" >"$logfile" 2>&1 </dev/null 9>&- &
  pid="$!"
  echo "$pid" >"$(pidfile_of "$id")"
}

# A node has started once it logs so; a restarted one serves once the controller has unfenced it,
# which a metadata answer listing it shows.
await_node() {
  local id="$1" logfile pid
  logfile="$(logfile_of "$id")"
  pid="$(cat "$(pidfile_of "$id")")"
  for _ in $(seq 1 240); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$logfile" >&2 || true
      fail "node $id exited while starting; see $logfile"
    fi
    if grep -q 'Kafka Server started' "$logfile" 2>/dev/null && open_port "$(port_of "$id")"; then return 0; fi
    sleep 0.5
  done
  tail -n 20 "$logfile" >&2 || true
  fail "node $id did not start within 120 s; see $logfile"
}

if [ -n "$NODE" ]; then
  start_node "$NODE"
  await_node "$NODE"
else
  # All three at once: each waits for a quorum of the others before it can start.
  for id in "${NODES[@]}"; do start_node "$id"; done
  for id in "${NODES[@]}"; do await_node "$id"; done
fi
bootstrap

#!/usr/bin/env bash
# Makes a real MQTT broker (Eclipse Mosquitto, Debian's package) available on loopback for
# Runnel's tests and prints its address as host:port (the only line on stdout; everything else goes
# to stderr so callers can write ADDR="$(bash scripts/mosquitto.sh)").
#
# A private broker, not the distribution's service: its own config, port, pid file and
# persistence-free state. Idempotent: a broker already answering on the port is reused; tests
# isolate themselves with unique topic prefixes.
#
# Environment: RUNNEL_MQTT_PORT (default 18830), RUNNEL_MQTT_DIR (default /tmp/runnel-mqtt-<port>).
set -euo pipefail

PORT="${RUNNEL_MQTT_PORT:-18830}"
DIR="${RUNNEL_MQTT_DIR:-/tmp/runnel-mqtt-${PORT}}"
PIDFILE="$DIR/mosquitto.pid"
ADDR="127.0.0.1:${PORT}"

log() { echo "mosquitto.sh: $*" >&2; }

find_broker() {
  for candidate in "$(command -v mosquitto 2>/dev/null || true)" /usr/sbin/mosquitto; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

# A TCP connect is enough to know a broker listens; bash's /dev/tcp avoids needing a client.
answers() { (exec 3<>"/dev/tcp/127.0.0.1/${PORT}") >/dev/null 2>&1; }

BROKER="$(find_broker || true)"
if [ -z "$BROKER" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    log "mosquitto is missing and installing it needs root"
    exit 1
  fi
  log "mosquitto not found; installing the mosquitto package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends mosquitto >&2 || { apt-get update >&2 && apt-get install -y --no-install-recommends mosquitto >&2; }
  BROKER="$(find_broker || true)"
  [ -n "$BROKER" ] || { log "installed mosquitto but found no broker binary"; exit 1; }
fi

mkdir -p "$DIR"
exec 9>"$DIR/lock"
flock 9

if answers; then
  echo "$ADDR"
  exit 0
fi

if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  log "pid $(cat "$PIDFILE") holds $PIDFILE but does not answer on $ADDR; stopping it"
  kill "$(cat "$PIDFILE")" 2>/dev/null || true
  sleep 0.5
fi
rm -f "$PIDFILE"

cat >"$DIR/mosquitto.conf" <<CONF
# Runnel test broker (scripts/mosquitto.sh): loopback only, anonymous, no persistence.
listener ${PORT} 127.0.0.1
allow_anonymous true
persistence false
pid_file ${PIDFILE}
log_dest file ${DIR}/mosquitto.log
max_inflight_messages 100
max_queued_messages 100000
CONF
# The Debian broker drops to the "mosquitto" user when started as root; let it write its files.
if [ "$(id -u)" -eq 0 ] && id mosquitto >/dev/null 2>&1; then chown -R mosquitto: "$DIR"; fi

log "starting mosquitto on $ADDR"
# fd 9 (the lock) must not leak into the daemon, or it would hold the lock for ever.
"$BROKER" -d -c "$DIR/mosquitto.conf" >&2 9>&-
for _ in $(seq 1 50); do
  answers && break
  sleep 0.1
done
if ! answers; then
  log "the broker did not start; the end of $DIR/mosquitto.log:"
  tail -n 20 "$DIR/mosquitto.log" >&2 || true
  exit 1
fi
echo "$ADDR"

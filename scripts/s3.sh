#!/usr/bin/env bash
# Makes a real S3-compatible server available on loopback for Runnel's archive tests and prints
# its URL (the only line on stdout; everything else goes to stderr, so callers can write
# URL="$(bash scripts/s3.sh)").
#
# moto's server mode (PyPI `moto[server]`), in a virtualenv of its own under .runnel/moto. Chosen
# over s3rver (npm) because it honours conditional writes (If-None-Match), as AWS S3 does, and
# keeps state in memory, so a restart is a clean bucket; MinIO is no longer distributed.
# Idempotent: a server already answering on the port is reused; tests isolate themselves with
# buckets of their own. Credentials are not checked by moto: any pair works.
#
# Environment: RUNNEL_S3_PORT (default 15000), RUNNEL_S3_DIR (default /tmp/runnel-s3-<port>).
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${RUNNEL_S3_PORT:-15000}"
DIR="${RUNNEL_S3_DIR:-/tmp/runnel-s3-${PORT}}"
PIDFILE="$DIR/moto.pid"
URL="http://127.0.0.1:${PORT}"
VENV="$(pwd)/.runnel/moto"

log() { echo "s3.sh: $*" >&2; }

answers() { curl -s -o /dev/null --max-time 2 "${URL}/"; }

mkdir -p "$DIR"
exec 9>"$DIR/lock"
flock 9

if answers; then
  echo "$URL"
  exit 0
fi

# The venv's python runs moto as a module: the moto_server entry script's first line names the
# path the venv was created under, which breaks when that path is a symlink that later goes away.
if ! "$VENV/bin/python3" -c "import moto.server" 2>/dev/null; then
  log "installing moto[server] into $VENV"
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check 'moto[server]>=5.1,<6' >&2
fi

if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  log "pid $(cat "$PIDFILE") holds $PIDFILE but does not answer on $URL; stopping it"
  kill "$(cat "$PIDFILE")" 2>/dev/null || true
  sleep 0.5
fi

log "starting moto on $URL"
# fd 9 (the lock) must not leak into the server, or it would hold the lock for ever.
nohup "$VENV/bin/python3" -m moto.server -H 127.0.0.1 -p "$PORT" >"$DIR/moto.log" 2>&1 9>&- &
echo $! >"$PIDFILE"
for _ in $(seq 1 100); do
  answers && break
  sleep 0.1
done
if ! answers; then
  log "the server did not start; the end of $DIR/moto.log:"
  tail -n 20 "$DIR/moto.log" >&2 || true
  exit 1
fi
echo "$URL"

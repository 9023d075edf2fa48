#!/usr/bin/env bash
# Makes a real PostgreSQL server available for Runnel's tests and prints its URL (the only line on
# stdout; everything else goes to stderr so callers can write URL="$(bash scripts/postgres.sh)").
#
# A private cluster, not the distribution's: a fixed uncommon port so it never fights a system
# server, trust auth on loopback only, durability switched off because test data is disposable.
# Idempotent: a cluster already answering on the port is reused; tests isolate themselves by
# creating their own uniquely named database.
#
# Environment: RUNNEL_PG_PORT (default 54329), RUNNEL_PG_DIR (default /tmp/runnel-pg-<port>; /tmp
# because the postgres user must be able to reach it whatever the repo's permissions).
set -euo pipefail

PORT="${RUNNEL_PG_PORT:-54329}"
PGDIR="${RUNNEL_PG_DIR:-/tmp/runnel-pg-${PORT}}"
URL="postgres://postgres@127.0.0.1:${PORT}/postgres"

log() { echo "postgres.sh: $*" >&2; }

find_bindir() {
  local candidate
  if command -v pg_config >/dev/null 2>&1; then
    candidate="$(pg_config --bindir 2>/dev/null || true)"
    if [ -n "$candidate" ] && [ -x "$candidate/initdb" ] && [ -x "$candidate/postgres" ]; then
      echo "$candidate"
      return 0
    fi
  fi
  # Debian keeps server binaries off PATH, one directory per major version; prefer the newest.
  for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$candidate/initdb" ] && [ -x "$candidate/postgres" ] && [ -x "$candidate/pg_ctl" ]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

# Runs a command as the cluster owner: initdb and postgres refuse to run as root.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

answers() {
  "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres >/dev/null 2>&1
}

BINDIR="$(find_bindir || true)"
if [ -z "$BINDIR" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    log "PostgreSQL server binaries are missing and installing them needs root"
    exit 1
  fi
  log "PostgreSQL server binaries not found; installing the postgresql package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update >&2
  apt-get install -y --no-install-recommends postgresql >&2
  BINDIR="$(find_bindir || true)"
  if [ -z "$BINDIR" ]; then
    log "installed postgresql but found no server binaries under /usr/lib/postgresql"
    exit 1
  fi
fi

if answers; then
  echo "$URL"
  exit 0
fi

if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  # The Debian package creates this user; a bare binary install may not have.
  useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres >&2
fi

# Two test runs starting at once must not both initdb or both start the server.
exec 9>"/tmp/runnel-pg-${PORT}.lock"
flock 9

if ! answers; then
  # "postgres (PostgreSQL) 15.18 (Debian …)": the major version is the first number.
  VERSION="$("$BINDIR/postgres" --version | sed -E 's/^[^0-9]*([0-9]+).*/\1/')"
  if [ -f "$PGDIR/PG_VERSION" ] && [ "$(cat "$PGDIR/PG_VERSION")" != "$VERSION" ]; then
    log "cluster in $PGDIR is from PostgreSQL $(cat "$PGDIR/PG_VERSION"), binaries are $VERSION; recreating"
    rm -rf "$PGDIR"
  fi
  if [ ! -f "$PGDIR/PG_VERSION" ]; then
    log "creating a test cluster in $PGDIR (PostgreSQL $VERSION)"
    rm -rf "$PGDIR"
    mkdir -p "$PGDIR"
    chmod 700 "$PGDIR"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$PGDIR"
    as_owner "$BINDIR/initdb" -D "$PGDIR" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
      --no-sync >&2
    cat >>"$PGDIR/postgresql.conf" <<EOF

# Runnel test cluster (scripts/postgres.sh): loopback only, disposable data.
port = ${PORT}
listen_addresses = '127.0.0.1'
unix_socket_directories = '${PGDIR}'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
    cat >"$PGDIR/pg_hba.conf" <<EOF
local all all trust
host  all all 127.0.0.1/32 trust
EOF
  fi
  log "starting the test cluster on 127.0.0.1:${PORT}"
  # pg_ctl detaches the server with its output in the log file, so it does not hold our stdout open.
  if ! as_owner "$BINDIR/pg_ctl" -D "$PGDIR" -l "$PGDIR/server.log" -w -t 60 start >&2; then
    log "the server did not start; the end of $PGDIR/server.log:"
    tail -n 20 "$PGDIR/server.log" >&2 || true
    exit 1
  fi
fi

if ! answers; then
  log "no server answers on 127.0.0.1:${PORT} (is something else using the port?)"
  exit 1
fi
echo "$URL"

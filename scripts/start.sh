#!/usr/bin/env bash
# `npm start`: installs dependencies on a fresh clone, then runs `runnel start` with any extra flags.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci --no-audit --no-fund >&2
exec node --import tsx bin/runnel.ts start "$@"

#!/usr/bin/env bash
# `npm start`: on a fresh clone brings a supported Node.js (scripts/node.sh) and the dependencies,
# builds the package when it is missing or older than its sources (the compiled server and its
# dashboard, scripts/build.sh), then runs the compiled `runnel start` with any extra flags.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/node.sh
[ -d node_modules ] || npm ci --no-audit --no-fund >&2
stale() { [ ! -f "$1" ] || [ -n "$(find "${@:2}" -newer "$1" -print -quit)" ]; }
if stale dist/bin/runnel.js src bin package.json || stale web/dist/index.html web/src web/index.html; then
  bash scripts/build.sh >&2
fi
exec node dist/bin/runnel.js start "$@"

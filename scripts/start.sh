#!/usr/bin/env bash
# `npm start`: installs dependencies on a fresh clone, builds the dashboard when missing, then runs `runnel start` with any extra flags.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci --no-audit --no-fund >&2
# The dashboard's assets (web/dist, not committed) are built on the first start.
[ -f web/dist/index.html ] || npx vite build web --logLevel warn >&2
exec node --import tsx bin/runnel.ts start "$@"

#!/usr/bin/env bash
# The long differential job: N random CEP cases (default 5000) through Runnel and through Apache
# Flink's NFA; prints the first differences and exits non-zero if there are any.
#   bash scripts/cep-differential.sh 20000 [seed]
set -euo pipefail
cd "$(dirname "$0")/.."
exec node --import tsx scripts/cep-differential.ts "${1:-5000}" "${2:-$RANDOM}"

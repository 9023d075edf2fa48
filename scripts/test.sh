#!/usr/bin/env bash
# Every test Runnel has: type check, lint, then the unit and integration suites against real
# components. Installs and starts what those need (PostgreSQL, Prometheus, moto's S3) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# Everything below runs on a supported Node.js, fetched into .runnel/node when the system's is older.
source scripts/node.sh
echo "== Node.js $(node --version)"

[ -d node_modules ] || npm ci --no-audit --no-fund

echo "== type check"; npx tsc --noEmit; npx tsc --noEmit -p web
echo "== lint"; npx biome check .

echo "== PostgreSQL"
# The server is per machine and outlives the run; the run gets a database of its own, so what an
# earlier run (or another checkout's run on the same machine) migrated cannot meet this one's schema.
pg_server="$(bash scripts/postgres.sh)"
run_db="runnel_test_$(date +%s)_$$"
psql "$pg_server" -qc "CREATE DATABASE $run_db"
trap 'psql "$pg_server" -qc "DROP DATABASE IF EXISTS $run_db WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
RUNNEL_TEST_DATABASE_URL="${pg_server%/*}/$run_db"
export RUNNEL_TEST_DATABASE_URL
RUNNEL_TEST_KAFKA_BROKERS="$(bash scripts/kafka.sh)"; export RUNNEL_TEST_KAFKA_BROKERS

echo "== Mosquitto (MQTT)"
RUNNEL_TEST_MQTT_URL="mqtt://$(bash scripts/mosquitto.sh)"
export RUNNEL_TEST_MQTT_URL

echo "== S3-compatible server (moto) for the archive"
RUNNEL_TEST_S3_URL="$(bash scripts/s3.sh)"
export RUNNEL_TEST_S3_URL

echo "== Prometheus"
RUNNEL_TEST_PROMETHEUS_URL="$(bash scripts/prometheus.sh)"
export RUNNEL_TEST_PROMETHEUS_URL

echo "== build (compiled package and dashboard; the package test packs them), Chromium for the browser tests"
bash scripts/build.sh
RUNNEL_TEST_CHROMIUM="$(bash scripts/chromium.sh)"; export RUNNEL_TEST_CHROMIUM

echo "== tests"
mapfile -t files < <(find test -name '*.test.ts' | sort)
node --import tsx --test --test-concurrency=2 --test-timeout=300000 "${files[@]}"

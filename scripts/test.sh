#!/usr/bin/env bash
# Every test Runnel has: type check, lint, then the unit and integration suites against real
# components. Installs and starts what those need (PostgreSQL, Prometheus) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -d node_modules ] || npm ci --no-audit --no-fund

echo "== type check"; npx tsc --noEmit; npx tsc --noEmit -p web
echo "== lint"; npx biome check .

echo "== PostgreSQL"
RUNNEL_TEST_DATABASE_URL="$(bash scripts/postgres.sh)"
export RUNNEL_TEST_DATABASE_URL
RUNNEL_TEST_KAFKA_BROKERS="$(bash scripts/kafka.sh)"; export RUNNEL_TEST_KAFKA_BROKERS

echo "== Mosquitto (MQTT)"
RUNNEL_TEST_MQTT_URL="mqtt://$(bash scripts/mosquitto.sh)"
export RUNNEL_TEST_MQTT_URL

echo "== Prometheus"
RUNNEL_TEST_PROMETHEUS_URL="$(bash scripts/prometheus.sh)"
export RUNNEL_TEST_PROMETHEUS_URL

echo "== dashboard (build, and Chromium for the browser tests)"
npx vite build web --logLevel warn
RUNNEL_TEST_CHROMIUM="$(bash scripts/chromium.sh)"; export RUNNEL_TEST_CHROMIUM

echo "== tests"
mapfile -t files < <(find test -name '*.test.ts' | sort)
node --import tsx --test --test-concurrency=2 --test-timeout=300000 "${files[@]}"

#!/usr/bin/env bash
# Builds the Apache Flink side of bench/stream-window.ts (tools/flink-window-bench: flink-streaming-java,
# its keyed operator test harness and flink-clients from Maven Central) into .runnel/flink-window-bench
# when it is missing or older than its sources, and prints the Java classpath to run
# dev.runnel.bench.WindowOperatorBench and WindowJobBench with.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.runnel/flink-window-bench
jar="$out/flink-window-bench-1.0.jar"
src=tools/flink-window-bench
if [ ! -f "$jar" ] || [ -n "$(find "$src" -newer "$jar" -type f | head -1)" ]; then
  mvn -q -B -f "$src/pom.xml" -DskipTests package >&2
fi
echo "$PWD/$jar:$PWD/$out/lib/*"

#!/usr/bin/env bash
# Builds the FlinkCEP oracle (tools/flinkcep-oracle: Apache Flink's flink-cep from Maven Central)
# into .runnel/flinkcep-oracle when it is missing or older than its sources, and prints the Java
# classpath to run it with. Used by test/cep/differential.test.ts and bench/cep.ts.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.runnel/flinkcep-oracle
jar="$out/flinkcep-oracle-1.0.jar"
src=tools/flinkcep-oracle
if [ ! -f "$jar" ] || [ -n "$(find "$src" -newer "$jar" -type f | head -1)" ]; then
  mvn -q -B -f "$src/pom.xml" -DskipTests package >&2
fi
echo "$PWD/$jar:$PWD/$out/lib/*"

#!/usr/bin/env bash
# Sourced by scripts/kafka.sh and scripts/kafka-cluster.sh: where Kafka's jars live and how they get
# there, the brokers' logging configuration, and a new cluster id. No tarball and no Docker: Maven resolves org.apache.kafka:kafka_2.13 and its dependencies
# (plus a log4j2 binding, which the published POM leaves out) from Maven Central into
# $BASE/lib-<version>-2, once; every broker on this machine runs from that classpath.
#
# Sets VERSION, BASE and LIB (from RUNNEL_KAFKA_VERSION, default 4.1.1, and RUNNEL_KAFKA_DIR, default
# <repo>/.runnel/kafka); kafka_fetch_jars makes sure LIB is complete. The caller defines log and fail.

VERSION="${RUNNEL_KAFKA_VERSION:-4.1.1}"
# Kafka 4.1 is built against these; Maven's nearest-wins would otherwise pick slf4j-api 1.7 from a
# transitive dependency, which cannot see the log4j2 binding and silences the broker.
LOG4J_VERSION="2.24.3"
SLF4J_VERSION="2.0.17"
BASE="${RUNNEL_KAFKA_DIR:-$PWD/.runnel/kafka}"
LIB="$BASE/lib-$VERSION-2"

kafka_fetch_jars() {
  mkdir -p "$BASE"
  # Brokers on other ports (a test's dedicated one) share the jars: one download at a time.
  exec 8>"$BASE/.lock-lib-$VERSION"
  flock 8
  if [ ! -f "$LIB/.complete" ]; then
    command -v mvn >/dev/null 2>&1 || fail "mvn is not installed (needed once to fetch Kafka $VERSION from Maven Central)"
    log "fetching org.apache.kafka:kafka_2.13:$VERSION and its dependencies with Maven (once)"
    POMDIR="$BASE/pom-$VERSION"
    mkdir -p "$POMDIR"
    cat >"$POMDIR/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.runnel</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>$SLF4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-api</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
POM
    rm -rf "$LIB.tmp"
    if ! mvn -B -q -Dstyle.color=never -f "$POMDIR/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$LIB.tmp" >&2; then
      fail "Maven could not fetch Kafka $VERSION (is Maven Central reachable?)"
    fi
    ls "$LIB.tmp"/kafka_2.13-"$VERSION".jar >/dev/null 2>&1 || fail "Maven finished but kafka_2.13-$VERSION.jar is missing"
    touch "$LIB.tmp/.complete"
    rm -rf "$LIB"
    mv "$LIB.tmp" "$LIB"
  fi
  flock -u 8
  exec 8>&-
}


# Writes <dir>/log4j2.properties (a broker: warnings, and the line saying it started) and
# <dir>/tools-log4j2.properties (the command-line tools: silent).
kafka_log_configs() {
  cat >"$1/log4j2.properties" <<L4J
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.kafkaorg.name = org.apache.kafka
logger.kafkaorg.level = WARN
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
L4J
  cat >"$1/tools-log4j2.properties" <<L4J
status = error
rootLogger.level = OFF
L4J
}

# What `kafka-storage random-uuid` prints (16 random bytes, base64url without padding, never
# starting with '-'), without starting a JVM for it.
kafka_cluster_id() {
  local id="-"
  while [ "${id:0:1}" = "-" ]; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
  done
  echo "$id"
}

#!/usr/bin/env bash
# Assembles Apache Kafka (broker + CLI tools) from Maven Central jars into $KGO_CACHE/kafka-<version>/libs.
# Prints that directory (holding libs/ and the log4j2 configs). Warm: returns at once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/kafka/pom.xml")
dest="$KGO_CACHE/kafka-$KAFKA_VERSION"
stamp="$dest/.complete-$(sha256sum "$here/kafka/pom.xml" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  require_cmd java "a Java 17+ runtime (Debian: openjdk-17-jre-headless)"
  require_cmd mvn "Apache Maven (Debian: maven)"
  log "fetching Apache Kafka $KAFKA_VERSION jars from Maven Central into $dest/libs"
  rm -rf "$dest" && mkdir -p "$dest"
  mvn -q -B -f "$here/kafka/pom.xml" dependency:copy-dependencies -DoutputDirectory="$dest/libs" \
    || die "mvn could not resolve Apache Kafka $KAFKA_VERSION from Maven Central"
  ls "$dest/libs"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null || die "kafka_2.13-$KAFKA_VERSION.jar missing after mvn"
  touch "$stamp"
fi
# The log configs are part of the repo; keep the cached copies current.
cp "$here/kafka/log4j2.properties" "$here/kafka/tools-log4j2.properties" "$dest/"
echo "$dest"

#!/usr/bin/env bash
# Clients no one here wrote: confluent-kafka (librdkafka) for Python in a virtualenv, and kcat from Debian.
# Prints the virtualenv's directory. Warm: returns at once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

CONFLUENT_KAFKA_VERSION=${CONFLUENT_KAFKA_VERSION:-2.16.1}
venv="$KGO_CACHE/venv-confluent-kafka-$CONFLUENT_KAFKA_VERSION"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import confluent_kafka' 2>/dev/null; then
  require_cmd python3 "Python 3.9+ (Debian: python3 python3-venv)"
  log "creating $venv with confluent-kafka==$CONFLUENT_KAFKA_VERSION"
  rm -rf "$venv"
  python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$venv/bin/pip" install -q "confluent-kafka==$CONFLUENT_KAFKA_VERSION" || die "pip could not install confluent-kafka==$CONFLUENT_KAFKA_VERSION"
fi
if ! command -v kcat >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing kcat from Debian"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat) >&2 || die "apt-get could not install kcat"
  else
    die "kcat is missing: install it (Debian: sudo apt-get install kcat)"
  fi
fi
echo "$venv"

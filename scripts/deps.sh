#!/usr/bin/env bash
# What the build and the tests need beyond Rust and a C toolchain, installed once and skipped
# when present (so a second run costs nothing):
# - OpenSSL's headers and pkg-config (Debian's libssl-dev): librdkafka's TLS and SASL;
# - Prometheus with promtool (Debian's prometheus): the alert rules' tests and a real scrape;
# - tansu 0.6.0, a Kafka-protocol broker, built once into the cargo home (~7–10 min), for the
#   tests that need a real broker (NEXUSSALE_TANSU tells them where it is);
# - the machine's own Redis (127.0.0.1:6379, nothing on disk) and MariaDB (127.0.0.1:3306), the
#   tests' defaults: started when installed but not answering (CI runs against the services as
#   the machine has them; one stopped Redis fails every Redis test).
#
#   bash scripts/deps.sh
set -euo pipefail

sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo

missing=()
dpkg -s libssl-dev > /dev/null 2>&1 || missing+=(libssl-dev)
command -v pkg-config > /dev/null || missing+=(pkg-config)
command -v promtool > /dev/null || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]} (Debian)"
    $sudo apt-get install -y --no-install-recommends "${missing[@]}" > /dev/null \
        || { $sudo apt-get update > /dev/null && $sudo apt-get install -y --no-install-recommends "${missing[@]}" > /dev/null; }
fi

tansu_version=0.6.0
tansu="${CARGO_HOME:-$HOME/.cargo}/bin/tansu"
if ! "$tansu" --version 2> /dev/null | grep -q "$tansu_version"; then
    echo "== installing tansu $tansu_version (cargo install, once per machine)"
    cargo install --quiet --locked tansu --version "$tansu_version" --features dynostore
fi

if [ -z "${NEXUSSALE_REDIS_URL:-}" ] && ! redis-cli -h 127.0.0.1 -p 6379 ping > /dev/null 2>&1; then
    echo "== starting the machine's Redis on 127.0.0.1:6379 (it did not answer)"
    $sudo service redis-server start > /dev/null 2>&1 \
        || redis-server --port 6379 --bind 127.0.0.1 --save "" --appendonly no --daemonize yes > /dev/null
    for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping > /dev/null 2>&1 && break; sleep 0.1; done
    redis-cli -h 127.0.0.1 -p 6379 config set save "" > /dev/null
fi
if [ -z "${NEXUSSALE_DATABASE_URL:-}" ] && ! mysqladmin -h 127.0.0.1 -P 3306 -uroot ping > /dev/null 2>&1; then
    echo "== starting the machine's MariaDB on 127.0.0.1:3306 (it did not answer)"
    $sudo service mariadb start > /dev/null
fi

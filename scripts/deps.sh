#!/usr/bin/env bash
# What the build and the tests need beyond Rust and a C toolchain, installed once and skipped
# when present (so a second run costs nothing):
# - OpenSSL's headers and pkg-config (Debian's libssl-dev): librdkafka's TLS and SASL;
# - Prometheus with promtool (Debian's prometheus): the alert rules' tests and a real scrape;
# - tansu 0.6.0, a Kafka-protocol broker, built once into the cargo home (~7–10 min), for the
#   tests that need a real broker (NEXUSSALE_TANSU tells them where it is).
#
#   bash scripts/deps.sh
set -euo pipefail

missing=()
dpkg -s libssl-dev > /dev/null 2>&1 || missing+=(libssl-dev)
command -v pkg-config > /dev/null || missing+=(pkg-config)
command -v promtool > /dev/null || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]} (Debian)"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get install -y --no-install-recommends "${missing[@]}" > /dev/null \
        || { $sudo apt-get update > /dev/null && $sudo apt-get install -y --no-install-recommends "${missing[@]}" > /dev/null; }
fi

tansu_version=0.6.0
tansu="${CARGO_HOME:-$HOME/.cargo}/bin/tansu"
if ! "$tansu" --version 2> /dev/null | grep -q "$tansu_version"; then
    echo "== installing tansu $tansu_version (cargo install, once per machine)"
    cargo install --quiet --locked tansu --version "$tansu_version" --features dynostore
fi

#!/usr/bin/env bash
# Validates docker-compose.yml against the Compose specification's JSON schema, since no Docker
# engine runs here: check-jsonschema (PyPI, pinned) carries the schema itself
# (`vendor.compose-spec`), so nothing is downloaded at test time; it is installed once into
# target/compose-check.
#
#   bash scripts/compose-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

version=0.39.0
venv=target/compose-check/venv

if ! "$venv/bin/check-jsonschema" --version 2> /dev/null | grep -q "$version"; then
    echo "== installing check-jsonschema $version into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "check-jsonschema==$version"
fi
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml

#!/usr/bin/env bash
# Browser tests: headless Chromium driven by playwright-core against real servers (Swagger UI's
# Authorize; the operator console, scripts/browser/console.mjs). Installs what
# a fresh machine lacks, once: Debian's chromium (apt-get; `npx playwright install` cannot
# download here) and playwright-core (pinned, from npm) into target/browser.
#
#   bash scripts/browser.sh
set -euo pipefail
cd "$(dirname "$0")/.."
playwright=1.65.2
modules=target/browser/node_modules

if [ ! -x /usr/bin/chromium ]; then
    echo "== installing chromium (Debian)"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get install -y --no-install-recommends chromium > /dev/null \
        || { $sudo apt-get update > /dev/null && $sudo apt-get install -y --no-install-recommends chromium > /dev/null; }
fi
if ! grep -qs "\"version\": \"$playwright\"" "$modules/playwright-core/package.json"; then
    echo "== installing playwright-core $playwright into target/browser"
    mkdir -p target/browser
    (cd target/browser && npm install --no-audit --no-fund --silent "playwright-core@$playwright")
fi

cargo build -q -p nexussale-server --bin nexussale-server
out=target/browser/run
mkdir -p "$out"
secret="browser-$RANDOM$RANDOM"
# shellcheck source=scripts/lib/server.sh
source scripts/lib/server.sh
start_server "$out/server.log" --sale ps5=100 --admin-token "admin-$RANDOM$RANDOM" --jwt-secret "$secret"

echo "== Swagger UI's Authorize with a pasted buyer token"
NEXUSSALE_NODE_MODULES=$modules timeout 180 node scripts/browser/swagger_authorize.mjs "http://$address" "$secret"
kill "$server" 2> /dev/null || true
wait "$server" 2> /dev/null || true

echo "== the operator console (GET /dashboard)"
# Admin token only: the script's burst buys as named users, as a shop's back end would.
admin="admin-$RANDOM$RANDOM"
start_server "$out/console.log" --sale ps5=100 --admin-token "$admin"
mkdir -p "$out/screenshots"
NEXUSSALE_NODE_MODULES=$modules timeout 180 node scripts/browser/console.mjs "http://$address" "$admin" "$out/screenshots" \
    || { cat "$out/console.log" >&2; exit 1; }
echo "screenshots in $out/screenshots (docs/img/ holds copies for the README)"

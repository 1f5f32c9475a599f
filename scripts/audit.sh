#!/usr/bin/env bash
# The dependency check: cargo-deny over the whole tree (deny.toml) — licenses (permissive only),
# sources (crates.io only), bans (no wildcard versions) and RustSec advisories (a crate with a
# known vulnerability fails).
#
#   bash scripts/audit.sh
#
# cargo-deny is installed from crates.io on first use (pinned). The advisory database is a git
# repository on GitHub (rustsec/advisory-db), which an offline machine cannot reach, so:
#   - online, cargo-deny fetches it into $CARGO_HOME/advisory-dbs and checks against it;
#   - offline, point NEXUSSALE_ADVISORY_DB at a clone of https://github.com/rustsec/advisory-db
#     (any recent one, brought in by hand) or leave a copy in $CARGO_HOME/advisory-dbs: the check
#     then runs against it without fetching (--offline) and prints how old it is;
#   - offline with no copy, the advisory check is skipped with a warning and the others still
#     run (NEXUSSALE_REQUIRE_ADVISORIES=1 makes that a failure instead).
set -euo pipefail
cd "$(dirname "$0")/.."

version=0.20.2
cargo_home=${CARGO_HOME:-$HOME/.cargo}
if ! cargo deny --version 2>/dev/null | grep -q "$version"; then
    echo "== installing cargo-deny $version"
    cargo install --quiet --locked "cargo-deny@$version"
fi

echo "== cargo deny: licenses, sources, bans"
cargo deny --all-features check --hide-inclusion-graph licenses sources bans

dbs="$cargo_home/advisory-dbs"
if [ -n "${NEXUSSALE_ADVISORY_DB:-}" ]; then
    mkdir -p "$dbs"
    # The directory cargo-deny $version keeps the default database in (named after its URL).
    rm -rf "$dbs/advisory-db-3157b0e258782691"
    cp -r "$NEXUSSALE_ADVISORY_DB" "$dbs/advisory-db-3157b0e258782691"
fi

echo "== cargo deny: advisories"
if cargo deny --all-features check advisories 2> target/audit-advisories.log; then
    cat target/audit-advisories.log >&2
    exit 0
fi
cat target/audit-advisories.log >&2
if grep -qiE "failed to (fetch|clone|open)|unable to (fetch|clone|open)|couldn't (fetch|clone)|network|resolve" target/audit-advisories.log; then
    # Could not fetch: check against a copy already on disk, if there is one.
    if ls "$dbs"/*/ > /dev/null 2>&1; then
        echo "== the advisory database could not be fetched; checking against the copy in $dbs"
        for db in "$dbs"/*/; do
            echo "   last advisory commit: $(git -C "$db" log -1 --format=%cs 2>/dev/null || echo unknown)"
        done
        cargo deny --offline --all-features check advisories
        exit $?
    fi
    echo "WARNING: no advisory database (offline, and no copy in $dbs): advisories NOT checked." >&2
    echo "         See the top of scripts/audit.sh for how to give it one." >&2
    if [ "${NEXUSSALE_REQUIRE_ADVISORIES:-0}" = 1 ]; then
        exit 1
    fi
    exit 0
fi
exit 1

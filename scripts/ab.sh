#!/usr/bin/env bash
# An A/B of two server builds on the embedded default, in one run: interleaved rounds (A, B, B,
# A, …), each on a fresh server with a sale of its own (so a shared Redis works too), each a
# burst of 100,000 purchases at concurrency 256 on a sale that never sells out, after 100,000
# `GET /health` on the same connections (the same-run baseline). Prints each round and the
# medians: purchase rps, purchase ÷ /health, and B ÷ A.
#
#   bash scripts/ab.sh OLD_SERVER_BINARY [NEW_SERVER_BINARY] [ROUNDS]
#
# NEW defaults to this tree's target/release/nexussale-server, ROUNDS to 3. Build the old one
# from another checkout, e.g. `git worktree add /tmp/old <rev>` and
# `cargo build --release -p nexussale-server` there. Extra server flags: NEXUSSALE_AB_FLAGS, and
# NEXUSSALE_AB_FLAGS_A / _B for one side; extra bench flags for one side: NEXUSSALE_AB_BENCH_A /
# _B. One binary as both sides compares two configurations, e.g. authentication off and on:
#   NEXUSSALE_AB_FLAGS_B='--admin-token t --jwt-secret s' NEXUSSALE_AB_BENCH_B='--admin-token t --jwt-secret s' \
#     bash scripts/ab.sh target/release/nexussale-server target/release/nexussale-server 5
#
# the servers' RUST_LOG: NEXUSSALE_AB_LOG (default `warn`; `info` writes the access log, one line
# per request, to a file per round, as a server whose output is collected would).
set -euo pipefail
cd "$(dirname "$0")/.."

old=${1:?usage: scripts/ab.sh OLD_SERVER_BINARY [NEW_SERVER_BINARY] [ROUNDS]}
new=${2:-target/release/nexussale-server}
rounds=${3:-3}
users=${NEXUSSALE_AB_USERS:-100000}
read -r -a extra <<< "${NEXUSSALE_AB_FLAGS:-}"
read -r -a extra_A <<< "${NEXUSSALE_AB_FLAGS_A:-}"
read -r -a extra_B <<< "${NEXUSSALE_AB_FLAGS_B:-}"
read -r -a bench_A <<< "${NEXUSSALE_AB_BENCH_A:-}"
read -r -a bench_B <<< "${NEXUSSALE_AB_BENCH_B:-}"
cargo build -q --release -p nexussale-bench
bench=target/release/nexussale-bench

results=$(mktemp)
logs=$(mktemp -d)
trap 'rm -rf "$results" "$logs"; [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; true' EXIT

for round in $(seq "$rounds"); do
    # Which side goes first alternates: on this machine the second server of a pair measured
    # up to ~8 % faster (2026-12-04), which a fixed order adds to one side.
    order="A B"; [ $((round % 2)) -eq 0 ] && order="B A"
    for side in $order; do
        binary=$old side_flags=("${extra_A[@]}") side_bench=("${bench_A[@]}")
        if [ "$side" = B ]; then
            binary=$new side_flags=("${extra_B[@]}") side_bench=("${bench_B[@]}")
        fi
        port=$((20000 + RANDOM % 12000))
        RUST_LOG=${NEXUSSALE_AB_LOG:-warn} "$binary" --listen "127.0.0.1:$port" "${extra[@]}" "${side_flags[@]}" \
            > "$logs/$side-$round.log" 2>&1 &
        pid=$!
        for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/health" > /dev/null && break; sleep 0.1; done
        line=$("$bench" --url "http://127.0.0.1:$port" --sku "ab-$round-$side-$$" --stock 1000000 \
            --users "$users" --concurrency 256 --baseline "$users" --server-pid "$pid" "${side_bench[@]}" \
            2> /dev/null | tail -1)
        kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
        python3 -c 'import json, sys; d = json.loads(sys.argv[3]); print(sys.argv[1], sys.argv[2], d["rps"], d["health_rps"], d["ratio"], d["errors"])' \
            "$round" "$side" "$line" | tee -a "$results"
    done
done

python3 - "$results" "$old" "$new" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
med = lambda side, col: statistics.median(float(r[col]) for r in rows if r[1] == side)
a, b = med("A", 2), med("B", 2)
print(f"A {sys.argv[2]}: median purchase {a:,.0f}/s, ratio to /health {med('A', 4):.3f}")
print(f"B {sys.argv[3]}: median purchase {b:,.0f}/s, ratio to /health {med('B', 4):.3f}")
print(f"B / A purchase rate: {b / a:.3f}; B / A of the /health ratios: {med('B', 4) / med('A', 4):.3f}")
PY

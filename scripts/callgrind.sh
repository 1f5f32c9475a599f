#!/usr/bin/env bash
# Instructions per purchase, the deterministic twin of scripts/ab.sh: the server under
# `valgrind --tool=callgrind`, `nexussale-bench` buying N = 1,000 and then N = 5,000 times (16 at
# a time, fresh servers), the program's total instructions for each; the slope (difference ÷
# 4,000) is one purchase's instructions, start-up and shutdown cancelled out. Drifts about ±0.5 k
# between runs of one build, where wall-clock rates here swing by a third.
#
#   bash scripts/callgrind.sh [SERVER_BINARY] ["server flags"] ["bench flags"]
#
# SERVER defaults to this tree's target/release/nexussale-server; RUST_LOG defaults to `info`
# (the access log on). Needs valgrind. Under valgrind, sha2 runs its portable code, not SHA-NI:
# HS256 verification weighs more here than on the machine itself.
set -euo pipefail
cd "$(dirname "$0")/.."

server=${1:-target/release/nexussale-server}
read -r -a server_flags <<< "${2:-}"
read -r -a bench_flags <<< "${3:-}"
cargo build -q --release -p nexussale-bench
bench=target/release/nexussale-bench
work=$(mktemp -d)
trap 'rm -rf "$work"; [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; true' EXIT

total() { # N: the whole program's instructions for N purchases
    local port=$((20000 + RANDOM % 12000))
    RUST_LOG=${RUST_LOG:-info} valgrind --tool=callgrind --callgrind-out-file="$work/out.$1" \
        "$server" --listen "127.0.0.1:$port" "${server_flags[@]}" > "$work/server.$1.log" 2>&1 &
    pid=$!
    for _ in $(seq 300); do curl -fs "http://127.0.0.1:$port/health" > /dev/null && break; sleep 0.2; done
    "$bench" --url "http://127.0.0.1:$port" --sku "cg-$1" --stock 1000000 --users "$1" \
        --concurrency 16 --wait-persisted 30 "${bench_flags[@]}" > "$work/bench.$1.out" 2>&1
    kill -INT "$pid"; wait "$pid" 2>/dev/null || true; pid=
    callgrind_annotate "$work/out.$1" 2> /dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'
}

small=$(total 1000)
large=$(total 5000)
echo "$(((large - small) / 4000)) instructions per purchase (totals: $small for 1,000, $large for 5,000)"

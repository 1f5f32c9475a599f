#!/usr/bin/env bash
# Where a purchase's cost goes when a burst is spread over many sales on Redis, apart from the
# orders' database: for each point, a fresh redis-server and a server on it (Redis stock,
# in-memory orders), the sales created and bought from once by every buyer (which warms them),
# then a second burst of the same buyers, measured alone:
# - CPU µs per accepted purchase of redis-server (its INFO `used_cpu_*`) and of the server
#   (/proc), the load tool's own left out;
# - Redis commands per purchase, each kind (INFO commandstats; a script's own commands count
#   apart from its EVALSHA), and the keys Redis holds after.
#
#   bash scripts/redis_cost.sh [POINTS] [ROUNDS] [BUYERS]
#
# POINTS: live sales, comma-separated (default 1,10000); ROUNDS: times each point runs, the
# points alternating (default 2); BUYERS: distinct buyers a burst (default 100,000), 256 at a
# time. The servers run on free ports and are stopped at the end, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

IFS=, read -r -a points <<< "${1:-1,10000}"
rounds=${2:-2}
users=${3:-100000}
cargo build -q --release -p nexussale-server -p nexussale-bench
server_bin=${NEXUSSALE_BENCH_SERVER:-target/release/nexussale-server}
bench=target/release/nexussale-bench
out=$(mktemp -d)

pids=()
stop_all() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2> /dev/null || true
        wait "$pid" 2> /dev/null || true
    done
    pids=()
}
trap 'stop_all; rm -rf "$out"' EXIT

source scripts/lib/ports.sh

# Redis's counters now, to $out/$1: commandstats, then its CPU seconds; the server's CPU ticks.
snapshot() {
    redis-cli -p "$redis_port" info commandstats | tr -d '\r' | grep '^cmdstat_' > "$out/cmd-$1"
    redis-cli -p "$redis_port" info cpu | tr -d '\r' |
        awk -F: '$1 == "used_cpu_user" || $1 == "used_cpu_sys" { s += $2 } END { print s }' > "$out/rcpu-$1"
    awk '{ print $14 + $15 }' "/proc/$server_pid/stat" > "$out/scpu-$1"
}

# Waits up to 30 s for COMMAND to succeed, else stops with LOG.
ready() { # COMMAND LOG
    for _ in $(seq 300); do
        $1 > /dev/null 2>&1 && return 0
        sleep 0.1
    done
    cat "$2" >&2
    echo "not ready within 30 s: $1" >&2
    exit 1
}

one() {
    local sales=$1
    redis_port=$(free_port)
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
        --logfile "$out/redis.log" &
    pids+=($!)
    ready "redis-cli -p $redis_port ping" "$out/redis.log"
    local port
    port=$(free_port)
    RUST_LOG=warn "$server_bin" --listen "127.0.0.1:$port" --redis-url "redis://127.0.0.1:$redis_port" \
        > "$out/server.log" 2>&1 &
    server_pid=$!
    pids+=("$server_pid")
    ready "curl -fs http://127.0.0.1:$port/ready" "$out/server.log"
    # Two purchases a buyer (one a burst), never sold out.
    local burst=("$bench" --url "http://127.0.0.1:$port" --sku cost --sales "$sales"
        --per-user-limit 2 --users "$users" --concurrency 256 --server-pid "$server_pid"
        --wait-persisted 600)
    "${burst[@]}" --stock $((2 * users / sales + 10)) 2>> "$out/bench.log" | tail -n 1 > "$out/warm.json"
    snapshot 0
    "${burst[@]}" --no-create 2>> "$out/bench.log" | tail -n 1 > "$out/burst.json"
    snapshot 1
    local keys
    keys=$(redis-cli -p "$redis_port" dbsize)
    python3 - "$out" "$sales" "$keys" "$(getconf CLK_TCK)" << 'PY'
import json, re, sys
out, sales, keys, tck = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def stats(n):
    counts = {}
    for line in open(f"{out}/cmd-{n}"):
        m = re.match(r"cmdstat_([\w|]+):calls=(\d+)", line)
        if m:
            counts[m[1]] = int(m[2])
    return counts
def number(name):
    return float(open(f"{out}/{name}").read())
burst = json.load(open(f"{out}/burst.json"))
accepted = burst["accepted"]
if accepted == 0 or burst["errors"] or burst["lost"] or burst["oversold"] or burst["duplicates"]:
    sys.exit(f"the measured burst went wrong: {burst}")
before, after = stats(0), stats(1)
per = {k: (after[k] - before.get(k, 0)) / accepted for k in after}
redis_us = (number("rcpu-1") - number("rcpu-0")) * 1e6 / accepted
server_us = (number("scpu-1") - number("scpu-0")) / tck * 1e6 / accepted
commands = sum(v for k, v in per.items() if k != "evalsha")
kinds = ", ".join(f"{k} {v:.2f}" for k, v in sorted(per.items()) if v >= 0.005)
print(f"| {sales:,} | {burst['rps']:,.0f} | {redis_us:.1f} | {server_us:.1f} | "
      f"{per.get('evalsha', 0):.3f} | {commands:.2f} | {kinds} | {keys:,} |")
PY
    stop_all
}

echo "| live sales | purchases/s | redis-server CPU µs a purchase | server CPU µs a purchase | script calls a purchase | commands a purchase (the scripts' own; EVALSHA apart) | each kind | Redis keys after |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"
for _ in $(seq "$rounds"); do
    for sales in "${points[@]}"; do
        one "$sales"
    done
done

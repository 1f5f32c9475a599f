#!/usr/bin/env bash
# Front ends and workers as separate processes over shared Redis, Kafka and MySQL:
#   - two front ends (`--no-worker`) take purchases;
#   - one worker process persists the orders from Kafka into MySQL and runs the
#     expiry sweeper.
# Any front end can be added or removed while the sale runs; more workers share the partitions.
#
# Needs Redis and MySQL: NEXUSSALE_REDIS_URL / NEXUSSALE_DATABASE_URL, or, unset, the local
# Redis and MariaDB (a scratch database, dropped at the end; needs the `mysql` client). Kafka:
# NEXUSSALE_KAFKA_BROKERS, or, unset, librdkafka's mock cluster started by this script.
#   bash examples/multi_process.sh
set -euo pipefail
cd "$(dirname "$0")/.."

run=$$-$RANDOM
redis=${NEXUSSALE_REDIS_URL:-redis://127.0.0.1:6379}
if [ -n "${NEXUSSALE_DATABASE_URL:-}" ]; then
    mysql=$NEXUSSALE_DATABASE_URL
else
    # The local MariaDB: a database of the walkthrough's own, dropped at the end.
    scratch="nexussale_walkthrough_$$"
    mysql -h127.0.0.1 -uroot -e "CREATE DATABASE $scratch"
    mysql="mysql://root@127.0.0.1:3306/$scratch"
fi
topic="multi-process-$run"
prefix="multi-process-$run"
sku="demo-$run"

cargo build -q -p nexussale-server -p nexussale-examples --example mock_kafka
# Wherever cargo puts its builds (CARGO_TARGET_DIR, a config file, or ./target).
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
server=$target/debug/nexussale-server
pids=()
cleanup() {
    # Servers first, the mock broker last (the servers would log its absence).
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill "${pids[i]}" 2>/dev/null || true
        wait "${pids[i]}" 2>/dev/null || true
    done
    if [ -n "${scratch:-}" ]; then mysql -h127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS $scratch"; fi
    if command -v redis-cli > /dev/null && [ -z "${NEXUSSALE_REDIS_URL:-}" ]; then
        redis-cli --scan --pattern "$prefix:*" | xargs -r redis-cli unlink > /dev/null
    fi
}
trap cleanup EXIT

brokers=${NEXUSSALE_KAFKA_BROKERS:-}
if [ -z "$brokers" ]; then
    # The mock runs until it is killed (by cleanup); its first line is its address.
    coproc MOCK { exec "$target/debug/examples/mock_kafka" --listen 127.0.0.1:0 "$topic"; }
    pids+=("$MOCK_PID")
    read -r brokers <&"${MOCK[0]}"
    echo "kafka: mock cluster at $brokers"
fi

# Three free ports (the kernel picks them), so the walkthrough runs beside anything else.
read -r worker_port front_a front_b < <(python3 -c '
import socket
sockets = [socket.socket() for _ in range(3)]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in sockets))')

common=(--redis-url "$redis" --redis-prefix "$prefix" --database-url "$mysql"
        --kafka-brokers "$brokers" --kafka-topic "$topic" --sale "$sku=50")
RUST_LOG=error "$server" --listen "127.0.0.1:$worker_port" "${common[@]}" & pids+=($!)
RUST_LOG=error "$server" --listen "127.0.0.1:$front_a" --no-worker "${common[@]}" & pids+=($!)
RUST_LOG=error "$server" --listen "127.0.0.1:$front_b" --no-worker "${common[@]}" & pids+=($!)
for port in "$worker_port" "$front_a" "$front_b"; do
    ready=no
    for _ in $(seq 300); do
        if curl -fs "http://127.0.0.1:$port/ready" > /dev/null; then ready=yes; break; fi
        sleep 0.1
    done
    [ "$ready" = yes ] || { echo "FAILED: the server on port $port was not ready within 30 s"; exit 1; }
done
echo "three processes ready: worker on $worker_port, front ends on $front_a and $front_b"

# 200 buyers for 50 units, spread over both front ends.
accepted=0
for i in $(seq 200); do
    if ((i % 2)); then port=$front_a; else port=$front_b; fi
    status=$(curl -s -o /dev/null -w '%{http_code}' -XPOST "http://127.0.0.1:$port/v1/sales/$sku/purchase" \
        -H 'content-type: application/json' -d "{\"user\":\"buyer-$i\"}")
    [ "$status" = 202 ] && accepted=$((accepted + 1))
done
echo "accepted: $accepted of 200 (stock 50)"

# The worker persists them; any process reads them back from MySQL.
# (The worker's first consumer-group join takes a few seconds.)
persisted=0
for _ in $(seq 300); do
    persisted=$(curl -s "http://127.0.0.1:$front_b/v1/orders?sku=$sku&limit=1000" | grep -o '"id"' | wc -l || true)
    [ "$persisted" -ge "$accepted" ] && break
    sleep 0.1
done
echo "persisted by the worker: $persisted"
[ "$accepted" = 50 ] && [ "$persisted" = 50 ] || { echo "FAILED: expected 50 and 50"; exit 1; }
echo "ok"

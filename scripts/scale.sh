#!/usr/bin/env bash
# How cost grows (issue 22): one curve per run of this script, each point on fresh servers (a
# server process, and a Redis of its own on a free port), with its same-run baselines; rewrites
# the curve's table in docs/BENCHMARKS.md (between its `scripts/scale.sh` markers) and its chart,
# docs/scale/<curve>.png (log-scale x).
#
#   bash scripts/scale.sh sales    # 1, 100, 10,000, 100,000 live sales, a 100,000-buyer burst
#                                  # spread over them (embedded; Redis + MariaDB), 3 runs
#   bash scripts/scale.sh buyers   # 10^5, 10^6, 10^7 distinct buyers on one sale (embedded;
#                                  # Redis stock with in-memory orders), 1 run
#   bash scripts/scale.sh expiry   # 10^5, 10^6 reservations lapsing in the same second (Redis
#                                  # stock, MariaDB orders), 1 run: see expiry_point below
#   bash scripts/scale.sh orders   # MariaDB's orders table empty, then bulk-loaded with 10^5,
#                                  # 10^6, 10^7 orders (Redis stock, mock Kafka), 1 run: see
#                                  # orders_point below
#   bash scripts/scale.sh broker   # the full stack through tansu and through the Kafka mock at
#                                  # concurrency 1, 16, 256, 1 run: see broker_point below
#   options: --runs R, --points 1,100 (the curve's x), --backends embedded,redis, --users U
#            (the sales curve's burst), --buffer-pool-mb M (the orders curve with MariaDB's
#            buffer pool resized to M MB for the run, put back after), --report (only redraw the
#            table and chart from the last results, target/scale/<curve>.jsonl)
#
# Per point: the burst's purchases/s and p99, its /health baseline on the same connections, the
# server's RSS after it, Redis's used memory (and per reservation), and, once the burst is over
# and persisted, 10 s idle: the sweeper's stock-store calls per second (the server's
# nexussale_sweeper_store_calls_total), the server's CPU, Redis commands per second, and how long
# one GET /metrics and one GET /v1/sales page take. The same-run baseline of a point is the
# curve's first point in the same run (ratio columns). Needs redis-server and, for the sales
# curve's Redis backend, the local MariaDB (a scratch database per point, dropped after).
set -euo pipefail
cd "$(dirname "$0")/.."

curve=${1:-}
shift || true
case "$curve" in
    sales) runs=3 points=1,100,10000,100000 users=100000 ;;
    buyers) runs=1 points=100000,1000000,10000000 users=0 ;;
    expiry) runs=1 points=100000,1000000 users=200000 ;;
    # 50,000 events: the Kafka mock keeps 5 MB a partition (~7,000 events), dropping the oldest.
    orders) runs=1 points=0,100000,1000000,10000000 users=50000 ;;
    broker) runs=1 points=1,16,256 users=50000 ;;
    *) echo "usage: bash scripts/scale.sh sales|buyers|expiry|orders|broker [--runs R] [--points a,b] [--backends embedded,redis] [--users U] [--report]" >&2; exit 2 ;;
esac
backends=embedded,redis
# Reservations lapse while no server runs, so the stock must outlive one: Redis only.
[ "$curve" = expiry ] && backends=redis
[ "$curve" = orders ] && backends=redis
[ "$curve" = broker ] && backends=tansu,mock
report_only=0
buffer_pool_mb=""
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs=$2; shift 2 ;;
        --points) points=$2; shift 2 ;;
        --backends) backends=$2; shift 2 ;;
        --users) users=$2; shift 2 ;;
        --buffer-pool-mb) buffer_pool_mb=$2; shift 2 ;;
        --report) report_only=1; shift ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

out=target/scale
mkdir -p "$out" docs/scale
results="$out/$curve.jsonl"

# The charts need matplotlib (PyPI), installed once for this user.
python3 -c 'import matplotlib' 2> /dev/null || python3 -m pip install --quiet --user matplotlib

if [ "$report_only" = 1 ]; then
    python3 scripts/scale_report.py "$curve" "$results" docs/BENCHMARKS.md docs/scale
    exit 0
fi

echo "== building (release)"
cargo build -q --release -p nexussale-server -p nexussale-bench
case "$curve" in
    orders | broker) cargo build -q --release -p nexussale-examples --example mock_kafka ;;
esac
if [ "$curve" = broker ]; then
    # tansu 0.6.0, built once by scripts/deps.sh.
    tansu=${NEXUSSALE_TANSU:-$(command -v tansu || echo "${CARGO_HOME:-$HOME/.cargo}/bin/tansu")}
    [ -x "$tansu" ] || { echo "no tansu at $tansu: run bash scripts/deps.sh" >&2; exit 1; }
fi
server_bin=${NEXUSSALE_BENCH_SERVER:-target/release/nexussale-server}
bench=target/release/nexussale-bench
: > "$results"
# The build measured, as the table shows it (a redraw with --report keeps it).
measured="\`$(git rev-parse --short HEAD)\`"
git diff --quiet HEAD -- . ':!docs' || measured="$measured plus uncommitted changes"

pids=()
scratch=""
stop_all() {
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill "${pids[i]}" 2> /dev/null || true
        wait "${pids[i]}" 2> /dev/null || true
    done
    pids=()
    if [ -n "$scratch" ]; then
        mysql -h127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS $scratch" || true
        scratch=""
    fi
}
# MariaDB's buffer pool as it was, when --buffer-pool-mb resized it for the run; its dirty-page
# target as it was, while settle_writes lowers it.
pool_before=""
dirty_pct_before=""
finish() {
    stop_all
    if [ -n "$dirty_pct_before" ]; then
        mysql -h127.0.0.1 -uroot -e "SET GLOBAL innodb_max_dirty_pages_pct = $dirty_pct_before" || true
    fi
    if [ -n "$pool_before" ]; then
        mysql -h127.0.0.1 -uroot -e "SET GLOBAL innodb_buffer_pool_size = $pool_before" || true
    fi
}
trap finish EXIT

# The buffer pool's size in MB now (a resize goes on in the background: polled until it holds).
buffer_pool() {
    mysql -N -h127.0.0.1 -uroot -e "SELECT @@innodb_buffer_pool_size DIV 1048576"
}
if [ -n "$buffer_pool_mb" ]; then
    pool_before=$(mysql -N -h127.0.0.1 -uroot -e "SELECT @@innodb_buffer_pool_size")
    mysql -h127.0.0.1 -uroot -e "SET GLOBAL innodb_buffer_pool_size = $((buffer_pool_mb * 1048576))"
    for _ in $(seq 600); do
        resize=$(mysql -N -h127.0.0.1 -uroot -e "SHOW STATUS LIKE 'Innodb_buffer_pool_resize_status'" | cut -f2)
        [ "$(buffer_pool)" -ge "$buffer_pool_mb" ] && { [ -z "$resize" ] || [[ "$resize" == Completed* ]]; } && break
        sleep 0.5
    done
    echo "== MariaDB's buffer pool: $(buffer_pool) MB for this run (put back to $((pool_before / 1048576)) MB after)"
fi

source scripts/lib/ports.sh

# A Redis of the point's own (nothing on disk): sets redis_port.
start_redis() {
    redis_port=$(free_port)
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
        --logfile "$out/redis-$1.log" &
    redis_pid=$!
    pids+=("$redis_pid")
    for _ in $(seq 100); do
        redis-cli -p "$redis_port" ping > /dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "redis-server did not start: $out/redis-$1.log" >&2
    exit 1
}

# The server for `backend` (embedded, redis): sets port and server_pid. With `again`, on the
# Redis and database the previous server of this point used.
start_server() {
    local backend=$1 tag=$2 again=${3:-}
    local flags=()
    if [ "$backend" = redis ]; then
        [ -n "$again" ] || start_redis "$tag"
        flags+=(--redis-url "redis://127.0.0.1:$redis_port")
        if [ "$curve" != buyers ]; then
            if [ -z "$again" ]; then
                scratch="nexussale_scale_${tag//-/_}"
                mysql -h127.0.0.1 -uroot -e "CREATE DATABASE $scratch"
            fi
            flags+=(--database-url "mysql://root@127.0.0.1:3306/$scratch")
        fi
    fi
    launch "$tag" "${flags[@]}"
}

# A server with `flags` (after the tag, which names its log): sets port and server_pid.
launch() {
    local tag=$1
    shift
    port=$(free_port)
    RUST_LOG=warn "$server_bin" --listen "127.0.0.1:$port" "$@" > "$out/server-$tag.log" 2>&1 &
    server_pid=$!
    pids+=("$server_pid")
    for _ in $(seq 300); do
        curl -fs "http://127.0.0.1:$port/ready" > /dev/null && return 0
        kill -0 "$server_pid" 2> /dev/null || break
        sleep 0.1
    done
    echo "the server did not get ready; its log:" >&2
    cat "$out/server-$tag.log" >&2
    exit 1
}

# Stops the server only (its Redis and database stay).
stop_server() {
    kill "$server_pid" 2> /dev/null || true
    wait "$server_pid" 2> /dev/null || true
    local kept=()
    for pid in "${pids[@]}"; do
        [ "$pid" = "$server_pid" ] || kept+=("$pid")
    done
    pids=("${kept[@]}")
}

# Ticks of CPU (user + system) the process used so far.
cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

sweeper_calls() {
    curl -fs "http://127.0.0.1:$port/metrics" | awk '$1 == "nexussale_sweeper_store_calls_total" { print $2 }'
}

redis_calls() {
    redis-cli -p "$redis_port" info stats | tr -d '\r' | awk -F: '$1 == "total_commands_processed" { print $2 }'
}

redis_used() {
    redis-cli -p "$redis_port" info memory | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }'
}

# One point: a burst on fresh servers, then 10 s idle; appends its line to the results.
point() {
    local backend=$1 x=$2 run=$3
    local tag="$curve-$backend-$x-$run-$$" sales=1 buyers stock
    start_server "$backend" "$tag"
    local redis_before=null
    [ "$backend" = redis ] && redis_before=$(redis_used)
    if [ "$curve" = sales ]; then
        sales=$x buyers=$users
        # Never sold out: the rate is the purchases', not the refusals'.
        stock=$((2 * buyers / sales + 10))
    else
        buyers=$x stock=$x
    fi
    echo "== run $run: $curve $x, $backend ($buyers buyers over $sales sale(s))"
    set +e
    line=$("$bench" --url "http://127.0.0.1:$port" --sku "$tag" --sales "$sales" --stock "$stock" \
        --users "$buyers" --concurrency 256 --baseline 100000 --server-pid "$server_pid" \
        --wait-persisted 1800 | tail -n 1)
    status=$?
    set -e
    echo "$line"
    # Idle: the burst's reservations are held (15 min TTL), none due.
    sleep 2
    local calls0 ticks0 rcalls0=0 calls1 ticks1 rcalls1=0
    calls0=$(sweeper_calls)
    ticks0=$(cpu_ticks "$server_pid")
    [ "$backend" = redis ] && rcalls0=$(redis_calls)
    sleep 10
    calls1=$(sweeper_calls)
    ticks1=$(cpu_ticks "$server_pid")
    [ "$backend" = redis ] && rcalls1=$(redis_calls)
    local metrics_s sales_s rss_kb redis_after=null
    metrics_s=$(curl -fs -o /dev/null -w '%{time_total}' "http://127.0.0.1:$port/metrics")
    sales_s=$(curl -fs -o /dev/null -w '%{time_total}' "http://127.0.0.1:$port/v1/sales?limit=100")
    rss_kb=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$server_pid/status")
    [ "$backend" = redis ] && redis_after=$(redis_used)
    local hz
    hz=$(getconf CLK_TCK)
    echo "{\"curve\":\"$curve\",\"commit\":\"$measured\",\"date\":\"$(date +%F)\",\"backend\":\"$backend\",\"x\":$x,\"run\":$run,\"exit\":$status,\
\"buyers\":$buyers,\"sales\":$sales,\
\"idle_sweeper_calls_per_s\":$(python3 -c "print(($calls1 - $calls0) / 10)"),\
\"idle_cpu_pct\":$(python3 -c "print(round(100 * ($ticks1 - $ticks0) / $hz / 10, 2))"),\
\"idle_redis_commands_per_s\":$(python3 -c "print(($rcalls1 - $rcalls0) / 10)"),\
\"redis_used_before\":$redis_before,\"redis_used_after\":$redis_after,\
\"rss_after_kb\":$rss_kb,\"metrics_s\":$metrics_s,\"sales_page_s\":$sales_s,\
\"summary\":${line:-null}}" >> "$results"
    stop_all
}

now() {
    date +%s.%N
}

# The CPU seconds (user and system, all threads) process $1 has used so far.
cpu_s() {
    python3 -c "print(round($(cpu_ticks "$1") / $(getconf CLK_TCK), 2))"
}

# The sale's orders recorded `expired` in the point's database.
expired_orders() {
    mysql -N -h127.0.0.1 -uroot "$scratch" -e "SELECT COUNT(*) FROM orders WHERE sku = '$1' AND status = 'expired'"
}

# Polls, from t0 ($3), until the units of sale $1 are all $2 available again and none of its
# orders is still pending: prints the seconds of each ("null" past 1800 s). One process and an
# indexed one-row query a poll: the watch must not load the machine whose pace it measures (a
# COUNT over the sale's orders and three interpreters every 0.2 s took a core's share).
lapse_watch() {
    python3 - "$port" "$1" "$2" "$scratch" "$3" << 'EOF'
import json, subprocess, sys, time, urllib.request

port, sku, x, db, t0 = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
pending = f"SELECT 1 FROM orders WHERE sku = '{sku}' AND status = 'pending' LIMIT 1"
units = orders = None
while units is None or orders is None:
    elapsed = round(time.time() - t0, 2)
    if elapsed > 1800:
        print("not every reservation lapsed within 1800 s", file=sys.stderr)
        break
    if units is None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/sales/{sku}") as answer:
            if json.load(answer)["available"] == x:
                units = elapsed
    if orders is None:
        found = subprocess.run(["mysql", "-N", "-h127.0.0.1", "-uroot", db, "-e", pending],
                               capture_output=True, text=True, check=True).stdout.strip()
        if not found:
            orders = elapsed
    time.sleep(0.2)
print("null" if units is None else units, "null" if orders is None else orders)
EOF
}

# One expiry point: x buyers each hold a reservation of the same sale, with a TTL long enough for
# that burst, its persistence, the bench's audit and a baseline burst to end before the first
# lapse; then the server stops, so nothing sweeps while every reservation lapses, and a new
# server on the same Redis and database finds all x due at once. From the new server's start:
# seconds until the sale's units are all available again and until every order is `expired`
# (MariaDB), and a burst of --users buyers on another sale meanwhile; its baseline is the same
# burst on the first server, idle, in the same run.
expiry_point() {
    local x=$1 run=$2
    local tag="expiry-redis-$x-$run-$$"
    local ttl=$((60 + x / 4000))
    start_server redis "$tag"
    curl -fs -X POST -H 'content-type: application/json' \
        -d "{\"sku\":\"$tag\",\"stock\":$x,\"per_user_limit\":1,\"reservation_ttl_secs\":$ttl}" \
        "http://127.0.0.1:$port/v1/sales" > /dev/null
    echo "== run $run: $x reservations held (TTL $ttl s), then lapsing at once"
    local held held_status idle idle_status beside beside_status
    set +e
    held=$("$bench" --url "http://127.0.0.1:$port" --sku "$tag" --no-create --stock "$x" \
        --users "$x" --concurrency 256 --wait-persisted 1800 | tail -n 1)
    held_status=$?
    local held_end
    held_end=$(date +%s)
    idle=$("$bench" --url "http://127.0.0.1:$port" --sku "$tag-idle" --stock $((2 * users)) \
        --users "$users" --concurrency 256 --wait-persisted 600 | tail -n 1)
    idle_status=$?
    set -e
    echo "$held"
    echo "$idle"
    local expired_early
    expired_early=$(expired_orders "$tag")
    stop_server
    # The last reservation was taken before the held burst's end: it lapses within a TTL of it.
    local wait_s=$((held_end + ttl + 2 - $(date +%s)))
    echo "== waiting ${wait_s} s for every reservation to lapse"
    [ "$wait_s" -gt 0 ] && sleep "$wait_s"
    start_server redis "$tag-after" again
    local t0 units_s=null orders_s=null mariadb_pid cpu0 cpu1
    mariadb_pid=$(pidof mariadbd || pidof mysqld)
    # Where the lapse's time goes: each process's CPU seconds from the start to the last order
    # expired (the burst beside is part of it).
    cpu0="$(cpu_s "$server_pid") $(cpu_s "$redis_pid") $(cpu_s "$mariadb_pid")"
    t0=$(now)
    "$bench" --url "http://127.0.0.1:$port" --sku "$tag-beside" --stock $((2 * users)) \
        --users "$users" --concurrency 256 --wait-persisted 600 > "$out/beside-$tag.log" 2>&1 &
    local beside_pid=$!
    read -r units_s orders_s < <(lapse_watch "$tag" "$x" "$t0") || true
    units_s=${units_s:-null}
    orders_s=${orders_s:-null}
    cpu1="$(cpu_s "$server_pid") $(cpu_s "$redis_pid") $(cpu_s "$mariadb_pid")"
    local lapse_cpu
    lapse_cpu=$(python3 -c "
a, b = '$cpu0'.split(), '$cpu1'.split()
print('{' + ','.join(f'\"{n}\":{round(float(y) - float(x), 2)}' for n, x, y in zip(('server', 'redis', 'mariadb'), a, b)) + '}')")
    set +e
    wait "$beside_pid"
    beside_status=$?
    set -e
    beside=$(tail -n 1 "$out/beside-$tag.log")
    echo "$beside"
    echo "   units back in ${units_s} s, orders expired in ${orders_s} s; CPU-s meanwhile $lapse_cpu"
    local status=$((held_status | idle_status | beside_status))
    [ "$expired_early" = 0 ] || status=1
    [ "$units_s" != null ] && [ "$orders_s" != null ] || status=1
    # Nothing pending is not yet every order expired: count them once.
    local expired_count
    expired_count=$(expired_orders "$tag")
    [ "$expired_count" = "$x" ] || { echo "only $expired_count orders expired of $x" >&2; status=1; }
    echo "{\"curve\":\"$curve\",\"commit\":\"$measured\",\"date\":\"$(date +%F)\",\"backend\":\"redis\",\"x\":$x,\"run\":$run,\
\"exit\":$status,\"ttl_s\":$ttl,\"expired_early\":$expired_early,\"units_back_s\":$units_s,\
\"orders_expired_s\":$orders_s,\"lapse_cpu_s\":$lapse_cpu,\"held\":${held:-null},\"idle\":${idle:-null},\"summary\":${beside:-null}}" >> "$results"
    stop_all
}

# Orders of the orders curve's big sale: the sale rebuilt and reconciled (10^6 at most).
big_orders() {
    local x=$1
    echo $((x < 1000000 ? x : 1000000))
}

# Bulk-loads x orders into the point's database, 10^6 a statement: the big sale `big` gets
# every (x / 10^6)th (so 10^6 at most, spread over time), the others go round 1,000 sales
# `other-N`; buyer `user-(i mod x/2)` (two orders each); 5 % pending (lapsing in a day), 10 %
# cancelled, 10 % expired, the rest paid; ids UUID v7, one millisecond apart, ending a day ago.
# Writes 10,000 of them, `<id> <user>` a line, to $out/orders-$tag.ids.
bulk_load() {
    local x=$1 tag=$2 base_ms=$3
    local step=$(((x + 999999) / 1000000)) big
    big=$(big_orders "$x")
    for ((from = 1; from <= x; from += 1000000)); do
        local to=$((from + 999999 < x ? from + 999999 : x))
        mysql -h127.0.0.1 -uroot "$scratch" -e "
INSERT INTO orders (id, sku, user_id, quantity, status, created_at, updated_at, expires_at)
SELECT UNHEX(CONCAT(LPAD(HEX($base_ms + seq), 12, '0'), '7', LPAD(HEX(seq % 4096), 3, '0'), '8',
                    LPAD(HEX(seq), 15, '0'))),
       IF(seq % $step = 0, 'big', CONCAT('other-', seq % 1000)),
       CONCAT('user-', seq % $((x / 2))),
       1,
       ELT(1 + IF(seq % 20 = 0, 0, IF(seq % 20 < 3, 1, IF(seq % 20 < 5, 2, 3))),
           'pending', 'cancelled', 'expired', 'paid'),
       FROM_UNIXTIME(($base_ms + seq) / 1000), FROM_UNIXTIME(($base_ms + seq) / 1000),
       IF(seq % 20 = 0, NOW(6) + INTERVAL 1 DAY, FROM_UNIXTIME(($base_ms + seq) / 1000 + 900))
FROM seq_${from}_to_${to}"
    done
    # Every sale's stock holds its paid and pending units; two orders a buyer are allowed.
    mysql -h127.0.0.1 -uroot "$scratch" -e "
INSERT INTO sales (sku, stock, per_user_limit, reservation_ttl_ns)
SELECT 'big', $big + 100000, 4, 900000000000
UNION ALL SELECT CONCAT('other-', seq), $x + 100000, 4, 900000000000 FROM seq_0_to_999;
ANALYZE TABLE orders"
    python3 - "$x" "$base_ms" > "$out/orders-$tag.ids" << 'PY'
import random, sys, uuid
x, base = int(sys.argv[1]), int(sys.argv[2])
for seq in random.sample(range(1, x + 1), min(x, 10000)):
    text = f"{base + seq:012x}7{seq % 4096:03x}8{seq:015x}"
    print(uuid.UUID(text), f"user-{seq % (x // 2)}")
PY
}

# Sets settle_s: the seconds until the pages the bulk load left dirty are written out. InnoDB
# writes those gigabytes over the next minutes, beside whatever runs then, which a table grown
# over months does not have. Its dirty-page target is 0 meanwhile (put back, also on failure).
settle_writes() {
    local t0 dirty
    t0=$(now)
    dirty_pct_before=$(mysql -N -h127.0.0.1 -uroot -e "SELECT @@innodb_max_dirty_pages_pct")
    mysql -h127.0.0.1 -uroot -e "SET GLOBAL innodb_max_dirty_pages_pct = 0"
    for _ in $(seq 3600); do
        dirty=$(mysql -N -h127.0.0.1 -uroot -e "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'" | cut -f2)
        [ "$dirty" -lt 100 ] && break
        sleep 0.5
    done
    mysql -h127.0.0.1 -uroot -e "SET GLOBAL innodb_max_dirty_pages_pct = $dirty_pct_before"
    dirty_pct_before=""
    settle_s=$(python3 -c "print(round($(now) - $t0, 1))")
}

# The status of one purchase of the big sale by `scale-probe`.
probe_purchase() {
    curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' \
        -d '{"user":"scale-probe"}' "http://127.0.0.1:$port/v1/sales/big/purchase"
}

# One orders point: MariaDB's orders table bulk-loaded with x orders (none for x = 0, the
# baseline), on Redis stock and a Kafka mock of the point's own. Then:
# - inserts: a front end without a worker takes a burst of --users purchases of a new sale (its
#   events wait in Kafka); a worker process then starts, and the seconds until MariaDB holds
#   them all give the worker's insert rate;
# - reads: 20,000 `GET /v1/orders/{id}` and 20,000 `GET /v1/orders?user=` of loaded orders, 8
#   at a time, on the worker process;
# - the big sale (min(x, 10^6) orders): its stock store is empty, so the first purchase starts a
#   rebuild (timed until a purchase is answered again: it includes the rebuild's 1 s settle),
#   then one reconcile (dry run) and one sale report are timed.
orders_point() {
    local x=$1 run=$2
    local tag="orders-$x-$run-$$"
    start_redis "$tag"
    scratch="nexussale_scale_${tag//-/_}"
    mysql -h127.0.0.1 -uroot -e "CREATE DATABASE $scratch"
    local brokers
    coproc MOCK { exec target/release/examples/mock_kafka --listen 127.0.0.1:0 "$tag"; }
    pids+=("$MOCK_PID")
    read -r brokers <&"${MOCK[0]}"
    local flags=(--redis-url "redis://127.0.0.1:$redis_port"
        --database-url "mysql://root@127.0.0.1:3306/$scratch"
        --kafka-brokers "$brokers" --kafka-topic "$tag" --kafka-group "$tag")
    # The front end creates the tables; the load goes in behind it.
    launch "$tag-front" "${flags[@]}" --no-worker
    local front=$port
    echo "== run $run: orders table with $x orders"
    local load_s=null settle_s=null bytes
    if [ "$x" -gt 0 ]; then
        local t0 base_ms
        t0=$(now)
        base_ms=$(python3 -c "import time; print(int((time.time() - 86400) * 1000) - $x)")
        bulk_load "$x" "$tag" "$base_ms"
        load_s=$(python3 -c "print(round($(now) - $t0, 1))")
        echo "   loaded in ${load_s} s"
        settle_writes
        echo "   its dirty pages written in ${settle_s} s"
    fi
    bytes=$(mysql -N -h127.0.0.1 -uroot -e "SELECT data_length + index_length FROM information_schema.tables WHERE table_schema = '$scratch' AND table_name = 'orders'")
    local burst status=0
    set +e
    burst=$("$bench" --url "http://127.0.0.1:$front" --sku "ins-$tag" --stock "$users" \
        --users "$users" --concurrency 256 --wait-persisted 0 2> /dev/null | tail -n 1)
    set -e
    local accepted
    accepted=$(python3 -c "import json, sys; print(json.loads(sys.argv[1]).get('accepted', 0))" "$burst")
    [ "$accepted" = "$users" ] || status=1
    launch "$tag-worker" "${flags[@]}"
    # The rate runs from the first order stored (the consumer's joining its group before it is
    # not the table's cost) to the last.
    local t1 insert_s=null inserts_per_s=null first_at="" first_stored=0 stored=0 before=-1 still=0
    t1=$(now)
    while true; do
        local elapsed at
        stored=$(mysql -N -h127.0.0.1 -uroot "$scratch" -e "SELECT COUNT(*) FROM orders WHERE sku = 'ins-$tag'")
        at=$(now)
        elapsed=$(python3 -c "print(round($at - $t1, 2))")
        if [ -z "$first_at" ] && [ "$stored" -gt 0 ]; then
            first_at=$at first_stored=$stored
        fi
        if [ "$stored" -ge "$accepted" ]; then
            insert_s=$elapsed
            inserts_per_s=$(python3 -c "print(round(($stored - $first_stored) / max($at - $first_at, 1e-3)))")
            break
        fi
        # Stalled (the worker lost, or events the broker no longer holds): not a rate.
        if [ "$stored" = "$before" ]; then still=$((still + 1)); else still=0; fi
        before=$stored
        if [ "$still" -ge 150 ]; then
            echo "the worker stored $stored of $accepted and then nothing for 30 s" >&2
            status=1
            break
        fi
        sleep 0.2
    done
    local busy_s
    busy_s=$(served nexussale_worker_insert_duration_seconds_sum)
    echo "   $accepted orders stored ${insert_s} s after the worker started, ${inserts_per_s}/s from the first; inserting ${busy_s} s"
    local reads=null rebuild_s=null reconcile_s=null report_s=null
    if [ "$x" -gt 0 ]; then
        set +e
        reads=$("$bench" --url "http://127.0.0.1:$port" --reads 20000 \
            --orders-file "$out/orders-$tag.ids" --concurrency 8 2> /dev/null | tail -n 1)
        [ $? = 0 ] || status=1
        set -e
        echo "   reads: $reads"
        local t2 answer
        t2=$(now)
        answer=$(probe_purchase)
        [ "$answer" = 503 ] || { echo "the big sale's first purchase answered $answer, not 503 (rebuilding)" >&2; status=1; }
        while [ "$answer" = 503 ]; do
            sleep 0.1
            answer=$(probe_purchase)
            if python3 -c "import sys; sys.exit(0 if $(now) - $t2 > 1800 else 1)"; then
                echo "the big sale was not rebuilt within 1800 s" >&2
                status=1
                break
            fi
        done
        rebuild_s=$(python3 -c "print(round($(now) - $t2, 2))")
        echo "   big sale ($(big_orders "$x") orders) rebuilt in ${rebuild_s} s (then answered $answer)"
        reconcile_s=$(curl -fs -o /dev/null -w '%{time_total}' -X POST -H 'content-type: application/json' \
            -d '{"repair":false}' "http://127.0.0.1:$port/v1/sales/big/reconcile") || status=1
        report_s=$(curl -fs -o /dev/null -w '%{time_total}' "http://127.0.0.1:$port/v1/sales/big/report") || status=1
        echo "   reconcile ${reconcile_s} s, report ${report_s} s"
    fi
    echo "{\"curve\":\"$curve\",\"commit\":\"$measured\",\"date\":\"$(date +%F)\",\"backend\":\"redis\",\"x\":$x,\"run\":$run,\
\"exit\":$status,\"buffer_pool_mb\":$(buffer_pool),\"load_s\":$load_s,\"settle_s\":$settle_s,\"table_bytes\":$bytes,\"big_orders\":$(big_orders "$x"),\"accepted\":$accepted,\
\"insert_s\":$insert_s,\"inserts_per_s\":$inserts_per_s,\"insert_busy_s\":${busy_s:-null},\"rebuild_s\":$rebuild_s,\"reconcile_s\":$reconcile_s,\"report_s\":$report_s,\
\"reads\":${reads:-null},\"summary\":${burst:-null}}" >> "$results"
    stop_all
}

# A Kafka-protocol broker of the point's own, `tansu` or `mock` (librdkafka's mock cluster, in
# mock_kafka's process, the topic created with 12 partitions): sets brokers and broker_pid.
start_broker() {
    local kind=$1 tag=$2
    if [ "$kind" = tansu ]; then
        local bport
        bport=$(free_port)
        "$tansu" broker --listener-url "tcp://127.0.0.1:$bport" \
            --advertised-listener-url "tcp://127.0.0.1:$bport" \
            --storage-engine memory://tansu/ --cluster-id "$tag" > "$out/tansu-$tag.log" 2>&1 &
        broker_pid=$!
        pids+=("$broker_pid")
        brokers="127.0.0.1:$bport"
        for _ in $(seq 100); do
            (exec 3<> "/dev/tcp/127.0.0.1/$bport") 2> /dev/null && return 0
            sleep 0.1
        done
        echo "tansu did not start: $out/tansu-$tag.log" >&2
        exit 1
    fi
    coproc MOCK { exec target/release/examples/mock_kafka --listen 127.0.0.1:0 "$tag"; }
    broker_pid=$MOCK_PID
    pids+=("$broker_pid")
    read -r brokers <&"${MOCK[0]}"
}

# The server's counter `name` now.
served() {
    curl -fs "http://127.0.0.1:$port/metrics" | awk -v name="$1" '$1 == name { print $2 }'
}

# One broker point: the full stack (Redis stock, MariaDB orders, the worker in the same process)
# publishing through a fresh broker, a burst of --users purchases at concurrency x: its rate,
# the events per produce request (the producer's statistics, nexussale_kafka_*), and the
# broker's CPU per purchase (its process's, during the burst and until every order is stored).
broker_point() {
    local kind=$1 x=$2 run=$3
    local tag="broker-$kind-$x-$run-$$"
    start_redis "$tag"
    scratch="nexussale_scale_${tag//-/_}"
    mysql -h127.0.0.1 -uroot -e "CREATE DATABASE $scratch"
    start_broker "$kind" "$tag"
    launch "$tag" --redis-url "redis://127.0.0.1:$redis_port" \
        --database-url "mysql://root@127.0.0.1:3306/$scratch" \
        --kafka-brokers "$brokers" --kafka-topic "$tag" --kafka-group "$tag"
    echo "== run $run: through $kind at concurrency $x"
    local ticks0 ticks1 line status
    ticks0=$(cpu_ticks "$broker_pid")
    set +e
    line=$("$bench" --url "http://127.0.0.1:$port" --sku "$tag" --stock "$users" --users "$users" \
        --concurrency "$x" --wait-persisted 600 | tail -n 1)
    status=$?
    set -e
    ticks1=$(cpu_ticks "$broker_pid")
    echo "$line"
    # The producer reports its statistics each second.
    sleep 2
    local events requests hz
    events=$(served nexussale_kafka_events_produced_total)
    requests=$(served nexussale_kafka_produce_requests_total)
    hz=$(getconf CLK_TCK)
    echo "   ${events:-?} events in ${requests:-?} produce requests"
    echo "{\"curve\":\"$curve\",\"commit\":\"$measured\",\"date\":\"$(date +%F)\",\"backend\":\"$kind\",\"x\":$x,\"run\":$run,\
\"exit\":$status,\"events\":${events:-null},\"produce_requests\":${requests:-null},\
\"broker_cpu_s\":$(python3 -c "print(round(($ticks1 - $ticks0) / $hz, 2))"),\"summary\":${line:-null}}" >> "$results"
    stop_all
}

IFS=, read -r -a xs <<< "$points"
IFS=, read -r -a bs <<< "$backends"
for run in $(seq "$runs"); do
    for backend in "${bs[@]}"; do
        for x in "${xs[@]}"; do
            if [ "$curve" = expiry ]; then
                expiry_point "$x" "$run"
            elif [ "$curve" = orders ]; then
                orders_point "$x" "$run"
            elif [ "$curve" = broker ]; then
                broker_point "$backend" "$x" "$run"
            else
                point "$backend" "$x" "$run"
            fi
        done
    done
done

python3 scripts/scale_report.py "$curve" "$results" docs/BENCHMARKS.md docs/scale
if grep -q '"exit":[^0]' "$results"; then
    echo "an audit failed or a request errored: see $results" >&2
    exit 1
fi

#!/usr/bin/env bash
# The standard benchmark scenarios, with their same-run baselines; rewrites the generated section
# of docs/BENCHMARKS.md (between the `scripts/bench.sh` markers).
#
#   bash scripts/bench.sh                 # the three HTTP scenarios, 3 runs each
#   bash scripts/bench.sh --runs 5        # more runs (the table shows each, and the median)
#   bash scripts/bench.sh --crates        # also the crate benchmarks (cargo bench, ~15 min)
#   bash scripts/bench.sh --only embedded # one scenario: embedded, redis-mysql, redis-mysql-kafka
#   bash scripts/bench.sh --users 20000   # smaller bursts (a quick check; the tables say so)
#   bash scripts/bench.sh --soak 120      # also a 120 s soak per scenario (2,000 purchases/s,
#                                         # orders cancelled to refill the stock; server memory)
#   bash scripts/bench.sh --observability # only the full stack's open burst, interleaved in each
#                                         # run: traces off, exported at 1 % and 100 % sampling
#                                         # (to a local OTLP sink), and the access log off
#   bash scripts/bench.sh --console       # only the embedded open burst, interleaved in each run:
#                                         # alone, and with 1,000 live-stock listeners and the
#                                         # console's polling (metrics, sales, readiness,
#                                         # reconcile) during it
#   bash scripts/bench.sh --waiting-room  # only the waiting-room drop (embedded, and Redis +
#                                         # MySQL), interleaved in each run with the plain sale
#                                         # of the same stock and buyers
#
# Scenarios (each run on a fresh server process, the load tool on the same machine):
#   embedded           in-memory stock, queue and orders (the README's first command)
#   redis-mysql        stock in Redis, orders in MariaDB/MySQL, the in-process queue
#   redis-mysql-kafka  stock in Redis, orders in MariaDB/MySQL, events through Kafka
#                      (NEXUSSALE_KAFKA_BROKERS, or librdkafka's mock cluster: examples/mock_kafka)
# and per scenario two bursts of 100,000 distinct users at concurrency 256, each after 100,000
# `GET /health` on the same connections (the baseline): "open" (stock 1,000,000: never sells out,
# the purchase rate) and "sale" (stock 10,000: the contract's flash sale, with its sold-out phase).
# Redis and MySQL: NEXUSSALE_REDIS_URL / NEXUSSALE_DATABASE_URL, or the local Redis and MariaDB
# (a scratch database per run, dropped after; needs the `mysql` client).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=3
soak=0
crates=0
users=100000
concurrency=256
only=""
observability=0
console=0
waiting_room=0
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs=$2; shift 2 ;;
        --crates) crates=1; shift ;;
        --only) only=$2; shift 2 ;;
        --users) users=$2; shift 2 ;;
        --soak) soak=$2; shift 2 ;;
        --observability) observability=1; shift ;;
        --console) console=1; shift ;;
        --waiting-room) waiting_room=1; shift ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done


out=target/bench
mkdir -p "$out"
results="$out/results.jsonl"
: > "$results"

echo "== building (release)"
cargo build -q --release -p nexussale-server -p nexussale-bench
cargo build -q --release -p nexussale-examples --example mock_kafka
# NEXUSSALE_BENCH_SERVER: another server binary (an A/B comparison of two builds).
server=${NEXUSSALE_BENCH_SERVER:-target/release/nexussale-server}
bench=target/release/nexussale-bench
redis=${NEXUSSALE_REDIS_URL:-redis://127.0.0.1:6379}

pids=()
scratch=""
prefix=""
stop_all() {
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill "${pids[i]}" 2>/dev/null || true
        wait "${pids[i]}" 2>/dev/null || true
    done
    pids=()
    if [ -n "$scratch" ]; then
        mysql -h127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS $scratch" || true
        scratch=""
    fi
    if [ -n "$prefix" ] && [ -z "${NEXUSSALE_REDIS_URL:-}" ] && command -v redis-cli > /dev/null; then
        redis-cli --scan --pattern "$prefix:*" | xargs -r redis-cli unlink > /dev/null
    fi
    prefix=""
}
trap stop_all EXIT

# Starts a server for `scenario` on a free port; sets $port. `extra` (an array): more flags, and
# `extra_env`: more environment, for this server.
extra=()
extra_env=()
start_server() {
    local scenario=$1 tag=$2
    local flags=("${extra[@]}")
    prefix="bench-$tag"
    case "$scenario" in
        embedded) ;;
        redis-mysql|redis-mysql-kafka)
            local database
            if [ -n "${NEXUSSALE_DATABASE_URL:-}" ]; then
                database=$NEXUSSALE_DATABASE_URL
            else
                scratch="nexussale_bench_${tag//-/_}"
                mysql -h127.0.0.1 -uroot -e "CREATE DATABASE $scratch"
                database="mysql://root@127.0.0.1:3306/$scratch"
            fi
            flags+=(--redis-url "$redis" --redis-prefix "$prefix" --database-url "$database")
            ;;
        *) echo "unknown scenario $scenario" >&2; exit 2 ;;
    esac
    if [ "$scenario" = redis-mysql-kafka ]; then
        local topic="bench-$tag" brokers=${NEXUSSALE_KAFKA_BROKERS:-}
        if [ -z "$brokers" ]; then
            # Runs until killed (its pid is the mock's own, through exec); first line: its address.
            coproc MOCK { exec target/release/examples/mock_kafka --listen 127.0.0.1:0 "$topic"; }
            pids+=("$MOCK_PID")
            read -r brokers <&"${MOCK[0]}"
        fi
        flags+=(--kafka-brokers "$brokers" --kafka-topic "$topic" --kafka-group "bench-$tag")
    fi
    # Below the kernel's ephemeral range (32768+), where the bursts' client sockets live; a port
    # some other program holds is retried elsewhere.
    for _ in 1 2 3 4 5; do
        port=$((20000 + RANDOM % 12000))
        env "${extra_env[@]}" RUST_LOG=warn "$server" --listen "127.0.0.1:$port" "${flags[@]}" > "$out/server-$tag.log" 2>&1 &
        server_pid=$!
        for _ in $(seq 300); do
            if curl -fs "http://127.0.0.1:$port/ready" > /dev/null; then
                pids+=("$server_pid")
                return 0
            fi
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        wait "$server_pid" 2>/dev/null || true
        grep -q "Address already in use" "$out/server-$tag.log" || break
    done
    pids+=("$server_pid")
    echo "server for $scenario did not get ready; its log:" >&2
    cat "$out/server-$tag.log" >&2
    exit 1
}

# A sink for OTLP/HTTP: answers every export 200 at once (what a healthy collector costs the
# server, without a collector's own CPU on this machine).
if [ "$observability" = 1 ]; then
    sink_port=$((20000 + RANDOM % 12000))
    python3 -c '
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
' "$sink_port" &
    sink_pid=$!
    trap 'stop_all; kill $sink_pid 2>/dev/null || true' EXIT
    : > "$out/observability.jsonl"
    variants=(traces-off traces-1pct traces-100pct access-log-off)
    for run in $(seq "$runs"); do
        # Each run starts at another variant: a machine that slows over the runs (it does here)
        # weighs on no variant more than another.
        for i in 0 1 2 3; do
            variant=${variants[$(((i + run - 1) % 4))]}
            extra=()
            extra_env=()
            case "$variant" in
                traces-1pct) extra=(--otlp-endpoint "http://127.0.0.1:$sink_port")
                    extra_env=(OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.01) ;;
                traces-100pct) extra=(--otlp-endpoint "http://127.0.0.1:$sink_port")
                    extra_env=(OTEL_TRACES_SAMPLER=parentbased_always_on) ;;
                access-log-off) extra=(--access-log off) ;;
            esac
            tag="obs-$variant-$run-$$"
            start_server redis-mysql-kafka "$tag"
            echo "== run $run: full stack, $variant"
            set +e
            line=$("$bench" --url "http://127.0.0.1:$port" --sku "$tag" --stock 1000000 \
                --users "$users" --concurrency "$concurrency" --baseline "$users" \
                --server-pid "$server_pid" --wait-persisted 300 | tail -n 1)
            status=$?
            set -e
            echo "$line"
            echo "{\"variant\":\"$variant\",\"run\":$run,\"exit\":$status,\"summary\":$line}" >> "$out/observability.jsonl"
            stop_all
        done
    done
    python3 - "$out/observability.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
runs = sorted({r["run"] for r in rows})
def rps(variant, run):
    return next(r["summary"]["rps"] for r in rows if r["variant"] == variant and r["run"] == run)
print("| variant | purchases/s per run | median | ÷ traces off, same run (median) |")
print("| --- | --- | --- | --- |")
for variant in ["traces-off", "traces-1pct", "traces-100pct", "access-log-off"]:
    values = [rps(variant, run) for run in runs]
    ratios = [rps(variant, run) / rps("traces-off", run) for run in runs]
    print(f"| {variant} | {', '.join(f'{v:,.0f}' for v in values)} | {statistics.median(values):,.0f} | {statistics.median(ratios):.3f} |")
PY
    if grep -q '"exit":[^0]' "$out/observability.jsonl"; then
        echo "an audit failed or a request errored: see $out/observability.jsonl" >&2
        exit 1
    fi
    exit 0
fi

# What the console page asks of a server while it is open (scripts: every 2.5 s /metrics; every
# 5 s the sales and readiness; every 10 s a reconcile dry run of the sale shown).
console_polling() {
    local base=$1 sku=$2 tick=0
    while true; do
        curl -fs "$base/metrics" > /dev/null || true
        if [ $((tick % 2)) = 0 ]; then
            curl -fs "$base/v1/sales?limit=1000" > /dev/null || true
            curl -fs "$base/ready" > /dev/null || true
        fi
        if [ $((tick % 4)) = 0 ]; then
            curl -fs -X POST -H 'content-type: application/json' -d '{"repair":false}' \
                "$base/v1/sales/$sku/reconcile" > /dev/null || true
        fi
        tick=$((tick + 1))
        sleep 2.5
    done
}

# A 10,000-unit drop for $users buyers, plain and through a waiting room, on fresh servers.
if [ "$waiting_room" = 1 ]; then
    : > "$out/waiting-room.jsonl"
    variants=(plain room)
    for run in $(seq "$runs"); do
        for scenario in embedded redis-mysql; do
            for i in 0 1; do
                variant=${variants[$(((i + run - 1) % 2))]}
                tag="wr-$scenario-$variant-$run-$$"
                start_server "$scenario" "$tag"
                echo "== run $run: $scenario, $variant"
                mode=()
                [ "$variant" = room ] && mode=(--waiting-room)
                set +e
                line=$("$bench" --url "http://127.0.0.1:$port" --sku "$tag" --stock 10000 \
                    --users "$users" --concurrency "$concurrency" \
                    --server-pid "$server_pid" --wait-persisted 300 "${mode[@]}" | tail -n 1)
                status=$?
                set -e
                echo "$line"
                echo "{\"scenario\":\"$scenario\",\"variant\":\"$variant\",\"run\":$run,\"exit\":$status,\"summary\":$line}" >> "$out/waiting-room.jsonl"
                stop_all
            done
        done
    done
    python3 - "$out/waiting-room.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
runs = sorted({r["run"] for r in rows})
def get(scenario, variant, run):
    return next(r["summary"] for r in rows if r["scenario"] == scenario and r["variant"] == variant and r["run"] == run)
print("| scenario | joins/s | admitted | purchases/s: room (plain) | ÷ plain, same run (median) | last unit → last listener told sold out | polling p99 | rank correlation | without pass | passes over the ceiling (samples) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for scenario in ["embedded", "redis-mysql"]:
    room = [get(scenario, "room", run) for run in runs]
    plain = [get(scenario, "plain", run) for run in runs]
    # The plain sale's units sold per second: its attempts before the first sold-out answer.
    ratios = [r["purchase_rps"] / p["buy_phase_rps"] for r, p in zip(room, plain)]
    cells = [
        scenario,
        ", ".join(f"{r['joins_per_s']:,.0f}" for r in room),
        ", ".join(f"{r['admitted']:,}" for r in room),
        ", ".join(f"{r['purchase_rps']:,.0f} ({p['buy_phase_rps']:,.0f})" for r, p in zip(room, plain)),
        f"{statistics.median(ratios):.3f}",
        ", ".join(f"{r['sold_out_notice_s']} s" for r in room),
        ", ".join(f"{r['sold_out_notice_polling_p99_s']} s" for r in room),
        ", ".join(f"{r['admission_rank_correlation']}" for r in room),
        ", ".join(f"{r['without_pass']}" for r in room),
        ", ".join(f"{r['passes_over_ceiling']} ({r['passes_samples']})" for r in room),
    ]
    print("| " + " | ".join(cells) + " |")
PY
    if grep -q '"exit":[^0]' "$out/waiting-room.jsonl"; then
        echo "an audit failed or a request errored: see $out/waiting-room.jsonl" >&2
        exit 1
    fi
    exit 0
fi

if [ "$console" = 1 ]; then
    : > "$out/console.jsonl"
    variants=(alone console)
    for run in $(seq "$runs"); do
        for i in 0 1; do
            variant=${variants[$(((i + run - 1) % 2))]}
            tag="console-$variant-$run-$$"
            extra=()
            extra_env=()
            start_server embedded "$tag"
            listeners=()
            if [ "$variant" = console ]; then
                listeners=(--listeners 1000)
                console_polling "http://127.0.0.1:$port" "$tag" &
                pids+=("$!")
            fi
            echo "== run $run: embedded, $variant"
            set +e
            line=$("$bench" --url "http://127.0.0.1:$port" --sku "$tag" --stock 1000000 \
                --users "$users" --concurrency "$concurrency" --baseline "$users" \
                --server-pid "$server_pid" --wait-persisted 300 "${listeners[@]}" | tail -n 1)
            status=$?
            set -e
            echo "$line"
            echo "{\"variant\":\"$variant\",\"run\":$run,\"exit\":$status,\"summary\":$line}" >> "$out/console.jsonl"
            stop_all
        done
    done
    python3 - "$out/console.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
runs = sorted({r["run"] for r in rows})
def summary(variant, run):
    return next(r["summary"] for r in rows if r["variant"] == variant and r["run"] == run)
print("| variant | purchases/s per run | median | ÷ alone, same run (median) | events to listeners |")
print("| --- | --- | --- | --- | --- |")
for variant in ["alone", "console"]:
    values = [summary(variant, run)["rps"] for run in runs]
    ratios = [summary(variant, run)["rps"] / summary("alone", run)["rps"] for run in runs]
    events = [summary(variant, run).get("listener_events") or 0 for run in runs]
    print(f"| {variant} | {', '.join(f'{v:,.0f}' for v in values)} | {statistics.median(values):,.0f} | {statistics.median(ratios):.3f} | {', '.join(f'{e:,}' for e in events)} |")
PY
    if grep -q '"exit":[^0]' "$out/console.jsonl"; then
        echo "an audit failed or a request errored: see $out/console.jsonl" >&2
        exit 1
    fi
    exit 0
fi

scenarios=(embedded redis-mysql redis-mysql-kafka)
[ -n "$only" ] && scenarios=("$only")
for run in $(seq "$runs"); do
    for scenario in "${scenarios[@]}"; do
        for kind in open sale; do
            tag="$scenario-$kind-$run-$$"
            stock=$([ "$kind" = open ] && echo 1000000 || echo 10000)
            start_server "$scenario" "$tag"
            echo "== run $run: $scenario, $kind (stock $stock)"
            set +e
            line=$("$bench" --url "http://127.0.0.1:$port" --sku "$tag" --stock "$stock" \
                --users "$users" --concurrency "$concurrency" --baseline "$users" \
                --server-pid "$server_pid" --wait-persisted 300 | tail -n 1)
            status=$?
            set -e
            echo "$line"
            echo "{\"scenario\":\"$scenario\",\"kind\":\"$kind\",\"run\":$run,\"exit\":$status,\"summary\":$line}" >> "$results"
            stop_all
        done
    done
done

if [ "$soak" -gt 0 ]; then
    for scenario in "${scenarios[@]}"; do
        tag="$scenario-soak-$$"
        start_server "$scenario" "$tag"
        echo "== soak: $scenario, $soak s at 2,000 purchases/s"
        set +e
        line=$("$bench" --url "http://127.0.0.1:$port" --sku "$tag" --stock 10000 \
            --duration "$soak" --rate 2000 --concurrency 64 --server-pid "$server_pid" \
            --wait-persisted 120 | tail -n 1)
        status=$?
        set -e
        echo "$line"
        echo "{\"scenario\":\"$scenario\",\"kind\":\"soak\",\"run\":1,\"exit\":$status,\"summary\":$line}" >> "$results"
        stop_all
    done
fi

crate_file="$out/crates.md"
: > "$crate_file"
if [ "$crates" = 1 ]; then
    for crate_bench in "nexussale-core purchase" "nexussale-redis reserve" \
                       "nexussale-redis restore" "nexussale-mysql insert" \
                       "nexussale-kafka throughput"; do
        set -- $crate_bench
        echo "== cargo bench -p $1 --bench $2"
        {
            echo "#### \`cargo bench -p $1 --bench $2\`"
            echo
            cargo bench -q -p "$1" --bench "$2" 2>/dev/null | grep -E '^\||ratio|median|redis:' || true
            echo
        } >> "$crate_file"
    done
fi

echo "== writing docs/BENCHMARKS.md"
python3 scripts/bench_tables.py "$results" "$crate_file" docs/BENCHMARKS.md
if grep -q '"exit":[^0]' "$results"; then
    echo "an audit failed or a request errored: see $results" >&2
    exit 1
fi

#!/usr/bin/env bash
# Runs the README's newcomer path exactly as written, so it cannot rot: every block marked
# `<!-- scripts/readme.sh: NAME -->` in README.md is taken from there, not copied here.
#
#   1. the run command (`run`), in the background, until /health answers;
#   2. "Try it" (`try`) as a script: each `# HTTP NNN` comment is checked against the status the
#      line printed, in order;
#   3. the load test (`bench`): it exits 1 on anything oversold, duplicated or lost;
#   4. the server stopped with SIGTERM: it must stop cleanly and say its orders are stored;
#   5. with credentials (`secure-run`, `secure-try`): the embedded server again, its statuses
#      checked the same way;
#   6. the same 1-4 on the full stack (`mock-kafka` in the background, then `full-stack`) over
#      the local Redis (127.0.0.1:6379) and MySQL/MariaDB (root@127.0.0.1:3306/test).
# Also checks that .ci/run runs the README's test command (`test`).
#
#   bash scripts/readme.sh              # both; `embedded` or `full-stack` for one
#
# The README's commands use fixed ports (3000, and 9092 for the mock broker): nothing else may
# listen there meanwhile. The full stack's run writes to the `nexussale` Redis prefix and the
# `test` database: the skus the README uses (ps5, switch, drop1) are deleted there before and
# after, nothing else. Needs curl, python3, redis-cli and the mysql client.
set -euo pipefail
cd "$(dirname "$0")/.."

only=${1:-all}
out=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/readme
mkdir -p "$out"
readme_skus=(ps5 switch drop1)

# The fenced block after the marker `<!-- scripts/readme.sh: $1 -->`, without its fences.
block() {
    python3 - "$1" <<'PY'
import re, sys
text = open("README.md", encoding="utf-8").read()
match = re.search(r"<!-- scripts/readme\.sh: " + re.escape(sys.argv[1]) + r" -->\n```[a-z]*\n(.*?)\n```", text, re.S)
if not match:
    sys.exit(f"README.md has no block marked `scripts/readme.sh: {sys.argv[1]}`")
print(match.group(1))
PY
}

fail() {
    echo "FAILED: $*" >&2
    exit 1
}

# Process groups started here (a command, and the cargo run inside it), stopped at the end.
groups=()
stop_groups() {
    for ((i = ${#groups[@]} - 1; i >= 0; i--)); do
        kill -TERM -- "-${groups[i]}" 2>/dev/null || true
    done
    groups=()
}
trap 'stop_groups; clean_full_stack_data' EXIT

port_free() {
    ! (exec 3<> "/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Runs README block $1 in the background, in a process group of its own, output to $2.
start() {
    local command
    command=$(block "$1")
    echo "\$ $command"
    setsid bash -c "$command" > "$2" 2>&1 < /dev/null &
    groups+=($!)
}

wait_for() { # URL SECONDS LOG
    for _ in $(seq $(($2 * 5))); do
        curl -fs "$1" > /dev/null && return 0
        sleep 0.2
    done
    tail -20 "$3" >&2
    fail "$1 did not answer within $2 s"
}

# Whether the server's log says PATTERN within 5 s: it writes its lines out every 50 ms, so a
# line logged just before /ready answered may not be in the file yet.
log_says() { # LOG PATTERN
    for _ in $(seq 25); do
        grep -q "$2" "$1" && return 0
        sleep 0.2
    done
    return 1
}

# "Try it" (or block $2), its statuses checked against its comments.
try_it() {
    local script expected actual
    script=$(block "${2:-try}")
    timeout 120 bash -euo pipefail -c "$script" > "$out/$1-try.out" 2>&1 || {
        cat "$out/$1-try.out"
        fail "$1: the \"Try it\" block failed (or ran for 120 s)"
    }
    cat "$out/$1-try.out"
    expected=$(grep -oE '# HTTP [0-9]{3}' <<< "$script" | cut -d' ' -f3 | tr '\n' ' ')
    actual=$(grep -oE 'HTTP [0-9]{3}$' "$out/$1-try.out" | cut -d' ' -f2 | tr '\n' ' ')
    [ -n "$expected" ] || fail "the \"Try it\" block has no # HTTP comments"
    [ "$expected" = "$actual" ] || fail "$1: \"Try it\" answered [$actual], its comments say [$expected]"
    echo "ok: \"Try it\" answered [$actual] as its comments say"
}

bench() {
    local command
    command=$(block bench)
    echo "\$ $command"
    timeout 300 bash -c "$command" > "$out/$1-bench.out" 2> "$out/$1-bench.err" || {
        cat "$out/$1-bench.err" "$out/$1-bench.out"
        fail "$1: the load test failed its audit"
    }
    tail -1 "$out/$1-bench.out"
}

# SIGTERM to the server's group; it must stop cleanly, saying what became of its orders.
stop_server() { # NAME LOG
    local group=${groups[-1]}
    kill -TERM -- "-$group"
    for _ in $(seq 150); do
        kill -0 -- "-$group" 2>/dev/null || break
        sleep 0.2
    done
    kill -0 -- "-$group" 2>/dev/null && fail "$1: the server did not stop within 30 s of SIGTERM"
    unset 'groups[-1]'
    grep -q "stopped; " "$2" || { tail -20 "$2" >&2; fail "$1: no clean stop in the server's log"; }
    grep "stopped; " "$2" | tail -1
}

clean_full_stack_data() {
    [ "${touched_full_stack:-}" = yes ] || return 0
    for sku in "${readme_skus[@]}"; do
        redis-cli --scan --pattern "nexussale:{$sku:*" | xargs -r redis-cli unlink > /dev/null
        redis-cli srem nexussale:sales "$sku" > /dev/null
        for table in orders sales; do
            mysql -h127.0.0.1 -uroot test -e "DELETE FROM $table WHERE sku = '$sku'" 2> /dev/null || true
        done
    done
}

# The README's test command is what CI runs.
test_command=$(block test)
grep -qxF "$test_command" .ci/run || fail ".ci/run does not run the README's test command \`$test_command\`"

echo "== building what the README's commands run"
cargo build -q -p nexussale-server -p nexussale-examples --example mock_kafka
port_free 3000 || fail "port 3000 is taken: the README's server cannot listen"

if [ "$only" = all ] || [ "$only" = embedded ]; then
    echo "== the README's server, embedded"
    start run "$out/embedded-server.log"
    wait_for http://127.0.0.1:3000/health 120 "$out/embedded-server.log"
    try_it embedded
    bench embedded
    stop_server embedded "$out/embedded-server.log"

    echo "== the README's server, with credentials"
    start secure-run "$out/secure-server.log"
    wait_for http://127.0.0.1:3000/health 120 "$out/secure-server.log"
    try_it secure secure-try
    stop_server secure "$out/secure-server.log"
fi

if [ "$only" = all ] || [ "$only" = full-stack ]; then
    echo "== the README's full stack: mock Kafka, Redis, MySQL"
    port_free 9092 || fail "port 9092 is taken: the README's mock broker cannot listen"
    touched_full_stack=yes
    clean_full_stack_data
    start mock-kafka "$out/mock-kafka.log"
    for _ in $(seq 300); do
        grep -q '^127.0.0.1:9092$' "$out/mock-kafka.log" && break
        sleep 0.2
    done
    grep -q '^127.0.0.1:9092$' "$out/mock-kafka.log" || { cat "$out/mock-kafka.log"; fail "the mock broker did not start"; }
    start full-stack "$out/full-stack-server.log"
    wait_for http://127.0.0.1:3000/ready 120 "$out/full-stack-server.log"
    log_says "$out/full-stack-server.log" "stock: redis" || fail "the full stack is not on Redis"
    log_says "$out/full-stack-server.log" "orders: mysql" || fail "the full stack is not on MySQL"
    try_it full-stack
    bench full-stack
    stop_server full-stack "$out/full-stack-server.log"
fi
echo "ok: the README's commands work as written"

# Sourced by the scripts that test a running server: start_server LOG [FLAG…] runs this tree's
# debug nexussale-server on a free loopback port with the flags (env as the caller exports it),
# output to LOG; sets `server` (its pid, stopped on exit) and `address` (host:port from its
# "listening" line), or exits 1 with its log.
start_server() {
    local log=$1
    shift
    RUST_LOG=${RUST_LOG:-info} target/debug/nexussale-server --listen 127.0.0.1:0 "$@" > "$log" 2>&1 &
    server=$!
    trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
    address=""
    for _ in $(seq 100); do
        address=$(sed -n 's/.*address=\([0-9.:]*\).*/\1/p' "$log" | head -n 1)
        [ -n "$address" ] && return 0
        kill -0 "$server" 2>/dev/null || { cat "$log" >&2; exit 1; }
        sleep 0.1
    done
    echo "the server did not start" >&2
    cat "$log" >&2
    exit 1
}

# Sourced by the scripts that start servers of their own: free_port prints a free loopback port
# below the kernel's ephemeral range (where a burst's client sockets live).
free_port() {
    local port
    while true; do
        port=$((20000 + RANDOM % 12000))
        if ! (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null; then
            echo "$port"
            return
        fi
    done
}

#!/usr/bin/env bash
# What MariaDB spends on the expiry sweeper's writes, apart from everything else: 10^6 pending
# orders of one sale in the orders table as the migrations make it, then the sweeper's
# statements for them (`UPDATE orders SET status = 'expired', updated_at = … WHERE id IN (500
# ids) AND status = 'pending'`, 2,000 of them, one client), timed by mariadbd's own CPU seconds
# (/proc). Alternated with the same table without `orders_by_sku_status` (the index a status
# change moves an entry in), to tell that index's share.
#
#   bash scripts/expiry_cost.sh [ROUNDS]
#
# A scratch database `nexussale_expiry_cost` on 127.0.0.1:3306 (root), dropped at the end. ROUNDS
# defaults to 2 (each: with the index, then without).
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-2}
db=nexussale_expiry_cost
orders=1000000
sql() { mysql -h127.0.0.1 -uroot "$@"; }
trap 'sql -e "DROP DATABASE IF EXISTS $db" || true; rm -f "${updates:-}"' EXIT

updates=$(mktemp)
python3 - "$orders" > "$updates" << 'PY'
import sys
n = int(sys.argv[1])
ids = [f"{1700000000000 + s:012x}7{s % 4096:03x}8{s:015x}" for s in range(1, n + 1)]
for i in range(0, n, 500):
    batch = ",".join("0x" + x for x in ids[i:i + 500])
    print(f"UPDATE orders SET status = 'expired', updated_at = NOW(6) WHERE id IN ({batch}) AND status = 'pending';")
PY

mariadb_pid=$(pidof mariadbd || pidof mysqld)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$mariadb_pid/stat"; }

one() {
    local label=$1 alter=$2
    sql -e "DROP DATABASE IF EXISTS $db; CREATE DATABASE $db"
    cat nexussale-mysql/migrations/*.sql | sql "$db"
    [ -n "$alter" ] && sql "$db" -e "$alter"
    sql "$db" -e "
INSERT INTO orders (id, sku, user_id, quantity, status, created_at, updated_at, expires_at)
SELECT UNHEX(CONCAT(LPAD(HEX(1700000000000 + seq), 12, '0'), '7', LPAD(HEX(seq % 4096), 3, '0'),
                    '8', LPAD(HEX(seq), 15, '0'))),
       'lapse', CONCAT('user-', seq), 1, 'pending', NOW(6), NOW(6), NOW(6)
FROM seq_1_to_$orders"
    sleep 3
    local c0 t0 c1 t1
    c0=$(cpu_ticks)
    t0=$(date +%s.%N)
    sql "$db" < "$updates"
    t1=$(date +%s.%N)
    c1=$(cpu_ticks)
    python3 -c "
wall, cpu = $t1 - $t0, ($c1 - $c0) / $(getconf CLK_TCK)
print(f'| $label | {wall:.1f} | {cpu:.1f} | {cpu * 1e6 / $orders:.1f} |')"
}

echo "| table | wall, s | mariadbd CPU-s | µs an expiry |"
echo "| --- | ---: | ---: | ---: |"
for _ in $(seq "$rounds"); do
    one "as migrated" ""
    one "without orders_by_sku_status" "ALTER TABLE orders DROP INDEX orders_by_sku_status"
done

-- Rebuilds one stock shard from persisted orders (reconciliation), in chunks.
--
-- KEYS[1] stock hash, KEYS[2] held hash, KEYS[3] keys hash, KEYS[4] reservations hash,
-- KEYS[5] expiry sorted set, KEYS[6] settled sorted set, KEYS[7] (absent on a Redis Cluster)
-- the due index (see reserve.lua)
-- ARGV[1] 1 for the first chunk: wipe the shard and write its counts and definition from
--   ARGV[2..9] (available, reserved, sold, limit, start, end, shards, def or ''); 0 for the next
--   chunks, which only add orders. ARGV[10] the shard's member of the due index, ARGV[11] the
--   retention (µs). Then, from ARGV[12], orders of 7 values:
--   order id, state letter, user, quantity, key field or '', record JSON, expiry µs.
--
-- The counts are computed by the caller from the same orders, so the shard is consistent once
-- the last chunk is in.
local stock, held, keys, res, expiry, settled = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
if ARGV[1] == '1' then
  redis.call('DEL', stock, held, keys, res, expiry, settled)
  -- Wiped: no longer regressed (guard.lua), written by this primary from now on.
  local node, seq = origin()
  redis.call('HSET', stock, 'available', ARGV[2], 'reserved', ARGV[3], 'sold', ARGV[4],
    'limit', ARGV[5], 'start', ARGV[6], 'end', ARGV[7], 'shards', ARGV[8], 'node', node,
    'seq', seq, 'born', seq)
  if ARGV[9] ~= '' then redis.call('HSET', stock, 'def', ARGV[9]) end
end
for base = 12, #ARGV, 7 do
  local id, state, user = ARGV[base], ARGV[base + 1], ARGV[base + 2]
  local quantity, key = tonumber(ARGV[base + 3]), ARGV[base + 4]
  redis.call('HSET', res, id, state .. ARGV[base + 5])
  if state == 'r' then
    redis.call('ZADD', expiry, ARGV[base + 6], id)
  else
    settle(settled, id, ARGV[base + 6], ARGV[11])
  end
  if state == 'r' or state == 'c' then redis.call('HINCRBY', held, user, quantity) end
  if key ~= '' then redis.call('HSET', keys, key, id) end
end
-- Filed under the earliest expiry held once this chunk is in.
refile(expiry, settled, KEYS[7], ARGV[10])
return 1

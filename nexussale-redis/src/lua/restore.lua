-- Rebuilds one stock shard from persisted orders (reconciliation), in chunks.
--
-- KEYS[1] stock hash, KEYS[2] held hash, KEYS[3] keys hash, KEYS[4] the prefix of its
-- reservation buckets, KEYS[5] its `buckets` sorted set, KEYS[6] (absent on a Redis Cluster)
-- the due index (see reserve.lua, records.lua)
-- ARGV[1] 1 for the first chunk: wipe the shard and write its counts and definition from
--   ARGV[2..9] (available, reserved, sold, limit, start, end, shards, def or ''); 0 for the next
--   chunks, which only add orders. ARGV[10] the shard's member of the due index, ARGV[11] the
--   retention (µs), ARGV[12] the keys of the layout before buckets (wiped too), separated by
--   spaces. Then, from ARGV[13], orders of 7 values: order id (16 bytes), state letter, user,
--   quantity, key field or '', record without its state letter (records.lua), expiry µs.
--
-- The counts are computed by the caller from the same orders, so the shard is consistent once
-- the last chunk is in.
local stock, held, keys, prefix, buckets = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local retention = tonumber(ARGV[11])
if ARGV[1] == '1' then
  for _, bucket in ipairs(redis.call('ZRANGE', buckets, 0, -1)) do
    redis.call('UNLINK', prefix .. bucket)
  end
  redis.call('DEL', stock, held, keys, buckets)
  for old in string.gmatch(ARGV[12], '%S+') do redis.call('DEL', old) end
  -- Wiped: no longer regressed (guard.lua), written by this primary from now on.
  local node, seq = origin()
  redis.call('HSET', stock, 'available', ARGV[2], 'reserved', ARGV[3], 'sold', ARGV[4],
    'limit', ARGV[5], 'start', ARGV[6], 'end', ARGV[7], 'shards', ARGV[8], 'node', node,
    'seq', seq, 'born', seq, 'layout', LAYOUT)
  if ARGV[9] ~= '' then redis.call('HSET', stock, 'def', ARGV[9]) end
end
for base = 13, #ARGV, 7 do
  local id, state, user = ARGV[base], ARGV[base + 1], ARGV[base + 2]
  local quantity, key = tonumber(ARGV[base + 3]), ARGV[base + 4]
  local bucket = bucket_of(id)
  redis.call('HSET', prefix .. bucket, id, state .. ARGV[base + 5])
  -- Filed no later than the sweeper has work there: this expiry, or when it is forgotten.
  local at = ARGV[base + 6]
  if state ~= 'r' then at = string.format('%.0f', tonumber(at) + retention) end
  redis.call('ZADD', buckets, 'LT', at, bucket)
  if state == 'r' or state == 'c' then redis.call('HINCRBY', held, user, quantity) end
  if key ~= '' then redis.call('HSET', keys, key, id) end
end
-- Filed under the earliest instant it has work once this chunk is in.
refile(buckets, KEYS[6], ARGV[10])
return 1

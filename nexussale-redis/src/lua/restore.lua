-- Rebuilds one stock shard from persisted orders (reconciliation), in chunks.
--
-- KEYS[1] stock hash, KEYS[2] held hash, KEYS[3] keys hash, KEYS[4] the prefix of its
-- reservation buckets, KEYS[5] its `buckets` sorted set, KEYS[6] (absent on a Redis Cluster)
-- the due index (see reserve.lua, records.lua)
-- ARGV[1] 1 for the first chunk: wipe the shard and write its counts and definition from
--   ARGV[2..9] (available, reserved, sold, limit, start, end, shards, def or ''); 0 for the next
--   chunks, which only add orders. ARGV[10] the shard's member of the due index, ARGV[11] the
--   retention (µs), ARGV[12] the keys of the layout before buckets (wiped too), separated by
--   spaces. ARGV[13] n, then n orders of 5 values: order id (16 bytes), state letter, key field
--   or '', record without its state letter (records.lua), expiry µs. Then, to the end, pairs of
--   user and units to add to the user's hold: the caller sums each user's held orders of the
--   shard and sends each user once, in any chunk.
--
-- The counts are computed by the caller from the same orders, so the shard is consistent once
-- the last chunk is in. A command made from Lua costs about as much as its work here (a
-- rebuild, three commands an order, was bound by Redis's CPU), so a chunk makes few: a bucket's
-- records in one HSET, the buckets' instants in one ZADD, the keys in one HSET, one HINCRBY a
-- user (an increment, as reserve.lua's, should a purchase meet the shard between two chunks).
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
local last = 13 + 5 * tonumber(ARGV[13])
local due, keyed, current, records = {}, {}, nil, {}
local function flush()
  if current then redis.call('HSET', prefix .. current, unpack(records)) end
end
for base = 14, last, 5 do
  local id, state, key = ARGV[base], ARGV[base + 1], ARGV[base + 2]
  local bucket = bucket_of(id)
  if bucket ~= current then
    flush()
    current, records = bucket, {}
  end
  records[#records + 1] = id
  records[#records + 1] = state .. ARGV[base + 3]
  -- Filed no later than the sweeper has work there: this expiry, or when it is forgotten.
  local at = tonumber(ARGV[base + 4])
  if state ~= 'r' then at = at + retention end
  if not due[bucket] or at < due[bucket] then due[bucket] = at end
  if key ~= '' then
    keyed[#keyed + 1] = key
    keyed[#keyed + 1] = id
  end
end
flush()
local filed = {}
for bucket, at in pairs(due) do
  filed[#filed + 1] = string.format('%.0f', at)
  filed[#filed + 1] = bucket
end
if #filed > 0 then redis.call('ZADD', buckets, 'LT', unpack(filed)) end
if #keyed > 0 then redis.call('HSET', keys, unpack(keyed)) end
for base = last + 1, #ARGV, 2 do
  redis.call('HINCRBY', held, ARGV[base], ARGV[base + 1])
end
-- Filed under the earliest instant it has work once this chunk is in.
refile(buckets, KEYS[6], ARGV[10])
return 1

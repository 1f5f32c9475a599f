-- Reserves units for a batch of requests against one or more stock shards (of one sale or of
-- several: a batch takes what is queued for every sale on this Redis), each shard's requests in
-- arrival order.
--
-- KEYS: for each shard in turn, 5 keys:
--   stock hash: available, reserved, sold, limit, start, end (µs or ''), shards[, def]
--   held hash: user -> units the user holds (reserved or sold) in this shard
--   keys hash: user "\n" idempotency key -> order id
--   the prefix of its reservation buckets, and its `buckets` sorted set (records.lua)
-- then (absent on a Redis Cluster) the due index: each shard ("n:sku") scored by the earliest
--   instant it may have work for the sweeper, in µs; what the sweeper visits
-- ARGV[1] g, the shards; then for each shard: units to add to `available` first (taken from
--   another shard), n, then n requests of 7 values: now µs, user, quantity, key field or '',
--   order id (16 bytes), record (records.lua) without its state letter, expiry µs; then the
--   shard's member of the due index
--
-- Answers one array per shard: its sequence (guard.lua; {-1} alone: regressed), then, for each
-- request in turn: 0 remaining (reserved), 1 available (sold out), 2 limit held (limit
-- exceeded), 3 'upcoming' | 'ended' (not active), 4 order id record (the reservation an
-- idempotency key already made), 5 (no such sale).
--
-- Invariant: available + reserved + sold changes only by the deposit; a refused request writes
-- nothing. State letters: r reserved, c confirmed, x cancelled, e expired, a aborted (its key is free).
local shards = tonumber(ARGV[1])
local due = KEYS[shards * 5 + 1]

-- One shard's requests, its keys from KEYS[k + 1] and its arguments from ARGV[a]: its answer,
-- and where the next shard's arguments start.
local function reserve_shard(k, a)
  local stock, held, keys, res, buckets = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5]
  local deposit, n = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local next_shard = a + 3 + n * 7
  -- The earliest expiry this call holds, as its argument's text (a number formatted back by Lua
  -- could lose digits).
  local earliest, earliest_text = nil, nil
  -- The guard's read and this shard's counts in one HMGET; its writes in one HSET at the end.
  local seq, avail, limit, start, stop, reserved = checked(stock, 'limit', 'start', 'end', 'reserved')
  if seq < 0 then return {-1}, next_shard end
  -- One flat answer: each request's code, then its values (none for 5, two for 2 and 4, else
  -- one), so a large batch builds no table per request.
  local out = {seq}
  local function push(code, x, y)
    out[#out + 1] = code
    if x then out[#out + 1] = x end
    if y then out[#out + 1] = y end
  end
  if seq == 0 then
    for _ = 1, n do push(5) end
    return out, next_shard
  end
  local available = tonumber(avail) + deposit
  limit = tonumber(limit)
  start, stop = tonumber(start), tonumber(stop)
  local taken = 0
  for i = 1, n do
    local base = a + 1 + (i - 1) * 7
    local now, user, quantity = tonumber(ARGV[base + 1]), ARGV[base + 2], tonumber(ARGV[base + 3])
    local key, id = ARGV[base + 4], ARGV[base + 5]
    local earlier, earlier_id = nil, nil
    if key ~= '' then
      earlier_id = redis.call('HGET', keys, key)
      if earlier_id then
        local record = redis.call('HGET', res .. bucket_of(earlier_id), earlier_id)
        if record and string.sub(record, 1, 1) ~= 'a' then earlier = record end
      end
    end
    if earlier then
      push(4, earlier_id, earlier)
    elseif start and now < start then
      push(3, 'upcoming')
    elseif stop and now >= stop then
      push(3, 'ended')
    elseif available >= quantity then
      -- Units enough: raise the hold first and put it back if it crossed the limit, one call on
      -- the common path instead of a read and a write.
      local holds = redis.call('HINCRBY', held, user, quantity)
      if holds > limit then
        holds = redis.call('HINCRBY', held, user, -quantity)
        if holds == 0 then redis.call('HDEL', held, user) end
        push(2, limit, holds)
      else
        available = available - quantity
        taken = taken + quantity
        local bucket = bucket_of(id)
        redis.call('HSET', res .. bucket, id, 'r' .. ARGV[base + 6])
        redis.call('ZADD', buckets, 'LT', ARGV[base + 7], bucket)
        local expires = tonumber(ARGV[base + 7])
        if not earliest or expires < earliest then earliest, earliest_text = expires, ARGV[base + 7] end
        if key ~= '' then redis.call('HSET', keys, key, id) end
        push(0, available)
      end
    else
      -- Too few units: the limit still decides the answer when both refuse.
      local holds = tonumber(redis.call('HGET', held, user) or '0')
      if holds + quantity > limit then
        push(2, limit, holds)
      else
        push(1, available)
      end
    end
  end
  -- Filed no later than its earliest reservation (LT: an earlier entry stays).
  if due and earliest then redis.call('ZADD', due, 'LT', earliest_text, ARGV[next_shard - 1]) end
  if taken > 0 or deposit > 0 then
    redis.call('HSET', stock, 'seq', string.format('%.0f', seq), 'available', available,
      'reserved', tonumber(reserved) + taken)
  else
    redis.call('HSET', stock, 'seq', string.format('%.0f', seq))
  end
  return out, next_shard
end

local answers = {}
local a = 2
for shard = 0, shards - 1 do
  answers[shard + 1], a = reserve_shard(shard * 5, a)
end
return answers

-- Lists reservations of one stock shard whose expiry has passed, soonest first, and forgets
-- settled ones whose retention has passed.
--
-- KEYS[1] reservations hash, KEYS[2] expiry sorted set, KEYS[3] settled sorted set, KEYS[4]
-- keys hash, KEYS[5] (absent on a Redis Cluster) the due index (see reserve.lua)
-- ARGV[1] now µs, ARGV[2] the most to answer, ARGV[3] the shard's member of the due index,
-- ARGV[4] the most to forget
--
-- Answers a flat list: order id, record (state letter + JSON), ... Only held reservations are
-- in the expiry set: confirm and release move theirs to the settled set, scored by when they
-- are to be forgotten.
--
-- When it finds fewer than asked and forgot fewer than asked, the shard is filed in the due
-- index under its earliest expiry (those listed included: due until released) or the earliest
-- instant it is to forget a reservation, or taken out when it holds neither: the index lags
-- behind confirms and releases only until the next sweep of the shard.
local res, expiry, settled, keys = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local limit, forget = tonumber(ARGV[2]), tonumber(ARGV[4])
local gone = redis.call('ZRANGEBYSCORE', settled, '-inf', ARGV[1], 'LIMIT', 0, forget)
for _, id in ipairs(gone) do
  local record = redis.call('HGET', res, id)
  if record then
    local body = cjson.decode(string.sub(record, 2))
    -- The key goes with the reservation it made; one that made another since stays.
    if body.k then
      local field = body.u .. '\n' .. body.k
      if redis.call('HGET', keys, field) == id then redis.call('HDEL', keys, field) end
    end
    redis.call('HDEL', res, id)
  end
  redis.call('ZREM', settled, id)
end
local ids = redis.call('ZRANGEBYSCORE', expiry, '-inf', ARGV[1], 'LIMIT', 0, limit)
local out = {}
for _, id in ipairs(ids) do
  local record = redis.call('HGET', res, id)
  if record then
    out[#out + 1] = id
    out[#out + 1] = record
  end
end
if #ids < limit and #gone < forget then refile(expiry, settled, KEYS[5], ARGV[3]) end
return out

-- Releases reservations: their units go back on sale and their users' holds drop, each at most
-- once. One call releases a whole batch (the sweeper's), in order.
--
-- KEYS[1] stock hash, KEYS[2] held hash, KEYS[3] reservations hash, KEYS[4] expiry sorted set,
-- KEYS[5] settled sorted set (see reserve.lua)
-- ARGV[1] the new state letter: x cancelled, e expired, a aborted; ARGV[2] the retention (µs);
-- ARGV[3..] order ids
--
-- Answers the shard's sequence (guard.lua; {-1} alone: regressed), then two values per order id:
-- 0 and the quantity: released by this call, 1 and the state letter: released before, 2 and 0:
-- refused, confirmed, 3 and 0: no such reservation in this shard.
local stock, held, res, expiry, settled = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local reason, retention = ARGV[1], ARGV[2]
local seq = guard()
if seq < 0 then return {-1} end
local out = {seq}
local returned = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local record = redis.call('HGET', res, id)
  local state = record and string.sub(record, 1, 1)
  if not record then
    out[#out + 1] = 3
    out[#out + 1] = 0
  elseif state == 'c' then
    out[#out + 1] = 2
    out[#out + 1] = 0
  elseif state ~= 'r' then
    out[#out + 1] = 1
    out[#out + 1] = state
  else
    local body = cjson.decode(string.sub(record, 2))
    redis.call('HSET', res, id, reason .. string.sub(record, 2))
    settle(settled, id, redis.call('ZSCORE', expiry, id), retention)
    redis.call('ZREM', expiry, id)
    if redis.call('HINCRBY', held, body.u, -body.q) <= 0 then
      redis.call('HDEL', held, body.u)
    end
    returned = returned + body.q
    out[#out + 1] = 0
    out[#out + 1] = body.q
  end
end
if returned > 0 then
  redis.call('HINCRBY', stock, 'reserved', -returned)
  redis.call('HINCRBY', stock, 'available', returned)
end
return out

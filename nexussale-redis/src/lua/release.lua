-- Releases one reservation: its units go back on sale and its user's hold drops, at most once.
--
-- KEYS[1] stock hash, KEYS[2] held hash, KEYS[3] reservations hash, KEYS[4] expiry sorted set
-- (see reserve.lua)
-- ARGV[1] order id, ARGV[2] the new state letter: x cancelled, e expired, a aborted
--
-- Answers the shard's sequence (guard.lua; {-1} alone: regressed), then 0 and the quantity:
-- released by this call, 1 and the state letter: released before, 2 refused: confirmed, 3 no
-- such reservation in this shard.
local stock, held, res, expiry = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, reason = ARGV[1], ARGV[2]
local seq = guard()
if seq < 0 then return {-1} end
local record = redis.call('HGET', res, id)
if not record then return {seq, 3} end
local state = string.sub(record, 1, 1)
if state == 'c' then return {seq, 2} end
if state ~= 'r' then return {seq, 1, state} end
local body = cjson.decode(string.sub(record, 2))
redis.call('HSET', res, id, reason .. string.sub(record, 2))
redis.call('ZREM', expiry, id)
if redis.call('HINCRBY', held, body.u, -body.q) <= 0 then
  redis.call('HDEL', held, body.u)
end
redis.call('HINCRBY', stock, 'reserved', -body.q)
redis.call('HINCRBY', stock, 'available', body.q)
return {seq, 0, body.q}

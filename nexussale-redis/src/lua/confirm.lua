-- Confirms one reservation: its units move from reserved to sold, at most once, and never
-- once its expiry has passed (the sweeper's release must win over a late payment).
--
-- KEYS[1] stock hash, KEYS[2] reservations hash, KEYS[3] expiry sorted set, KEYS[4] settled
-- sorted set (see reserve.lua)
-- ARGV[1] order id, ARGV[2] now (µs since the epoch), ARGV[3] the retention (µs)
--
-- Answers the shard's sequence (guard.lua; {-1} alone: regressed), then 0 confirmed,
-- 1 already confirmed, 2 and the state letter: refused, released, 3 no such reservation in this
-- shard, 4 refused: past its expiry (still held).
local stock, res, expiry, settled = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, now = ARGV[1], tonumber(ARGV[2])
local seq = guard()
if seq < 0 then return {-1} end
local record = redis.call('HGET', res, id)
if not record then return {seq, 3} end
local state = string.sub(record, 1, 1)
if state == 'c' then return {seq, 1} end
if state ~= 'r' then return {seq, 2, state} end
-- A held reservation is in the expiry index, scored by its expiry in whole µs.
local expires = redis.call('ZSCORE', expiry, id)
if expires and now >= tonumber(expires) then return {seq, 4} end
local quantity = cjson.decode(string.sub(record, 2)).q
redis.call('HSET', res, id, 'c' .. string.sub(record, 2))
redis.call('ZREM', expiry, id)
settle(settled, id, expires, ARGV[3])
redis.call('HINCRBY', stock, 'reserved', -quantity)
redis.call('HINCRBY', stock, 'sold', quantity)
return {seq, 0}

-- Confirms one reservation: its units move from reserved to sold, at most once, and never
-- once its expiry has passed (the sweeper's release must win over a late payment).
--
-- KEYS[1] stock hash, KEYS[2] the prefix of its reservation buckets (see records.lua)
-- ARGV[1] order id, ARGV[2] now (µs since the epoch)
--
-- Answers the shard's sequence (guard.lua; {-1} alone: regressed), then 0 confirmed,
-- 1 already confirmed, 2 and the state letter: refused, released, 3 no such reservation in this
-- shard, 4 refused: past its expiry (still held).
--
-- The bucket keeps its score (no later than this expiry): the sweeper, visiting it then, files
-- it for when the confirmed reservation is to be forgotten.
local stock, id, now = KEYS[1], ARGV[1], tonumber(ARGV[2])
local seq = guard()
if seq < 0 then return {-1} end
local bucket = KEYS[2] .. bucket_of(id)
local record = redis.call('HGET', bucket, id)
if not record then return {seq, 3} end
local state, expires, quantity = fields(record)
if state == 'c' then return {seq, 1} end
if state ~= 'r' then return {seq, 2, state} end
if now >= expires then return {seq, 4} end
redis.call('HSET', bucket, id, 'c' .. string.sub(record, 2))
redis.call('HINCRBY', stock, 'reserved', -quantity)
redis.call('HINCRBY', stock, 'sold', quantity)
return {seq, 0}

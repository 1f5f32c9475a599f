-- Confirms one reservation: its units move from reserved to sold, at most once.
--
-- KEYS[1] stock hash, KEYS[2] reservations hash, KEYS[3] expiry sorted set (see reserve.lua)
-- ARGV[1] order id
--
-- Answers {0} confirmed, {1} already confirmed, {2, state letter} refused: released,
-- {3} no such reservation in this shard.
local stock, res, expiry = KEYS[1], KEYS[2], KEYS[3]
local id = ARGV[1]
local record = redis.call('HGET', res, id)
if not record then return {3} end
local state = string.sub(record, 1, 1)
if state == 'c' then return {1} end
if state ~= 'r' then return {2, state} end
local quantity = cjson.decode(string.sub(record, 2)).q
redis.call('HSET', res, id, 'c' .. string.sub(record, 2))
redis.call('ZREM', expiry, id)
redis.call('HINCRBY', stock, 'reserved', -quantity)
redis.call('HINCRBY', stock, 'sold', quantity)
return {0}

-- Closes a transfer: the units withdraw.lua took from this shard are now deposited elsewhere.
--
-- KEYS[1] stock hash (see reserve.lua)
-- ARGV[1] units deposited
--
-- Answers the units still in transit from this shard.
return redis.call('HINCRBY', KEYS[1], 'transit', -tonumber(ARGV[1]))

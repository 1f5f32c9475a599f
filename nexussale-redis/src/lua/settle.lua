-- Closes a transfer: the units withdraw.lua took from this shard are now deposited elsewhere.
--
-- KEYS[1] stock hash (see reserve.lua)
-- ARGV[1] units deposited
--
-- Answers {sequence (guard.lua), units still in transit from this shard}; {-1} when the shard
-- is regressed (its rebuild resets the transit).
local seq = guard()
if seq < 0 then return {-1} end
return {seq, redis.call('HINCRBY', KEYS[1], 'transit', -tonumber(ARGV[1]))}

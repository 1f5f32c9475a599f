-- Marks a stock shard as regressed (see guard.lua), if it exists: every script that changes it
-- refuses until restore.lua rebuilds it.
--
-- KEYS[1] stock hash; ARGV[1] why. Answers 1 when marked, 0 when there is no such shard.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'regressed', ARGV[1])
return 1

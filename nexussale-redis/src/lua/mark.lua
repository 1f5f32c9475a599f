-- Marks a stock shard as regressed (see guard.lua), if it exists: every script that changes it
-- refuses until restore.lua rebuilds it.
--
-- KEYS[1] stock hash; ARGV[1] why; ARGV[2] the sequence a call answered that showed the shard
-- going backwards, or ''. Answers 1 when marked, 0 when there is no such shard, 2 when the shard
-- began a new life (restore.lua, create.lua: `born`, its first sequence) after that call ran:
-- a process that met the regression late must not send the rebuilt shard to a second rebuild.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[2] ~= '' then
  local born = redis.call('HGET', KEYS[1], 'born')
  if born and tonumber(ARGV[2]) < tonumber(born) then return 2 end
end
redis.call('HSET', KEYS[1], 'regressed', ARGV[1])
return 1

-- Ends one stock shard of a sale at an instant, unless it ended earlier (an end never moves
-- later); a start after that instant moves to it, so an upcoming sale never opens.
--
-- KEYS[1] stock hash (see reserve.lua)
-- ARGV[1] the end in µs, ARGV[2] the sale's definition ended there (JSON; shard 0 only, '' on
-- the others)
--
-- Answers {sequence (guard.lua), 1}; {0} when the shard does not exist, {-1} when it is
-- regressed (its rebuild takes the end from the repository).
local seq = guard()
if seq <= 0 then return {seq} end
local at = tonumber(ARGV[1])
local meta = redis.call('HMGET', KEYS[1], 'start', 'end')
if meta[2] == '' or tonumber(meta[2]) > at then
  redis.call('HSET', KEYS[1], 'end', ARGV[1])
  if meta[1] ~= '' and tonumber(meta[1]) > at then redis.call('HSET', KEYS[1], 'start', ARGV[1]) end
  if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'def', ARGV[2]) end
end
return {seq, 1}

-- Takes available units out of one stock shard, to move them to a shard that ran out.
--
-- KEYS[1] stock hash (see reserve.lua)
-- ARGV[1] units wanted
--
-- Takes the units wanted or half of what the shard has, whichever is more, but never more than
-- it has: moving half spares the next buyers of the empty shard a transfer of their own. The
-- units taken wait in `transit` until the mover settles them (settle.lua) once they are
-- deposited, so a shard that looks empty while its units are on their way says so.
-- Answers {sequence (guard.lua), units taken, units in transit from this shard now};
-- {0, 0, 0} when the shard does not exist, {-1} when it is regressed.
local seq = guard()
if seq < 0 then return {-1} end
local available = tonumber(redis.call('HGET', KEYS[1], 'available') or '0')
local wanted = tonumber(ARGV[1])
local take = math.min(available, math.max(wanted, math.floor(available / 2)))
if take > 0 then
  redis.call('HINCRBY', KEYS[1], 'available', -take)
  redis.call('HINCRBY', KEYS[1], 'transit', take)
end
return {seq, take, tonumber(redis.call('HGET', KEYS[1], 'transit') or '0')}

-- KEYS[1]: a shard's stock hash. Read only, after guard.lua (its primary()).
--
-- Answers the shard's {available, reserved, sold}; {} when the shard does not exist; {-1} when
-- it is regressed: marked so, or last written by another primary than this one. Reads check the
-- writer too: after a failover that no purchase follows (a sale sold out as its primary died)
-- the promoted replica's counts, which may lack the last writes or hold a reservation whose
-- answer was lost, would otherwise be shown, and held, until a write came.
local meta = redis.call('HMGET', KEYS[1], 'available', 'reserved', 'sold', 'regressed', 'node')
if not meta[1] then return {} end
if meta[4] or (meta[5] and meta[5] ~= primary()) then return {-1} end
return {tonumber(meta[1]), tonumber(meta[2]), tonumber(meta[3])}

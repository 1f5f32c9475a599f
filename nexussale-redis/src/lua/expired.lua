-- Lists reservations of one stock shard whose expiry has passed, soonest first.
--
-- KEYS[1] reservations hash, KEYS[2] expiry sorted set (see reserve.lua)
-- ARGV[1] now µs, ARGV[2] the most to answer
--
-- Answers a flat list: order id, record (state letter + JSON), ... Only held reservations are
-- in the sorted set: confirm and release remove theirs.
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  local record = redis.call('HGET', KEYS[1], id)
  if record then
    out[#out + 1] = id
    out[#out + 1] = record
  end
end
return out

-- Lists reservations of one stock shard whose expiry has passed, soonest first.
--
-- KEYS[1] reservations hash, KEYS[2] expiry sorted set, KEYS[3] (absent on a Redis Cluster) the
-- due index (see reserve.lua)
-- ARGV[1] now µs, ARGV[2] the most to answer, ARGV[3] the shard's member of the due index
--
-- Answers a flat list: order id, record (state letter + JSON), ... Only held reservations are
-- in the sorted set: confirm and release remove theirs.
--
-- When it finds fewer than asked, the shard is filed in the due index under its earliest expiry
-- (those listed included: due until released), or taken out when it holds nothing: the index
-- lags behind confirms and releases only until the next sweep of the shard.
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  local record = redis.call('HGET', KEYS[1], id)
  if record then
    out[#out + 1] = id
    out[#out + 1] = record
  end
end
if #ids < tonumber(ARGV[2]) then refile(KEYS[2], KEYS[3], ARGV[3]) end
return out

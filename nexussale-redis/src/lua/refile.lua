-- Prepended to the scripts that refile a shard in the due index (see reserve.lua).
--
-- refile(expiry, due, member) files `member` under the earliest expiry the shard's `expiry`
-- sorted set holds, or takes it out when it holds nothing; nothing without a due index (`due`
-- is nil on a Redis Cluster).
local function refile(expiry, due, member)
  if not due then return end
  local first = redis.call('ZRANGE', expiry, 0, 0, 'WITHSCORES')
  if first[2] then
    redis.call('ZADD', due, first[2], member)
  else
    redis.call('ZREM', due, member)
  end
end

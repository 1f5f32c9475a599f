-- Prepended to the scripts that keep the due index and the settled set (see reserve.lua).
--
-- refile(expiry, settled, due, member) files `member` under the earliest of the first expiry
-- the shard's `expiry` sorted set holds and the first instant its `settled` sorted set is to
-- forget a reservation, or takes it out when both are empty; nothing without a due index (`due`
-- is nil on a Redis Cluster). Scores go back as Redis wrote them (a number Lua formats could
-- lose digits).
local function refile(expiry, settled, due, member)
  if not due then return end
  local held = redis.call('ZRANGE', expiry, 0, 0, 'WITHSCORES')
  local forget = redis.call('ZRANGE', settled, 0, 0, 'WITHSCORES')
  local at = held[2]
  if forget[2] and (not at or tonumber(forget[2]) < tonumber(at)) then at = forget[2] end
  if at then
    redis.call('ZADD', due, at, member)
  else
    redis.call('ZREM', due, member)
  end
end

-- settle(settled, id, expires, retention) files a reservation settled now to be forgotten
-- `retention` µs after its expiry `expires` (µs, as ZSCORE answers it): never before the sweep
-- that found it due, so the due index needs no new entry. Without an expiry (never held) it
-- is kept.
local function settle(settled, id, expires, retention)
  if not expires then return end
  redis.call('ZADD', settled, string.format('%.0f', tonumber(expires) + tonumber(retention)), id)
end

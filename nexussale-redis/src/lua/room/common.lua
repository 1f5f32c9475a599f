-- Shared by the waiting-room scripts. KEYS[1] the room's hash (counters: seq, joined, admitted,
-- lapsed, used, settled, closed, opens), KEYS[2] the line (sorted set: ticket -> place score),
-- KEYS[3] the tickets (hash: ticket -> "w|<user>" | "a|<nonce>|<expiry µs>|<user>" |
-- "u|<nonce>|<expiry µs>|<user>"), KEYS[4] the passes out (sorted set: ticket -> expiry µs).
-- Places: a join before the opening draws a random score below 2^40 (its order among those is
-- the draw); later joins and lapsed passes queue at 2^40 + a sequence.
local BACK = 1099511627776

local function int(x)
  return string.format('%.0f', x)
end

local function user_of(v)
  local kind, rest = string.match(v, '^(%a)|(.*)$')
  if kind == 'w' then
    return rest
  end
  local _, _, user = string.match(rest, '^(%d+)|(%d+)|(.*)$')
  return user
end

local function queue_back(id, user)
  redis.call('HSET', KEYS[3], id, 'w|' .. user)
  redis.call('ZADD', KEYS[2], int(BACK + redis.call('HINCRBY', KEYS[1], 'seq', 1)), id)
end

-- {ticket value, rank or -1, closed, admitted, opens}
local function reply(id)
  local v = redis.call('HGET', KEYS[3], id)
  if not v then
    return false
  end
  local rank = redis.call('ZRANK', KEYS[2], id)
  local room = redis.call('HMGET', KEYS[1], 'closed', 'admitted', 'opens')
  return {v, rank or -1, room[1] or '0', room[2] or '0', room[3] or ''}
end

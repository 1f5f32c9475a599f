-- ARGV: user, a new ticket id, 1 when joining before the opening, that join's random score,
-- the opening (µs, or empty for none). Answers {new (0/1), ticket, reply(ticket)}.
local id = redis.call('HGET', KEYS[5], ARGV[1])
local new = 0
if not id then
  id = ARGV[2]
  new = 1
  redis.call('HSET', KEYS[5], ARGV[1], id)
  redis.call('HINCRBY', KEYS[1], 'joined', 1)
  redis.call('HSETNX', KEYS[1], 'opens', ARGV[5])
  if ARGV[3] == '1' then
    redis.call('HSET', KEYS[3], id, 'w|' .. ARGV[1])
    redis.call('ZADD', KEYS[2], ARGV[4], id)
  else
    queue_back(id, ARGV[1])
  end
end
return {new, id, reply(id)}

-- ARGV: ticket, nonce. Answers 1 when the used pass is valid again.
local v = redis.call('HGET', KEYS[3], ARGV[1])
if not v then
  return 0
end
local kind, rest = string.match(v, '^(%a)|(.*)$')
if kind ~= 'u' then
  return 0
end
local nonce, expires = string.match(rest, '^(%d+)|(%d+)|')
if nonce ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[3], ARGV[1], 'a|' .. rest)
redis.call('ZADD', KEYS[4], expires, ARGV[1])
return 1

-- ARGV: ticket, nonce, now µs. Answers 'ok', 'used', 'expired' or 'none'.
local v = redis.call('HGET', KEYS[3], ARGV[1])
if not v then
  return 'none'
end
local kind, rest = string.match(v, '^(%a)|(.*)$')
if kind == 'w' then
  return 'none'
end
local nonce, expires = string.match(rest, '^(%d+)|(%d+)|')
if nonce ~= ARGV[2] then
  return 'none'
end
if kind == 'u' then
  return 'used'
end
if tonumber(expires) <= tonumber(ARGV[3]) then
  return 'expired'
end
redis.call('HSET', KEYS[3], ARGV[1], 'u|' .. rest)
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'used', 1)
return 'ok'

-- ARGV: now µs, units available, settled before they were read, most to admit, pass TTL µs,
-- overbooking in thousandths, per-user limit. Answers {admitted, lapsed, outstanding, waiting}.
local now = tonumber(ARGV[1])
local lapsed = 0
local due = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', ARGV[1], 'LIMIT', 0, 10000)
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[4], id)
  queue_back(id, user_of(redis.call('HGET', KEYS[3], id)))
  lapsed = lapsed + 1
end
if lapsed > 0 then
  redis.call('HINCRBY', KEYS[1], 'lapsed', lapsed)
end
local admitted = 0
local room = redis.call('HMGET', KEYS[1], 'closed', 'used', 'opens')
local opens = tonumber(room[3] or '')
if room[1] ~= '1' and not (opens and now < opens) then
  local in_flight = math.max(tonumber(room[2] or '0') - tonumber(ARGV[3]), 0)
  local effective = math.max(tonumber(ARGV[2]) - in_flight, 0)
  local ceiling = math.floor(effective * tonumber(ARGV[6]) / (1000 * tonumber(ARGV[7])))
  local budget = math.min(ceiling - redis.call('ZCARD', KEYS[4]), tonumber(ARGV[4]))
  if budget > 0 then
    local front = redis.call('ZPOPMIN', KEYS[2], budget)
    local expires = int(now + tonumber(ARGV[5]))
    for i = 1, #front, 2 do
      local id = front[i]
      local nonce = redis.call('HINCRBY', KEYS[1], 'admitted', 1)
      local user = user_of(redis.call('HGET', KEYS[3], id))
      redis.call('HSET', KEYS[3], id, 'a|' .. int(nonce) .. '|' .. expires .. '|' .. user)
      redis.call('ZADD', KEYS[4], expires, id)
      admitted = admitted + 1
    end
  end
end
return {admitted, lapsed, redis.call('ZCARD', KEYS[4]), redis.call('ZCARD', KEYS[2])}

-- Answers {joined, admitted, lapsed, used, settled, closed, waiting, outstanding}.
local room = redis.call('HMGET', KEYS[1], 'joined', 'admitted', 'lapsed', 'used', 'settled', 'closed')
for i = 1, 6 do
  room[i] = tonumber(room[i] or '0')
end
room[7] = redis.call('ZCARD', KEYS[2])
room[8] = redis.call('ZCARD', KEYS[4])
return room

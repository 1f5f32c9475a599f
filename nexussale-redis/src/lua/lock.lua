-- Takes a sale's rebuild lock for a holder, or renews it when the holder has it.
--
-- KEYS[1] lock key; ARGV[1] holder, ARGV[2] lease in ms. Answers 1 when the holder has it now.
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1

-- Gives a sale's rebuild lock back, if the holder has it.
--
-- KEYS[1] lock key; ARGV[1] holder. Answers 1 when it was released.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1

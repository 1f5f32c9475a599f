-- Lists reservations of one stock shard whose expiry has passed, soonest first, and forgets
-- settled ones whose retention has passed.
--
-- KEYS[1] the prefix of its reservation buckets, KEYS[2] its `buckets` sorted set (see
-- records.lua), KEYS[3] keys hash, KEYS[4] (absent on a Redis Cluster) the due index (see
-- reserve.lua)
-- ARGV[1] now µs, ARGV[2] the most to answer, ARGV[3] the shard's member of the due index,
-- ARGV[4] the most to forget, ARGV[5] the retention (µs), ARGV[6] the most records to read
--
-- Walks the buckets due (walk.lua); each is refiled under the first instant it has work again
-- (its held reservations listed here included: they stay due until released), taken out once
-- empty.
--
-- Answers 1 when it stopped on its read budget with buckets left due (those answered are still
-- the soonest), else 0; then a flat list: order id, record, ... The shard is refiled in the due
-- index: due until its listed reservations are released.
local limit = tonumber(ARGV[2])
local found, visited, more, horizon = walk(KEYS[1], KEYS[2], KEYS[3], ARGV[1], limit,
  tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]))
local out = {more}
for _, due in ipairs(found) do
  work_at(visited[due[4]], due[1])
  -- Stopped early: only those no later than the last bucket visited are surely the soonest.
  if #out <= limit * 2 and not (more == 1 and due[1] > horizon) then
    out[#out + 1] = due[2]
    out[#out + 1] = due[3]
  end
end
rescore(KEYS[2], visited)
refile(KEYS[2], KEYS[4], ARGV[3])
return out

-- Lists reservations of one stock shard whose expiry has passed, soonest first, and forgets
-- settled ones whose retention has passed.
--
-- KEYS[1] the prefix of its reservation buckets, KEYS[2] its `buckets` sorted set (see
-- records.lua), KEYS[3] keys hash, KEYS[4] (absent on a Redis Cluster) the due index (see
-- reserve.lua)
-- ARGV[1] now µs, ARGV[2] the most to answer, ARGV[3] the shard's member of the due index,
-- ARGV[4] the most to forget, ARGV[5] the retention (µs), ARGV[6] the most records to read
--
-- Visits the buckets due by now in score order, reading each whole: its held reservations
-- expired by now are listed, its settled ones past their retention forgotten, and it is
-- refiled under the first instant it has work again (taken out once empty). It stops once
-- the soonest `ARGV[2]` listed cannot be preceded by any in a bucket further on (scored
-- later), or once it read `ARGV[6]` records (a call's bounded work).
--
-- Answers 1 when it stopped on that bound with buckets left due (those answered are still the
-- soonest), else 0; then a flat list: order id, record, ... The shard is refiled in the due
-- index: due until its listed reservations are released.
local prefix, buckets, keys = KEYS[1], KEYS[2], KEYS[3]
local now, limit, forget = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
local retention, budget = tonumber(ARGV[5]), tonumber(ARGV[6])
local found, forgotten, read, more, horizon = {}, 0, 0, 0, nil
local page = 32
local function soonest(x, y) return x[1] < y[1] end
-- Rescored after the walk, which pages through the set by rank.
local rescored = {}
local offset = 0
while true do
  local visit = redis.call('ZRANGEBYSCORE', buckets, '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', offset, page)
  for i = 1, #visit, 2 do
    local member = visit[i]
    local bucket = prefix .. member
    local entries = redis.call('HGETALL', bucket)
    local next_at = nil
    for j = 1, #entries, 2 do
      local id, record = entries[j], entries[j + 1]
      local state, expires, _, user, key = fields(record)
      local at = expires
      if state == 'r' then
        if expires <= now then found[#found + 1] = {expires, id, record} end
      else
        -- An aborted reservation answered nobody: only its expiry keeps it (replicas.rs).
        if state ~= 'a' then at = expires + retention end
        if at <= now and forgotten < forget then
          -- The key goes with the reservation it made; one that made another since stays.
          if key ~= '' then
            local field = user .. '\n' .. key
            if redis.call('HGET', keys, field) == id then redis.call('HDEL', keys, field) end
          end
          redis.call('HDEL', bucket, id)
          forgotten = forgotten + 1
          at = nil
        end
      end
      if at and (not next_at or at < next_at) then next_at = at end
    end
    read = read + #entries / 2
    rescored[#rescored + 1] = {member, next_at}
    horizon = tonumber(visit[i + 1])
  end
  if #visit < page * 2 then break end
  offset = offset + page
  -- Every bucket further on is scored at or after `horizon`, and holds nothing sooner.
  if #found >= limit then
    table.sort(found, soonest)
    if found[limit][1] <= horizon then break end
  end
  if read >= budget then
    more = 1
    break
  end
end
for _, bucket in ipairs(rescored) do
  if bucket[2] then
    redis.call('ZADD', buckets, string.format('%.0f', bucket[2]), bucket[1])
  else
    redis.call('ZREM', buckets, bucket[1])
  end
end
table.sort(found, soonest)
local out = {more}
for _, due in ipairs(found) do
  -- Stopped early: only those no later than the last bucket visited are surely the soonest.
  if #out > limit * 2 or (more == 1 and due[1] > horizon) then break end
  out[#out + 1] = due[2]
  out[#out + 1] = due[3]
end
refile(buckets, KEYS[4], ARGV[3])
return out

-- Releases, as expired, up to ARGV[2] held reservations of one stock shard whose expiry has
-- passed, soonest first; forgets settled ones whose retention has passed; refiles every bucket
-- it read (walk.lua): expired.lua and release.lua in one call, each record read once, each
-- bucket scored for its released reservations' retention at once instead of on a later visit.
--
-- KEYS[1] stock hash, KEYS[2] held hash, KEYS[3] the prefix of its reservation buckets, KEYS[4]
-- its `buckets` sorted set, KEYS[5] keys hash, KEYS[6] this call's answer (a list), KEYS[7]
-- (absent on a Redis Cluster) the due index
-- ARGV[1] now µs, ARGV[2] the most to release, ARGV[3] the shard's member of the due index,
-- ARGV[4] the most to forget, ARGV[5] the retention (µs), ARGV[6] the most records to read,
-- ARGV[7] how long the answer is kept (ms)
--
-- Answers the shard's sequence (guard.lua; {-1} alone: regressed; {0} alone: no such shard),
-- then 1 when more may be due (it stopped on a bound) else 0, then a flat list: order id, its
-- record as it was before, ... A call whose answer is found under KEYS[6] is the same call
-- made again (its reply was lost): it answers that again and changes nothing else.
local stock, held, prefix, buckets, keys, answer = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local seq = guard()
if seq < 0 then return {-1} end
if seq == 0 then return {0} end
local out = {seq}
local kept = redis.call('LRANGE', answer, 0, -1)
if #kept > 0 then
  for i = 1, #kept do out[#out + 1] = kept[i] end
  return out
end

local limit, retention = tonumber(ARGV[2]), tonumber(ARGV[5])
local found, visited, more, horizon = walk(prefix, buckets, keys, ARGV[1], limit,
  tonumber(ARGV[4]), retention, tonumber(ARGV[6]))
local released, returned = {}, 0
for _, due in ipairs(found) do
  local bucket, at = visited[due[4]], due[1]
  -- Stopped early: only those no later than the last bucket visited are surely the soonest.
  if #released < limit * 2 and not (more == 1 and at > horizon) then
    local id, record, quantity = due[2], due[3], due[5]
    release_held(held, bucket[2], id, record, 'e', due[6], quantity)
    returned = returned + quantity
    released[#released + 1] = id
    released[#released + 1] = record
    -- Settled now: forgotten a retention after its expiry.
    at = at + retention
  end
  work_at(bucket, at)
end
rescore(buckets, visited)
if returned > 0 then
  redis.call('HINCRBY', stock, 'reserved', -returned)
  redis.call('HINCRBY', stock, 'available', returned)
end
refile(buckets, KEYS[7], ARGV[3])

-- More may be due when a bound stopped it: the read budget, or `limit` released.
if more == 1 or #released >= limit * 2 then more = 1 end
out[#out + 1] = more
for i = 1, #released do out[#out + 1] = released[i] end
if #released > 0 then
  -- Kept for the same call made again; RPUSH in slices (Lua's unpack has a bounded stack).
  redis.call('RPUSH', answer, more)
  for i = 1, #released, 1000 do
    redis.call('RPUSH', answer, unpack(released, i, math.min(i + 999, #released)))
  end
  redis.call('PEXPIRE', answer, ARGV[7])
end
return out

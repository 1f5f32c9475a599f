-- Prepended to expired.lua and expire.lua (after records.lua): the walk over a shard's buckets
-- due that both make.
--
-- walk(prefix, buckets, keys, until_us, limit, forget, retention, budget) visits the buckets
-- due by `until_us` (µs, the caller's argument as given: a number Lua formats could lose
-- digits) in score order, reading each whole: it collects the held reservations expired by
-- then, forgets up to `forget` settled ones whose retention has passed (with the idempotency
-- key each made, in `keys`), and stops once the soonest `limit` collected cannot be preceded by
-- any in a bucket further on (scored later), or once it read `budget` records (a call's bounded
-- work). Answers:
-- - found: {expires, id, record, bucket (an index into `visited`), quantity, user}, soonest
--   first;
-- - visited: {member, bucket key, first instant it has work again}, that instant left of the
--   found reservations (the caller adds theirs: held, or settled by it);
-- - more: 1 when it stopped on its budget with buckets left due, else 0;
-- - horizon: the score of the last bucket read (with more = 1, only those found no later are
--   surely the soonest).
local function walk(prefix, buckets, keys, until_us, limit, forget, retention, budget)
  local now = tonumber(until_us)
  local found, visited, forgotten, read, more, horizon = {}, {}, 0, 0, 0, nil
  local page, offset = 32, 0
  local function soonest(x, y) return x[1] < y[1] end
  while true do
    -- The walk pages by rank: buckets are rescored after it (rescore()), not during.
    local visit = redis.call('ZRANGEBYSCORE', buckets, '-inf', until_us, 'WITHSCORES', 'LIMIT', offset, page)
    for i = 1, #visit, 2 do
      local member = visit[i]
      local bucket = prefix .. member
      local entries = redis.call('HGETALL', bucket)
      local next_at = nil
      local v = #visited + 1
      for j = 1, #entries, 2 do
        local id, record = entries[j], entries[j + 1]
        local state, expires, quantity, user, key = fields(record)
        local at = expires
        if state == 'r' then
          if expires <= now then
            found[#found + 1] = {expires, id, record, v, quantity, user}
            at = nil
          end
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
      visited[v] = {member, bucket, next_at}
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
  table.sort(found, soonest)
  return found, visited, more, horizon
end

-- A bucket `walk` visited has work again at `at` (a reservation found in it).
local function work_at(bucket, at)
  if not bucket[3] or at < bucket[3] then bucket[3] = at end
end

-- Files each bucket `walk` visited under the first instant it has work again, or takes it out.
local function rescore(buckets, visited)
  for _, bucket in ipairs(visited) do
    if bucket[3] then
      redis.call('ZADD', buckets, string.format('%.0f', bucket[3]), bucket[1])
    else
      redis.call('ZREM', buckets, bucket[1])
    end
  end
end

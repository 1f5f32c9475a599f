-- Prepended to every script that changes a stock shard; KEYS[1] is the shard's stock hash
-- unless guard() is given another (reserve.lua guards each shard of its batch).
--
-- guard() runs before the script changes anything and answers the shard's sequence, advanced by
-- one; 0 when the shard does not exist (the script answers that itself); -1 when the shard is
-- regressed: then the script changes nothing and answers {-1}.
--
-- A shard is regressed once it was last written by a primary other than the one running this
-- (`node`, the writer's replication id: a failover since, and the promoted replica may lack the
-- last writes), once a process saw its sequence go backwards (mark.lua), or once it is found
-- written in an earlier key layout (`layout` other than LAYOUT: its rebuild writes this one).
-- Only restore.lua clears it. The callers compare the sequence with the highest they have seen.

-- The key layout create.lua and restore.lua write (records.lua: reservations in buckets).
local LAYOUT = '2'

-- This primary's replication id, read once a call (a batch guards many shards).
local primary_id = nil
local function primary()
  if not primary_id then
    primary_id = string.match(redis.call('INFO', 'replication'), 'master_replid:(%x+)')
  end
  return primary_id
end

-- checked(stock, ...) is guard() without its write, for a script that writes the shard's hash
-- anyway: one HMGET reads the guard's fields and the caller's (`...`); it answers the sequence,
-- the shard's `available`, then the caller's fields' values in order. The caller must write the
-- sequence it answers (HSET stock seq <it>, beside its own fields) whenever it is above 0.
local function checked(stock, ...)
  local meta = redis.call('HMGET', stock, 'available', 'regressed', 'node', 'layout', 'seq', ...)
  if not meta[1] then return 0 end
  if meta[2] then return -1 end
  if meta[4] ~= LAYOUT then
    redis.call('HSET', stock, 'regressed', 'layout')
    return -1
  end
  local node = primary()
  if meta[3] ~= node then
    if meta[3] then
      redis.call('HSET', stock, 'regressed', 'failover')
      return -1
    end
    -- A shard written before this check existed adopts this primary.
    redis.call('HSET', stock, 'node', node)
  end
  -- Below 2^53 (a clock's µs plus one a call): exact as a Lua number.
  return (tonumber(meta[5]) or 0) + 1, meta[1], select(6, unpack(meta))
end

local function guard(stock)
  stock = stock or KEYS[1]
  local seq = checked(stock)
  if seq > 0 then redis.call('HSET', stock, 'seq', string.format('%.0f', seq)) end
  return seq
end

-- What create.lua and restore.lua start a shard with: this primary's replication id, and a
-- sequence from this server's clock in µs, above any the shard's earlier life reached (one
-- script call takes more than a µs).
local function origin()
  local now = redis.call('TIME')
  return primary(), now[1] .. string.format('%06d', tonumber(now[2]))
end


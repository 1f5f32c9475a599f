-- Prepended to every script that changes a stock shard; KEYS[1] is the shard's stock hash.
--
-- guard() runs before the script changes anything and answers the shard's sequence, advanced by
-- one; 0 when the shard does not exist (the script answers that itself); -1 when the shard is
-- regressed: then the script changes nothing and answers {-1}.
--
-- A shard is regressed once it was last written by a primary other than the one running this
-- (`node`, the writer's replication id: a failover since, and the promoted replica may lack the
-- last writes), or once a process saw its sequence go backwards (mark.lua). Only restore.lua
-- clears it. The callers compare the sequence with the highest they have seen.
local function guard()
  local meta = redis.call('HMGET', KEYS[1], 'available', 'regressed', 'node')
  if not meta[1] then return 0 end
  if meta[2] then return -1 end
  local node = string.match(redis.call('INFO', 'replication'), 'master_replid:(%x+)')
  if meta[3] ~= node then
    if meta[3] then
      redis.call('HSET', KEYS[1], 'regressed', 'failover')
      return -1
    end
    -- A shard written before this check existed adopts this primary.
    redis.call('HSET', KEYS[1], 'node', node)
  end
  return redis.call('HINCRBY', KEYS[1], 'seq', 1)
end

-- What create.lua and restore.lua start a shard with: this primary's replication id, and a
-- sequence from this server's clock in µs, above any the shard's earlier life reached (one
-- script call takes more than a µs).
local function origin()
  local now = redis.call('TIME')
  local node = string.match(redis.call('INFO', 'replication'), 'master_replid:(%x+)')
  return node, now[1] .. string.format('%06d', tonumber(now[2]))
end


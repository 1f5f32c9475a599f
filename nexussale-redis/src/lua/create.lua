-- Creates one stock shard of a sale unless it exists.
--
-- KEYS[1] stock hash (see reserve.lua)
-- ARGV[1] available units, ARGV[2] per-user limit, ARGV[3] start µs or '', ARGV[4] end µs or '',
-- ARGV[5] shard count, ARGV[6] the sale's definition (JSON; shard 0 only, '' on the others)
--
-- Answers 1 when created, 0 when the shard existed (left unchanged).
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local node, seq = origin()
redis.call('HSET', KEYS[1], 'available', ARGV[1], 'reserved', 0, 'sold', 0, 'limit', ARGV[2],
  'start', ARGV[3], 'end', ARGV[4], 'shards', ARGV[5], 'node', node, 'seq', seq, 'born', seq,
  'layout', LAYOUT)
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'def', ARGV[6]) end
return 1

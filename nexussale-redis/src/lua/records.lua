-- Prepended to the scripts that read or write reservations (see reserve.lua).
--
-- A reservation lives in its bucket: the hash `{prefix}<ms>` (order id -> record), `ms` being
-- the millisecond in the order id (its first 48 bits: a UUID v7's timestamp). The reservations
-- a shard takes in one millisecond share one small hash, which Redis keeps as a listpack (a few
-- bytes of overhead an entry instead of a dictionary entry and two allocations) while it holds
-- at most `hash-max-listpack-entries` of them and each record fits `hash-max-listpack-value`.
--
-- A record: the state letter, then `expires,quantity,created` (each µs since the epoch, with
-- `.ns` when it has nanoseconds beyond), `\n` user, `\n` idempotency key (or nothing), and
-- `\n` remark when it has one.
--
-- The shard's `buckets` sorted set scores each bucket no later than the first instant the
-- sweeper has work there: the earliest expiry of a held reservation in it, or the earliest
-- instant it is to forget a settled one (its expiry plus the retention). Writers only lower a
-- score (ZADD LT); expired.lua sets the exact one after it reads the bucket.

-- The bucket (its member in `buckets`) of an order id: 16 bytes.
local function bucket_of(id)
  local a, b, c, d, e, f = string.byte(id, 1, 6)
  return string.format('%.0f', ((((a * 256 + b) * 256 + c) * 256 + d) * 256 + e) * 256 + f)
end

-- A record's state letter, expiry (µs), quantity, user and key ('' when none).
local function fields(record)
  local state, expires, quantity, user, key =
    string.match(record, '^(.)(%-?%d+)[^,]*,(%d+),[^\n]*\n([^\n]*)\n([^\n]*)')
  return state, tonumber(expires), tonumber(quantity), user, key
end

-- refile(buckets, due, member) files `member` in the due index under the shard's earliest
-- bucket score, or takes it out when the shard holds no reservation; nothing without a due
-- index (`due` is nil on a Redis Cluster). Scores go back as Redis wrote them (a number Lua
-- formats could lose digits).
local function refile(buckets, due, member)
  if not due then return end
  local first = redis.call('ZRANGE', buckets, 0, 0, 'WITHSCORES')
  if first[2] then
    redis.call('ZADD', due, first[2], member)
  else
    redis.call('ZREM', due, member)
  end
end

-- Releases the held reservation `id` (its `record`, in `bucket`): its state becomes `letter`
-- (x cancelled, e expired, a aborted), and its user's hold in `held` drops by `quantity`. The
-- caller gives the units back.
local function release_held(held, bucket, id, record, letter, user, quantity)
  redis.call('HSET', bucket, id, letter .. string.sub(record, 2))
  if redis.call('HINCRBY', held, user, -quantity) <= 0 then
    redis.call('HDEL', held, user)
  end
end

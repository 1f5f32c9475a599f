-- Releases reservations: their units go back on sale and their users' holds drop, each at most
-- once. One call releases a whole batch (the sweeper's), in order.
--
-- KEYS[1] stock hash, KEYS[2] held hash, KEYS[3] the prefix of its reservation buckets (see
-- reserve.lua, records.lua)
-- ARGV[1] the new state letter: x cancelled, e expired, a aborted; ARGV[2..] order ids
--
-- Answers the shard's sequence (guard.lua; {-1} alone: regressed), then two values per order id:
-- 0 and the quantity: released by this call, 1 and the state letter: released before, 2 and 0:
-- refused, confirmed, 3 and 0: no such reservation in this shard.
--
-- Buckets keep their scores (no later than these expiries): the sweeper, visiting them then,
-- files them for when the released reservations are to be forgotten.
local stock, held, prefix = KEYS[1], KEYS[2], KEYS[3]
local reason = ARGV[1]
local seq = guard()
if seq < 0 then return {-1} end
local out = {seq}
local returned = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  local bucket = prefix .. bucket_of(id)
  local record = redis.call('HGET', bucket, id)
  local state, _, quantity, user
  if record then state, _, quantity, user = fields(record) end
  if not record then
    out[#out + 1] = 3
    out[#out + 1] = 0
  elseif state == 'c' then
    out[#out + 1] = 2
    out[#out + 1] = 0
  elseif state ~= 'r' then
    out[#out + 1] = 1
    out[#out + 1] = state
  else
    release_held(held, bucket, id, record, reason, user, quantity)
    returned = returned + quantity
    out[#out + 1] = 0
    out[#out + 1] = quantity
  end
end
if returned > 0 then
  redis.call('HINCRBY', stock, 'reserved', -returned)
  redis.call('HINCRBY', stock, 'available', returned)
end
return out

--[[
  release.lua: give a cancelled order's units back to the sale, at most once per order.

  KEYS[1] sale      hash  (see purchase.lua); its `stock` field goes up
  KEYS[2] buyers    hash  user id -> units bought; the user's count goes down
  KEYS[3] released  set   order ids already released

  ARGV[1] order id
  ARGV[2] user id
  ARGV[3] quantity
  ARGV[4] pub/sub channel told the item id when stock comes back ("" for none)
  ARGV[5] item id

  Returns {outcome, remaining stock} where outcome is
    0 released           units returned, user's count lowered, channel told
    1 already released   this order was released before: nothing changed
    2 no such item       the sale has no counters here (not loaded, or being rebuilt):
                         nothing changed; the caller retries later
    3 closed             the sale window has closed (Redis's clock): nothing changed; the
                         units go back on hand instead, never into a sale nobody can buy

  This script is where "back on sale" or not is decided, once per order: a retry finds
  the order in KEYS[3] (released) or the window still closed, whatever Postgres's clock
  or a changed end time says meanwhile.
]]
if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1 then
  return {1, tonumber(redis.call('HGET', KEYS[1], 'stock') or '0')}
end
local sale = redis.call('HMGET', KEYS[1], 'stock', 'ends_ms')
if not sale[1] then
  return {2, 0}
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now_ms >= tonumber(sale[2]) then
  return {3, tonumber(sale[1])}
end
local quantity = tonumber(ARGV[3])
redis.call('SADD', KEYS[3], ARGV[1])
local remaining = redis.call('HINCRBY', KEYS[1], 'stock', quantity)
local left = redis.call('HINCRBY', KEYS[2], ARGV[2], -quantity)
if left <= 0 then
  redis.call('HDEL', KEYS[2], ARGV[2])
end
if ARGV[4] ~= '' then
  redis.call('PUBLISH', ARGV[4], ARGV[5])
end
return {0, remaining}

--[[
  purchase.lua: one purchase attempt, decided and recorded atomically.

  KEYS[1] sale      hash  stock, starts_ms, ends_ms, early_ms, limit, paused, price, event
  KEYS[2] buyers    hash  user id -> units bought
  KEYS[3] idem      string: first order id for (user, Idempotency-Key); any key of the
                    item's slot when no Idempotency-Key was sent
  KEYS[4] orders    stream of accepted orders (the order writer's input)
  KEYS[5] queued    hash  order id -> "quantity|unit price|event id|accepted ms|user id",
                    until the order is in Postgres (user id last: it may hold any character)

  ARGV[1] user id
  ARGV[2] quantity (positive integer)
  ARGV[3] "1" if the user is a member (may buy early_ms before starts_ms), else "0"
  ARGV[4] order id to use if accepted
  ARGV[5] Idempotency-Key, or "" for none
  ARGV[6] idempotency record TTL in seconds
  ARGV[7] item id

  Returns {outcome, remaining stock, order id or ""} where outcome is
    0 accepted         stock taken, order appended to KEYS[4]
    1 replayed         same Idempotency-Key seen: the first order id, nothing taken
    2 no such item     KEYS[1] does not exist
    3 paused
    4 not started      (for this user: members open early_ms sooner)
    5 ended
    6 limit exceeded   quantity would take the user over the per-user limit
    7 sold out         stock < quantity
    8 bad quantity     quantity not a positive integer, or above the per-user limit

  The checks run in this order, and the first that fails answers: 2, 8, 1, 3, 4 and 5
  (the window), 6, 7. A retry with a known Idempotency-Key is replayed before anything
  else is looked at: the client's first answer stands even if the sale was paused, closed
  or sold out since (the contract: a repeat "returns the first answer"), and a replay
  takes nothing.

  The clock is Redis's own (TIME), so no API process's clock can open a sale early.
]]
local sale = redis.call('HMGET', KEYS[1],
  'stock', 'starts_ms', 'ends_ms', 'early_ms', 'limit', 'paused', 'price', 'event')
local stock = tonumber(sale[1])
if stock == nil then
  return {2, 0, ''}
end
local quantity = tonumber(ARGV[2])
if quantity == nil or quantity < 1 or quantity ~= math.floor(quantity)
    or quantity > tonumber(sale[5]) then
  return {8, stock, ''}
end

local idem_key = ARGV[5]
if idem_key ~= '' then
  local first = redis.call('GET', KEYS[3])
  if first then
    return {1, stock, first}
  end
end

if sale[6] == '1' then
  return {3, stock, ''}
end

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local opens_ms = tonumber(sale[2])
if ARGV[3] == '1' then
  opens_ms = opens_ms - tonumber(sale[4])
end
if now_ms < opens_ms then
  return {4, stock, ''}
end
if now_ms >= tonumber(sale[3]) then
  return {5, stock, ''}
end

local user = ARGV[1]
local bought = tonumber(redis.call('HGET', KEYS[2], user) or '0')
if bought + quantity > tonumber(sale[5]) then
  return {6, stock, ''}
end
if stock < quantity then
  return {7, stock, ''}
end

local order_id = ARGV[4]
local remaining = redis.call('HINCRBY', KEYS[1], 'stock', -quantity)
redis.call('HINCRBY', KEYS[2], user, quantity)
if idem_key ~= '' then
  redis.call('SET', KEYS[3], order_id, 'EX', tonumber(ARGV[6]))
end
redis.call('HSET', KEYS[5], order_id,
  quantity .. '|' .. sale[7] .. '|' .. sale[8] .. '|' .. now_ms .. '|' .. user)
redis.call('XADD', KEYS[4], '*',
  'order_id', order_id, 'user_id', user, 'item_id', ARGV[7], 'event_id', sale[8],
  'quantity', quantity, 'unit_price', sale[7], 'accepted_ms', now_ms, 'idempotency_key', idem_key)
return {0, remaining, order_id}

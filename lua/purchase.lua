--[[
  purchase.lua: one purchase attempt, decided and recorded atomically.

  KEYS[1] sale      hash  stock, starts_ms, ends_ms, early_ms, limit, paused, price, event,
                          held ("1" while the item's campaign is not approved: it does not
                          exist for shoppers), rules (its campaign's rules version),
                          frozen ("1" while the item is held after a hot-store fault),
                          epoch (Redis ms when warmup.lua built the counters), seq
                          (acceptances within the epoch), behind ("1": frozen here for
                          being behind ARGV[12..13], to be rebuilt), gated ("1": the
                          event is entered through a queue or a draw: only a buyer
                          admitted to it, ARGV[15], may buy), member_price (what a
                          member pays; "" or absent: the price), reserved (units only
                          members may take until reserved_until_ms; what they leave then
                          is general stock, by this script's clock alone: nothing to
                          move, so no unit is stranded or sold twice), member_units
                          (units members took: the first `reserved` of them came out of
                          the reserve; a returned unit goes back as general stock)
  KEYS[2] buyers    hash  user id -> units bought
  KEYS[3] idem      string: "first order id|quantity" for (user, Idempotency-Key), kept
                    until the sale ends plus ARGV[6] (app/store/records.py); any key of
                    the item's slot when no Idempotency-Key was sent
  KEYS[4] orders    stream of accepted orders (the order writer's input)
  KEYS[5] queued    hash  order id -> "quantity|unit price|event id|accepted ms|user id",
                    until the order is in Postgres (user id last: it may hold any character)
  KEYS[6] user rate bucket     string (see rate_limit.lua): this user's requests on this
                               item; any key of the item's slot when the limit is off
  KEYS[7] address rate bucket  string: the client address's requests on this item; same
  KEYS[8] participants  HyperLogLog of users who tried (live stats; ~0.8% error, 12 KB)
  KEYS[9] stats     hash  attempts, accepted_orders, accepted_units, sold_out_ms (last time
                    the stock reached 0)
  KEYS[10] converted  HyperLogLog of users with an accepted order

  ARGV[1] user id
  ARGV[2] quantity (positive integer)
  ARGV[3] "1" if the user is a member (may buy early_ms before starts_ms, pays
          member_price, may take reserved units), else "0"
  ARGV[4] order id to use if accepted
  ARGV[5] Idempotency-Key, or "" for none
  ARGV[6] how long an idempotency record outlives the sale's end, in seconds
  ARGV[7] item id
  ARGV[8] user limit: emission interval in microseconds, "0" = no limit
  ARGV[9] user limit: burst
  ARGV[10] address limit: emission interval in microseconds, "0" = no limit
  ARGV[11] address limit: burst
  ARGV[12] epoch  ARGV[13] seq: the newest generation of this sale the calling process has
           seen accepted (app/store/generations.py), "0" "0" if none. Redis behind it
           came back from an older snapshot: the item is frozen (answer 10).
  ARGV[14] channel code (X-Channel, app/campaigns/service.py), "" for none: recorded with
           the order
  ARGV[15] the event id the buyer's pass admits them to now (X-Seckill-Pass, checked by
           the API process: signature, user, window; app/access/passes.py), "" for none

  Returns {outcome, remaining stock, order id or ""} where outcome is
    0 accepted         stock taken, order appended to KEYS[4]; the reply carries the
                       sale's epoch and the order's seq too: {0, remaining, id, epoch, seq}
    1 replayed         same Idempotency-Key seen: the first order id, nothing taken
    2 no such item     KEYS[1] does not exist, or its campaign is not approved (held)
    3 paused
    4 not started      (for this user: members open early_ms sooner)
    5 ended
    6 limit exceeded   quantity would take the user over the per-user limit
    7 sold out         stock < quantity (for a non-member: stock less the reserve
                       members have left, until reserved_until_ms)
    8 bad quantity     quantity not a positive integer, or above the per-user limit
    9 rate limited     {9, microseconds until a request would be allowed, "user" or
                       "address"}: over a rate limit, nothing taken and nothing counted
   10 recovering       the item is frozen (Redis lost or rolled back data; see
                       app/flows/freshness.py), or is found behind ARGV[12..13] and
                       frozen now: nothing taken, nothing counted
   11 key reused       the Idempotency-Key's first order asked for another quantity:
                       {11, stock, first order id}, nothing taken
   12 not admitted     the sale is gated and ARGV[15] is not its event: nothing taken,
                       nothing counted (neither the rate limits nor the live stats)

  The checks run in this order, and the first that fails answers: 2 (held), 10, 2, 10
  (behind), 12, 9, 8, 1 or 11, 3, 4 and 5 (the window), 6, 7. Not admitted comes before
  the rate limits so that a crowd without passes spends no one's budget; a retry with a
  known Idempotency-Key whose pass has expired since still hears its first answer (1 or
  11: a replay takes nothing). A retry with a known Idempotency-Key is
  replayed before anything else but the rate limits is looked at: the client's first
  answer stands even if the sale was paused, closed or sold out since (the contract: a
  repeat "returns the first answer"), and a replay takes nothing. The key reused for
  another quantity is a client's mistake (answer 11), never a second order.

  The rate limits are rate_limit.lua's GCRA, inlined so that a limited purchase still
  costs one round trip (the buckets are per user and per address on this item, in its
  slot). A request both let through is counted against both, whatever its answer; a
  refused one is counted against neither.

  The clock is Redis's own (TIME), so no API process's clock can open a sale early.
]]
local sale = redis.call('HMGET', KEYS[1], 'stock', 'starts_ms', 'ends_ms', 'early_ms', 'limit',
  'paused', 'price', 'event', 'frozen', 'epoch', 'seq', 'held', 'rules', 'gated',
  'member_price', 'reserved', 'reserved_until_ms', 'member_units')
local stock = tonumber(sale[1])
if sale[12] == '1' then
  return {2, 0, ''}
end
if sale[9] == '1' then
  return {10, stock or 0, ''}
end
if stock == nil then
  return {2, 0, ''}
end
local epoch, seq = tonumber(sale[10] or '0'), tonumber(sale[11] or '0')
local seen_epoch, seen_seq = tonumber(ARGV[12]), tonumber(ARGV[13])
if epoch < seen_epoch or (epoch == seen_epoch and seq < seen_seq) then
  -- `behind` tells the order writer's check to rebuild the item (app/flows/freshness.py)
  redis.call('HSET', KEYS[1], 'frozen', '1', 'behind', '1')
  return {10, stock, ''}
end

-- A retry with a known Idempotency-Key: its first answer (1), or 11 if it asks for
-- another quantity; nil if the key is new (or none was sent).
local function replay()
  if ARGV[5] == '' then
    return nil
  end
  local first = redis.call('GET', KEYS[3])
  if not first then
    return nil
  end
  local first_id, first_quantity = string.match(first, '^([^|]*)|?(%d*)$')
  if first_quantity ~= '' and tonumber(first_quantity) ~= tonumber(ARGV[2]) then
    return {11, stock, first_id}
  end
  return {1, stock, first_id}
end

if sale[14] == '1' and ARGV[15] ~= sale[8] then
  return replay() or {12, stock, ''}
end

-- GCRA, as in rate_limit.lua: the bucket's next arrival time if one more request fits
-- (and how far ahead of now it is), else nil and how long until one would.
local function gcra(tat, interval, burst, now_us)
  if tat < now_us then
    tat = now_us
  end
  local ahead = tat + interval - now_us
  local over = ahead - interval * burst
  if over > 0 then
    return nil, over
  end
  return tat + interval, ahead
end

if ARGV[8] ~= '0' or ARGV[10] ~= '0' then
  local clock = redis.call('TIME')
  local now_us = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
  local user_tat, user_ahead, address_tat, address_ahead
  if ARGV[8] ~= '0' then
    user_tat, user_ahead = gcra(tonumber(redis.call('GET', KEYS[6]) or '0'),
      tonumber(ARGV[8]), tonumber(ARGV[9]), now_us)
    if user_tat == nil then
      return {9, user_ahead, 'user'}
    end
  end
  if ARGV[10] ~= '0' then
    address_tat, address_ahead = gcra(tonumber(redis.call('GET', KEYS[7]) or '0'),
      tonumber(ARGV[10]), tonumber(ARGV[11]), now_us)
    if address_tat == nil then
      return {9, address_ahead, 'address'}
    end
  end
  if user_tat then
    redis.call('SET', KEYS[6], string.format('%.0f', user_tat), 'PX', math.ceil(user_ahead / 1000))
  end
  if address_tat then
    redis.call('SET', KEYS[7], string.format('%.0f', address_tat),
      'PX', math.ceil(address_ahead / 1000))
  end
end

-- Live stats: two O(1) commands per attempt let through, on keys of this item's slot
-- (every line of the live stats is marked: bench/stats_cost.py measures them).
redis.call('PFADD', KEYS[8], ARGV[1]) -- live stats
redis.call('HINCRBY', KEYS[9], 'attempts', 1) -- live stats

local quantity = tonumber(ARGV[2])
if quantity == nil or quantity < 1 or quantity ~= math.floor(quantity)
    or quantity > tonumber(sale[5]) then
  return {8, stock, ''}
end

local idem_key = ARGV[5]
local replayed = replay()
if replayed then
  return replayed
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
local member = ARGV[3] == '1'
local available = stock
local reserved = tonumber(sale[16] or '0')
if not member and reserved > 0 and now_ms < tonumber(sale[17]) then
  local reserve_left = reserved - tonumber(sale[18] or '0')
  if reserve_left > 0 then
    available = stock - reserve_left
  end
end
if available < quantity then
  return {7, stock, ''}
end
local price = sale[7]
if member then
  redis.call('HINCRBY', KEYS[1], 'member_units', quantity)
  -- Never above the price: an operator may have lowered it below the member price.
  if sale[15] and sale[15] ~= '' and tonumber(sale[15]) < tonumber(price) then
    price = sale[15]
  end
end

local order_id = ARGV[4]
local remaining = redis.call('HINCRBY', KEYS[1], 'stock', -quantity)
seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HINCRBY', KEYS[2], user, quantity)
if idem_key ~= '' then
  redis.call('SET', KEYS[3], order_id .. '|' .. quantity,
    'PX', tonumber(sale[3]) - now_ms + tonumber(ARGV[6]) * 1000)
end
redis.call('HSET', KEYS[5], order_id,
  quantity .. '|' .. price .. '|' .. sale[8] .. '|' .. now_ms .. '|' .. user)
redis.call('XADD', KEYS[4], '*',
  'order_id', order_id, 'user_id', user, 'item_id', ARGV[7], 'event_id', sale[8],
  'quantity', quantity, 'unit_price', price, 'accepted_ms', now_ms, 'idempotency_key', idem_key,
  'rules_version', sale[13] or '', 'channel', ARGV[14], 'member', ARGV[3])
redis.call('HINCRBY', KEYS[9], 'accepted_orders', 1) -- live stats
redis.call('HINCRBY', KEYS[9], 'accepted_units', quantity) -- live stats
redis.call('PFADD', KEYS[10], user) -- live stats
if remaining <= 0 then redis.call('HSET', KEYS[9], 'sold_out_ms', now_ms) end -- live stats
return {0, remaining, order_id, epoch, seq}

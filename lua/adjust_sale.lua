--[[
  adjust_sale.lua: apply an operator's mid-sale change to one item, atomically: stock
  added (from the SKU, already booked in Postgres) and the sale's terms. A purchase runs
  before or after this script, never in between, so none sees half a change.

  Stock is set by allocation, not by increment, so the script is idempotent and order-
  insensitive: the sale hash remembers the allocation its stock reflects (`allocated`),
  and only the difference to a larger allocation is added. Re-running a change, or
  running two changes in the wrong order, adds each unit once; a warm-up that loaded the
  item from Postgres after the change already counted it, so nothing is added twice.

  Terms are versioned as a whole: a version stands for every term (window, early access,
  limit, pause, price, event), so a newer version never leaves an older term in force
  (a pause lost with its write is not hidden by a later change of the price). Versions
  come from a Postgres sequence and are never reused.

  KEYS[1] sale      hash  (see purchase.lua): `stock` and `allocated` move together

  ARGV[1] the item's allocation before this change: what an older sale hash without an
          `allocated` field reflects
  ARGV[2] the item's allocation after this change
  ARGV[3] pub/sub channel told the item id when stock was added ("" for none), so every
          API process forgets its sold-out mark
  ARGV[4] item id
  ARGV[5] version of the terms below (event_items.terms_version): they are set only if
          newer than the hash's `terms_version`, so two changes applied out of order
          leave the later one in force
  ARGV[6] apply by: Redis time in ms after which nothing is changed ("0": any time). A
          caller that waits this long no more has given up and told its operator that
          nothing changed; a call that Redis runs only later (it was stalled) must not
          change the sale behind the operator's back
  ARGV[7..] the whole terms: starts_ms, ends_ms, early_ms, limit, paused, price, event,
          held, rules, gated, member_price, reserved, reserved_until_ms
          (field, value, ... as warmup.lua writes them); none for a stock-only change

  Returns {outcome, remaining stock, units added} where outcome is
    0 applied
    2 no such item   KEYS[1] has no stock: nothing changed (the next warm-up loads the
                     item from Postgres, this change included)
    3 too late       past ARGV[6]: nothing changed
]]
if ARGV[6] ~= '0' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if now > tonumber(ARGV[6]) then
    return {3, 0, 0}
  end
end
local stock = tonumber(redis.call('HGET', KEYS[1], 'stock'))
if stock == nil then
  return {2, 0, 0}
end
local current = tonumber(redis.call('HGET', KEYS[1], 'allocated') or ARGV[1])
local target = tonumber(ARGV[2])
local added = 0
if target > current then
  added = target - current
  stock = redis.call('HINCRBY', KEYS[1], 'stock', added)
  redis.call('HSET', KEYS[1], 'allocated', target)
else
  redis.call('HSET', KEYS[1], 'allocated', current)
end
local applied_version = tonumber(redis.call('HGET', KEYS[1], 'terms_version') or '-1')
if #ARGV >= 8 and tonumber(ARGV[5]) > applied_version then
  redis.call('HSET', KEYS[1], 'terms_version', ARGV[5], unpack(ARGV, 7))
end
if added > 0 and ARGV[3] ~= '' then
  redis.call('PUBLISH', ARGV[3], ARGV[4])
end
return {0, stock, added}

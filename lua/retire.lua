--[[
  retire.lua: put away an ended, settled sale's keys that only grow, atomically.

  The sale hash stays (a few fields): purchases still answer `ended` from it, and its
  stock is still what the audit compares with the ledger. The live stats (participants,
  converted, stats) stay for the report. What goes: the buyers' counts (one field per
  buyer; no purchase can use them once the window is closed), the `released` set (one
  member per cancellation), the `queued` marks and the writer's failure counts (both
  empty once settled). The stream stays, empty, with its consumer group.

  KEYS[1] sale      hash  (see purchase.lua); gets `retired` = Redis ms
  KEYS[2] buyers    hash
  KEYS[3] orders    stream
  KEYS[4] queued    hash
  KEYS[5] released  set
  KEYS[6] failures  hash  (the order writer's, per stream entry)

  Returns {outcome} where outcome is
    0 retired (or retired before: nothing changed)
    1 open            the sale window has not closed yet (Redis's clock)
    2 unsettled       orders still wait in the stream or in `queued`
    3 no such item    no sale hash: nothing to retire
]]
local sale = redis.call('HMGET', KEYS[1], 'ends_ms', 'retired')
if not sale[1] then
  return {3}
end
if sale[2] then
  return {0}
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now_ms < tonumber(sale[1]) then
  return {1}
end
if redis.call('XLEN', KEYS[3]) > 0 or redis.call('HLEN', KEYS[4]) > 0 then
  return {2}
end
redis.call('DEL', KEYS[2], KEYS[4], KEYS[5], KEYS[6])
redis.call('HSET', KEYS[1], 'retired', now_ms)
return {0}

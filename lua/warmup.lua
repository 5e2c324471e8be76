--[[
  warmup.lua: load an item's sale state from Postgres (the truth) into Redis.

  Static fields (window, limit, price, paused, event) are always refreshed. The live
  counters (stock and the buyers' counts) are written only when the item is not in
  Redis yet, so a warm-up never overwrites a sale in progress.

  KEYS[1] sale      hash  (see purchase.lua)
  KEYS[2] buyers    hash  user id -> units bought
  KEYS[3] orders    stream; its consumer group is created if missing

  ARGV[1] stock to start from (allocation minus units in live orders)
  ARGV[2] starts_ms   ARGV[3] ends_ms   ARGV[4] early_ms
  ARGV[5] per-user limit   ARGV[6] paused ("1"/"0")   ARGV[7] unit price   ARGV[8] event id
  ARGV[9] consumer group name of the order writer
  ARGV[10..] user id, units bought, user id, units bought, ... (counts from Postgres)

  Returns {loaded, stock}: loaded is 1 if the counters were written, 0 if they existed.
]]
local loaded = 0
if redis.call('HEXISTS', KEYS[1], 'stock') == 0 then
  redis.call('HSET', KEYS[1], 'stock', ARGV[1])
  redis.call('DEL', KEYS[2])
  for i = 10, #ARGV, 2 do
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  end
  loaded = 1
end
redis.call('HSET', KEYS[1],
  'starts_ms', ARGV[2], 'ends_ms', ARGV[3], 'early_ms', ARGV[4],
  'limit', ARGV[5], 'paused', ARGV[6], 'price', ARGV[7], 'event', ARGV[8])
local created = redis.pcall('XGROUP', 'CREATE', KEYS[3], ARGV[9], '0', 'MKSTREAM')
if type(created) == 'table' and created.err and not string.find(created.err, 'BUSYGROUP') then
  return redis.error_reply(created.err)
end
return {loaded, tonumber(redis.call('HGET', KEYS[1], 'stock'))}

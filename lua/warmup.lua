--[[
  warmup.lua: load an item's sale state from Postgres (the truth) into Redis.

  Static fields (window, limit, price, paused, event, held, rules, gated, the members'
  price and reserve) are refreshed when Postgres's
  version of them is newer (ARGV[11]). The live counters (stock and the buyers' counts) are written only when the item is not in
  Redis yet, so a warm-up never overwrites a sale in progress.

  KEYS[1] sale      hash  (see purchase.lua)
  KEYS[2] buyers    hash  user id -> units bought
  KEYS[3] orders    stream; its consumer group is created if missing
  KEYS[4] released  set   orders release.lua gave back: emptied with new counters, which
                          count every return not booked in Postgres as still sold

  ARGV[1] stock to start from (allocation minus units of live orders and of returns not
          booked yet: only release.lua gives those back)
  ARGV[2] starts_ms   ARGV[3] ends_ms   ARGV[4] early_ms
  ARGV[5] per-user limit   ARGV[6] paused ("1"/"0")   ARGV[7] unit price   ARGV[8] event id
  ARGV[9] consumer group name of the order writer
  ARGV[10] units allocated to the item: the allocation the new stock reflects (see
           adjust_sale.lua), written with the stock
  ARGV[11] version of these terms (event_items.terms_version): the terms (window, limit,
           paused, price, event) are written only if newer than the hash's
           `terms_version`, so a warm-up that read Postgres before an operator's change
           (a pause, say) never undoes it once the change reached Redis
  ARGV[12] what to do with the live counters (stock and the buyers' counts):
           "0": only refresh the terms of a live sale; if its counters are missing write
                nothing and return loaded -1 (the caller then reads what a build needs,
                which for a big sale is a lot: the stream's orders and every buyer's count)
           "1": build them if they are missing and the item is not frozen (a sale never
                built before: nothing can have sold on it); if the item is frozen write
                nothing and return loaded -1 (a lost sale is rebuilt with "2")
           "2": rebuild: replace them (stock, buyers, released) in one step, in a new
                generation; only while the item is frozen, so that nothing sells on them
                meanwhile (app/flows/freshness.py); else write nothing, return loaded -2
  ARGV[13] the lowest epoch a new generation may have: Postgres's newest built one, so a
           rebuild's generation is newer than any an API process saw, even on a Redis
           whose clock is behind the one that built it (a failover)
  ARGV[14] held ("1" while the item's campaign is not approved: purchase.lua answers "no
           such item")   ARGV[15] the campaign's rules version ("" for none); both terms
  ARGV[16] gated ("1": the event is entered through a queue or a draw, and purchase.lua
           sells only to a buyer whose pass admits them to it); a term too
  ARGV[17] units members took (purchase.lua's member_units: how much of the reserve is
           gone), a live counter written with the stock
  ARGV[18] member price ("" for none)   ARGV[19] units reserved for members
  ARGV[20] when the reserve ends (ms); all three terms
  ARGV[21..] user id, units bought, user id, units bought, ... (counts from Postgres)

  Counters written start a new generation (app/store/generations.py): `epoch` is now in
  Redis ms, above ARGV[13] and any epoch the hash held (a rebuild over an old snapshot),
  `seq` 0, and `behind` cleared.

  Returns {loaded, stock, epoch}: loaded is 1 if the counters were written, 0 if they
  existed, -1 or -2 as above (nothing written; stock -1 if none); epoch is the hash's
  generation (0 if none).
]]
local mode = ARGV[12]
local has_counters = redis.call('HEXISTS', KEYS[1], 'stock') == 1
local frozen = redis.call('HGET', KEYS[1], 'frozen') == '1'
if mode == '2' and not frozen then
  return {-2, tonumber(redis.call('HGET', KEYS[1], 'stock') or '-1'),
    tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')}
end
if not has_counters and (mode == '0' or (mode == '1' and frozen)) then
  return {-1, -1, tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')}
end
local loaded = 0
if mode == '2' or not has_counters then
  local t = redis.call('TIME')
  local epoch = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local floor = math.max(tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0'), tonumber(ARGV[13]))
  if epoch <= floor then
    epoch = floor + 1
  end
  redis.call('HSET', KEYS[1], 'stock', ARGV[1], 'allocated', ARGV[10], 'epoch', epoch, 'seq', 0,
    'member_units', ARGV[17])
  redis.call('HDEL', KEYS[1], 'behind')
  redis.call('DEL', KEYS[2], KEYS[4])
  for i = 21, #ARGV, 2 do
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  end
  loaded = 1
end
local applied_version = tonumber(redis.call('HGET', KEYS[1], 'terms_version') or '-1')
if tonumber(ARGV[11]) > applied_version then
  redis.call('HSET', KEYS[1], 'terms_version', ARGV[11],
    'starts_ms', ARGV[2], 'ends_ms', ARGV[3], 'early_ms', ARGV[4],
    'limit', ARGV[5], 'paused', ARGV[6], 'price', ARGV[7], 'event', ARGV[8],
    'held', ARGV[14], 'rules', ARGV[15], 'gated', ARGV[16],
    'member_price', ARGV[18], 'reserved', ARGV[19], 'reserved_until_ms', ARGV[20])
end
local created = redis.pcall('XGROUP', 'CREATE', KEYS[3], ARGV[9], '0', 'MKSTREAM')
if type(created) == 'table' and created.err and not string.find(created.err, 'BUSYGROUP') then
  return redis.error_reply(created.err)
end
local state = redis.call('HMGET', KEYS[1], 'stock', 'epoch')
return {loaded, tonumber(state[1]), tonumber(state[2] or '0')}

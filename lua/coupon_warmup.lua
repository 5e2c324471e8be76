--[[
  coupon_warmup.lua: load a coupon template's claim state from Postgres into Redis.

  The terms (window, audience, limit, validity) are refreshed whenever counters exist or
  are written. The live counters (remaining and the claimers' counts) are written as
  ARGV[9] says, as warmup.lua writes an item's: so a warm-up never overwrites a claim
  crowd in progress, and a rebuild replaces them only while the coupon is frozen.

  KEYS[1] coupon    hash  (see claim.lua)
  KEYS[2] claimers  hash  user id -> coupons claimed
  KEYS[3] claims    stream; its consumer group is created if missing

  ARGV[1] remaining to start from (total minus claims stored or still in the stream)
  ARGV[2] starts_ms   ARGV[3] ends_ms   ARGV[4] audience   ARGV[5] per-user limit
  ARGV[6] valid_until_ms or ""   ARGV[7] valid_ms (valid days after claim) or ""
  ARGV[8] consumer group name of the order writer
  ARGV[9] "0" terms only, "1" build if missing and not frozen, "2" rebuild while frozen
          (as warmup.lua's ARGV[12])
  ARGV[10] the lowest epoch a new generation may have (as warmup.lua's ARGV[13])
  ARGV[11] held: "1" while the coupon's campaign is not approved (claim.lua answers "no
           such coupon"), "0" once it is. Approval is final, so a coupon once released
           stays so: a warm-up that read Postgres before the approval never holds it again
  ARGV[12..] user id, claims, user id, claims, ... (counts from Postgres)

  Counters written start a new generation: `epoch` (Redis ms, above ARGV[10] and the
  hash's), `seq` 0, `behind` cleared.

  Returns {loaded, remaining, epoch}: loaded is 1 if the counters were written, 0 if they
  existed, -1 if missing and not built, -2 if a rebuild found the coupon not frozen
  (nothing written then; remaining -1 if none).
]]
local mode = ARGV[9]
local has_counters = redis.call('HEXISTS', KEYS[1], 'remaining') == 1
local frozen = redis.call('HGET', KEYS[1], 'frozen') == '1'
if mode == '2' and not frozen then
  return {-2, tonumber(redis.call('HGET', KEYS[1], 'remaining') or '-1'),
    tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')}
end
if not has_counters and (mode == '0' or (mode == '1' and frozen)) then
  return {-1, -1, tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')}
end
local loaded = 0
if mode == '2' or not has_counters then
  local t = redis.call('TIME')
  local epoch = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local floor = math.max(tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0'), tonumber(ARGV[10]))
  if epoch <= floor then
    epoch = floor + 1
  end
  redis.call('HSET', KEYS[1], 'remaining', ARGV[1], 'epoch', epoch, 'seq', 0)
  redis.call('HDEL', KEYS[1], 'behind')
  redis.call('DEL', KEYS[2])
  for i = 12, #ARGV, 2 do
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  end
  loaded = 1
end
redis.call('HSET', KEYS[1],
  'starts_ms', ARGV[2], 'ends_ms', ARGV[3], 'audience', ARGV[4], 'limit', ARGV[5],
  'valid_until_ms', ARGV[6], 'valid_ms', ARGV[7])
if ARGV[11] == '0' or redis.call('HGET', KEYS[1], 'held') ~= '0' then
  redis.call('HSET', KEYS[1], 'held', ARGV[11])
end
local created = redis.pcall('XGROUP', 'CREATE', KEYS[3], ARGV[8], '0', 'MKSTREAM')
if type(created) == 'table' and created.err and not string.find(created.err, 'BUSYGROUP') then
  return redis.error_reply(created.err)
end
local state = redis.call('HMGET', KEYS[1], 'remaining', 'epoch')
return {loaded, tonumber(state[1]), tonumber(state[2] or '0')}

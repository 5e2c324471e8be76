--[[
  coupon_warmup.lua: load a coupon template's claim state from Postgres into Redis.

  The terms (window, audience, limit, validity) are always refreshed. The live counters
  (remaining and the claimers' counts) are written only when the coupon is not in Redis
  yet, so a warm-up never overwrites a claim crowd in progress.

  KEYS[1] coupon    hash  (see claim.lua)
  KEYS[2] claimers  hash  user id -> coupons claimed
  KEYS[3] claims    stream; its consumer group is created if missing

  ARGV[1] remaining to start from (total minus claims stored or still in the stream)
  ARGV[2] starts_ms   ARGV[3] ends_ms   ARGV[4] audience   ARGV[5] per-user limit
  ARGV[6] valid_until_ms or ""   ARGV[7] valid_ms (valid days after claim) or ""
  ARGV[8] consumer group name of the order writer
  ARGV[9..] user id, claims, user id, claims, ... (counts from Postgres)

  Returns {loaded, remaining}: loaded is 1 if the counters were written, 0 if they existed.
]]
local loaded = 0
if redis.call('HEXISTS', KEYS[1], 'remaining') == 0 then
  redis.call('HSET', KEYS[1], 'remaining', ARGV[1])
  redis.call('DEL', KEYS[2])
  for i = 9, #ARGV, 2 do
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  end
  loaded = 1
end
redis.call('HSET', KEYS[1],
  'starts_ms', ARGV[2], 'ends_ms', ARGV[3], 'audience', ARGV[4], 'limit', ARGV[5],
  'valid_until_ms', ARGV[6], 'valid_ms', ARGV[7])
local created = redis.pcall('XGROUP', 'CREATE', KEYS[3], ARGV[8], '0', 'MKSTREAM')
if type(created) == 'table' and created.err and not string.find(created.err, 'BUSYGROUP') then
  return redis.error_reply(created.err)
end
return {loaded, tonumber(redis.call('HGET', KEYS[1], 'remaining'))}

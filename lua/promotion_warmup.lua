--[[
  promotion_warmup.lua: load a promotion's terms and, as ARGV[6] says, its daily counters
  from Postgres into Redis (as coupon_warmup.lua does a coupon's): a warm-up never
  overwrites a crowd in progress, and a rebuild replaces the counters only while the
  promotion is frozen.

  KEYS[1] promotion hash (see promotion.lua)
  KEYS[2..] for each day of ARGV: taken, users, holders (see promotion.lua); KEYS[k],
          KEYS[k + 1], KEYS[k + 2] below, for k = 2, 5, 8, ...

  ARGV[1] starts_ms  ARGV[2] ends_ms  ARGV[3] daily_limit  ARGV[4] per_user_limit
  ARGV[5] held: "1" while the promotion's campaign is not approved, else "0"
  ARGV[6] "0" terms only, "1" build if missing and not frozen, "2" rebuild while frozen
          (as warmup.lua's ARGV[12])
  ARGV[7] the lowest epoch a new generation may have (as warmup.lua's ARGV[13])
  ARGV[8] the number of days that follow; for each: when its keys expire (Unix ms), the
          number n of orders holding a place on it, then n pairs order id, user id

  Counters written start a new generation: `epoch` (Redis ms, above ARGV[7] and the
  hash's), `seq` 0, `behind` cleared; each day given is replaced by its holders.

  Returns {loaded, 0, epoch}: loaded is 1 if the counters were written, 0 if they existed,
  -1 if missing and not built, -2 if a rebuild found the promotion not frozen (nothing
  written then).
]]
local mode = ARGV[6]
local has_counters = redis.call('HEXISTS', KEYS[1], 'epoch') == 1
local frozen = redis.call('HGET', KEYS[1], 'frozen') == '1'
if mode == '2' and not frozen then
  return {-2, 0, tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')}
end
if not has_counters and (mode == '0' or (mode == '1' and frozen)) then
  return {-1, 0, 0}
end
local loaded = 0
if mode == '2' or not has_counters then
  local t = redis.call('TIME')
  local epoch = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local floor = math.max(tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0'), tonumber(ARGV[7]))
  if epoch <= floor then
    epoch = floor + 1
  end
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
  redis.call('HDEL', KEYS[1], 'behind')
  -- Day d's keys are KEYS[k], KEYS[k + 1], KEYS[k + 2] (taken, users, holders).
  local at = 9
  for k = 2, 2 + 3 * (tonumber(ARGV[8]) - 1), 3 do
    local expire_at, n = ARGV[at], tonumber(ARGV[at + 1])
    redis.call('DEL', KEYS[k], KEYS[k + 1], KEYS[k + 2])
    at = at + 2
    if n > 0 then
      for i = 0, n - 1 do
        local order_id, user = ARGV[at + 2 * i], ARGV[at + 2 * i + 1]
        redis.call('HSET', KEYS[k + 2], order_id, user)
        redis.call('HINCRBY', KEYS[k + 1], user, 1)
      end
      redis.call('SET', KEYS[k], n)
      redis.call('PEXPIREAT', KEYS[k], expire_at)
      redis.call('PEXPIREAT', KEYS[k + 1], expire_at)
      redis.call('PEXPIREAT', KEYS[k + 2], expire_at)
    end
    at = at + 2 * n
  end
  loaded = 1
end
redis.call('HSET', KEYS[1], 'starts_ms', ARGV[1], 'ends_ms', ARGV[2],
  'daily_limit', ARGV[3], 'per_user_limit', ARGV[4], 'held', ARGV[5])
return {loaded, 0, tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')}

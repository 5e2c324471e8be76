--[[
  lottery_load.lua: load a lottery from Postgres into Redis: its terms and, as ARGV[6]
  says, its counters (each prize's units left, each user's draws of the recent days) and
  the recent days' check-ins (as coupon_warmup.lua does a coupon's counters). The counts
  given are Postgres's and those of the draws still waiting for the writer (the `queued`
  hash, read first), so a lottery rebuilt from them gives no unit twice.

  KEYS[1] lottery   hash (see lottery_draw.lua)
  KEYS[2] stock     hash (see lottery_draw.lua)
  KEYS[3] draws     stream (see lottery_draw.lua); its consumer group is created if missing
  KEYS[4], KEYS[5], ...: for each day of ARGV[11..]: its drawn hash, then its checked hash

  ARGV[1] starts_ms  ARGV[2] ends_ms  ARGV[3] per_day  ARGV[4] no_win weight
  ARGV[5] prizes: "id:weight,id:weight,..."
  ARGV[6] "0" terms only, "1" build if missing and not frozen, "2" rebuild while frozen
          (as warmup.lua's ARGV[12])
  ARGV[7] the lowest epoch a new generation may have (as warmup.lua's ARGV[13])
  ARGV[8] consumer group name of the order writer
  ARGV[9] the number n of prizes that follow: n pairs prize id, units left
  then the number d of days; for each day (its keys in KEYS, in the same order): when its
  keys expire (Unix ms), the number m of users with draws, m pairs user id, draws, the
  number k of users checked in, k user ids

  Counters written start a new generation: `epoch` (Redis ms, above ARGV[7] and the
  hash's), `seq` 0, `behind` cleared; units left and draws are replaced by those given.
  Check-ins are added whenever the counters exist or are written (a check-in also marks
  its lottery itself: never removed here).

  Returns {loaded, 0, epoch}: loaded is 1 if the counters were written, 0 if they existed,
  -1 if missing and not built, -2 if a rebuild found the lottery not frozen (nothing
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
local write = mode == '2' or not has_counters
local loaded = 0
local at = 10
local n = tonumber(ARGV[9])
if write then
  redis.call('DEL', KEYS[2])
  for i = 0, n - 1 do
    redis.call('HSET', KEYS[2], ARGV[at + 2 * i], ARGV[at + 2 * i + 1])
  end
end
at = at + 2 * n
local days = tonumber(ARGV[at])
at = at + 1
for d = 0, days - 1 do
  local expires = ARGV[at]
  local m = tonumber(ARGV[at + 1])
  at = at + 2
  if write then
    redis.call('DEL', KEYS[4 + 2 * d])
    for i = 0, m - 1 do
      redis.call('HSET', KEYS[4 + 2 * d], ARGV[at + 2 * i], ARGV[at + 2 * i + 1])
    end
    if m > 0 then
      redis.call('PEXPIREAT', KEYS[4 + 2 * d], expires)
    end
  end
  at = at + 2 * m
  local k = tonumber(ARGV[at])
  at = at + 1
  for i = 0, k - 1 do
    redis.call('HSET', KEYS[5 + 2 * d], ARGV[at + i], '1')
  end
  if k > 0 then
    redis.call('PEXPIREAT', KEYS[5 + 2 * d], expires)
  end
  at = at + k
end
if write then
  local t = redis.call('TIME')
  local epoch = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local floor = math.max(tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0'), tonumber(ARGV[7]))
  if epoch <= floor then
    epoch = floor + 1
  end
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
  redis.call('HDEL', KEYS[1], 'behind')
  loaded = 1
end
redis.call('HSET', KEYS[1], 'starts_ms', ARGV[1], 'ends_ms', ARGV[2], 'per_day', ARGV[3],
  'no_win', ARGV[4], 'prizes', ARGV[5])
local created = redis.pcall('XGROUP', 'CREATE', KEYS[3], ARGV[8], '0', 'MKSTREAM')
if type(created) == 'table' and created.err and not string.find(created.err, 'BUSYGROUP') then
  return redis.error_reply(created.err)
end
return {loaded, 0, tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')}

--[[
  queue_load.lua: load an event's waiting room from Postgres into Redis: its terms and, as
  ARGV[5] says, its places and admissions (as promotion_warmup.lua does a promotion's
  counters). The places given are Postgres's and those still waiting for the writer (the
  `queued` hash, read first), each with the score it joined with, and every admission is
  stored before its pass is handed out, so a queue rebuilt from them keeps the same order
  and admits nobody twice.

  KEYS[1] queue     hash (see queue.lua)
  KEYS[2] places    zset (see queue.lua)
  KEYS[3] admitted  hash (see queue.lua)
  KEYS[4] joins     stream (see queue.lua); its consumer group is created if missing

  ARGV[1] starts_ms  ARGV[2] ends_ms  ARGV[3] admit_per_second
  ARGV[4] "1" closed (every item sold out), "0" open, "" leave as it is
  ARGV[5] "0" terms only, "1" build if missing and not frozen, "2" rebuild while frozen
          (as warmup.lua's ARGV[12])
  ARGV[6] the lowest epoch a new generation may have (as warmup.lua's ARGV[13])
  ARGV[7] when the queue's keys expire (Unix ms: a while after the end; queue.lua keeps
          the keys it writes to the same moment)
  ARGV[8] pass_ms: how long a pass is valid  ARGV[9] items: the event's item ids,
          comma-separated
  ARGV[10] opens_ms: joins from then  ARGV[11] pow_bits  ARGV[12] hidden: "1" while the
          event is not shown (its campaign not approved), "0" once it is
  ARGV[13] consumer group name of the order writer
  ARGV[14] the number n of places that follow: n pairs user id, score
  then the number m of admissions: m pairs user id, admitted ms

  Places and admissions written start a new generation: `epoch` (Redis ms, above ARGV[6]
  and the hash's), `seq` 0, `behind` cleared; the places and admissions are replaced by
  those given, and `arrivals` continues after the highest arrival among them.

  Returns {loaded, 0, epoch}: loaded is 1 if the places were written, 0 if they existed,
  -1 if missing and not built, -2 if a rebuild found the queue not frozen (nothing
  written then).
]]
local mode = ARGV[5]
local has_places = redis.call('HEXISTS', KEYS[1], 'epoch') == 1
local frozen = redis.call('HGET', KEYS[1], 'frozen') == '1'
if mode == '2' and not frozen then
  return {-2, 0, tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')}
end
if not has_places and (mode == '0' or (mode == '1' and frozen)) then
  return {-1, 0, 0}
end
local loaded = 0
if mode == '2' or not has_places then
  local t = redis.call('TIME')
  local epoch = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local floor = math.max(tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0'), tonumber(ARGV[6]))
  if epoch <= floor then
    epoch = floor + 1
  end
  redis.call('DEL', KEYS[2], KEYS[3])
  local at = 15
  local n = tonumber(ARGV[14])
  for i = 0, n - 1 do
    redis.call('ZADD', KEYS[2], ARGV[at + 2 * i + 1], ARGV[at + 2 * i])
  end
  local arrivals = 0
  local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
  if last[2] and tonumber(last[2]) > 4503599627370496 then
    arrivals = tonumber(last[2]) - 4503599627370496
  end
  redis.call('HSET', KEYS[1], 'arrivals', string.format('%.0f', arrivals))
  at = at + 2 * n
  local m = tonumber(ARGV[at])
  at = at + 1
  for i = 0, m - 1 do
    redis.call('HSET', KEYS[3], ARGV[at + 2 * i], ARGV[at + 2 * i + 1])
  end
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
  redis.call('HDEL', KEYS[1], 'behind')
  loaded = 1
end
redis.call('HSET', KEYS[1], 'starts_ms', ARGV[1], 'ends_ms', ARGV[2], 'admit_per_second', ARGV[3],
  'expires_ms', ARGV[7], 'pass_ms', ARGV[8], 'items', ARGV[9], 'opens_ms', ARGV[10],
  'pow_bits', ARGV[11], 'hidden', ARGV[12])
redis.call('PEXPIREAT', KEYS[1], ARGV[7])
redis.call('PEXPIREAT', KEYS[2], ARGV[7])
redis.call('PEXPIREAT', KEYS[3], ARGV[7])
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'closed', ARGV[4])
end
local created = redis.pcall('XGROUP', 'CREATE', KEYS[4], ARGV[13], '0', 'MKSTREAM')
if type(created) == 'table' and created.err and not string.find(created.err, 'BUSYGROUP') then
  return redis.error_reply(created.err)
end
return {loaded, 0, tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')}

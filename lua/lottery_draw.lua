--[[
  lottery_draw.lua: one lottery draw, decided and recorded atomically: the user's draws
  of the day counted, a prize picked by weight with the random number the caller sends,
  its stock taken, and the draw (won or not) appended to the draws stream in the same
  call, so a win Redis decided can never be lost before the order writer stores it.

  KEYS[1] lottery   hash  starts_ms, ends_ms, per_day (draws per user per day), no_win
                          (the weight of drawing nothing), prizes ("id:weight,id:weight,..."
                          in the lottery's order), epoch, seq, frozen, behind
  KEYS[2] stock     hash  prize id -> units left
  KEYS[3] drawn     hash  user id -> draws made on the day ARGV[3] (expires ARGV[7])
  KEYS[4] checked   hash  user id -> "1" if the user checked in that day: one more draw
  KEYS[5] draws     stream of draws (the order writer's input)
  KEYS[6] queued    hash  draw id -> "prize id|day|drawn ms|user id" (prize id "" for no
                          win), until the draw is in Postgres (user id last: any character)

  ARGV[1] user id
  ARGV[2] draw id to use
  ARGV[3] the day (ISO date in the business timezone, computed by the caller)
  ARGV[4] a random integer in [0, 2^53) from the caller's CSPRNG (Redis < 7 seeds
          math.random the same on every call: never used here)
  ARGV[5] epoch  ARGV[6] seq: the newest generation of this lottery's counters the calling
          process has seen drawn (app/store/generations.py), "0" "0" if none; Redis
          behind it came back from an older snapshot: the lottery is frozen (answer 6)
  ARGV[7] when KEYS[3] expires (Unix ms: a while after the day)
  ARGV[8] lottery id

  The pick: r = ARGV[4] mod (no_win + every prize's weight); the prize whose band holds r
  is won if it has a unit left. A prize out of stock keeps its band and a draw landing in
  it wins nothing: a prize's chance never grows because another ran out.

  Returns {outcome, prize id (0: none), epoch, seq} where outcome is
    0 won             one unit of the prize taken; the draw appended to KEYS[5]
    1 no win          the draw counted and appended to KEYS[5], nothing taken
    2 no such lottery KEYS[1] holds no counters
    3 not started     before starts_ms
    4 ended           at or after ends_ms
    5 limit exceeded  the user made per_day draws (one more if checked in) that day
    6 recovering      the lottery is frozen (Redis lost or rolled back its counters; see
                      app/flows/freshness.py), or is found behind ARGV[5..6] and frozen now

  The checks run in this order: 6 (frozen), 2, 6 (behind), 3, 4, 5. The clock is Redis's
  own (TIME).
]]
local c = redis.call('HMGET', KEYS[1],
  'starts_ms', 'ends_ms', 'per_day', 'no_win', 'prizes', 'epoch', 'seq', 'frozen')
if c[8] == '1' then
  return {6, 0, 0, 0}
end
if c[6] == false then
  return {2, 0, 0, 0}
end
local epoch, seq = tonumber(c[6]), tonumber(c[7] or '0')
local seen_epoch, seen_seq = tonumber(ARGV[5]), tonumber(ARGV[6])
if epoch < seen_epoch or (epoch == seen_epoch and seq < seen_seq) then
  redis.call('HSET', KEYS[1], 'frozen', '1', 'behind', '1')
  return {6, 0, 0, 0}
end

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now_ms < tonumber(c[1]) then
  return {3, 0, epoch, seq}
end
if now_ms >= tonumber(c[2]) then
  return {4, 0, epoch, seq}
end

local user = ARGV[1]
local allowed = tonumber(c[3])
if redis.call('HEXISTS', KEYS[4], user) == 1 then
  allowed = allowed + 1
end
local made = tonumber(redis.call('HGET', KEYS[3], user) or '0')
if made >= allowed then
  return {5, 0, epoch, seq}
end

local total = tonumber(c[4])
local bands = {}
for id, weight in string.gmatch(c[5], '(%d+):(%d+)') do
  bands[#bands + 1] = {id, tonumber(weight)}
  total = total + tonumber(weight)
end
local won = ''
if total > 0 then
  local r = math.fmod(tonumber(ARGV[4]), total)
  for _, band in ipairs(bands) do
    if r < band[2] then
      if tonumber(redis.call('HGET', KEYS[2], band[1]) or '0') > 0 then
        redis.call('HINCRBY', KEYS[2], band[1], -1)
        won = band[1]
      end
      break
    end
    r = r - band[2]
  end
end

redis.call('HINCRBY', KEYS[3], user, 1)
redis.call('PEXPIREAT', KEYS[3], ARGV[7])
seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local draw_id = ARGV[2]
redis.call('HSET', KEYS[6], draw_id, won .. '|' .. ARGV[3] .. '|' .. now_ms .. '|' .. user)
redis.call('XADD', KEYS[5], '*',
  'draw_id', draw_id, 'lottery_id', ARGV[8], 'user_id', user, 'day', ARGV[3],
  'prize_id', won, 'drawn_ms', now_ms)
if won == '' then
  return {1, 0, epoch, seq}
end
return {0, tonumber(won), epoch, seq}

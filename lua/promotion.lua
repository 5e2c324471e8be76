--[[
  promotion.lua: one place among a promotion's first N regular orders of a day (满减 for
  the first `daily_limit` orders), decided and taken atomically; or, to quote, decided
  without taking it.

  KEYS[1] promotion hash  starts_ms, ends_ms, daily_limit, per_user_limit, held ("1"
                          while its campaign is not approved), frozen, epoch, seq, behind:
                          as a coupon's hash (claim.lua)
  KEYS[2] taken    string places taken on the day
  KEYS[3] users    hash   user id -> places the user holds on the day
  KEYS[4] holders  hash   order id -> user id: the orders holding a place on the day (a
                          give-back happens once: promotion_release.lua)

  ARGV[1] user id
  ARGV[2] order id the place is for
  ARGV[3] when the day's keys expire (Unix ms: the day's end in the campaign's timezone,
          plus a day for late give-backs)
  ARGV[4] epoch  ARGV[5] seq: the newest generation of the promotion's counters the
          calling process has seen taken (app/store/generations.py), "0" "0" if none;
          Redis behind it came back from an older snapshot: frozen (answer 9)
  ARGV[6] "1" take the place, "0" only say whether it would be taken (a quote)

  Returns {outcome, taken, epoch, seq} where outcome is
    0 taken            (ARGV[6] "0": would be taken; nothing written)
    1 replayed         the order holds a place already: nothing taken again
    2 no such promotion  KEYS[1] holds no counters
    3 not started      before starts_ms (Redis's clock, TIME)
    4 ended            at or after ends_ms
    5 held             its campaign is not approved: the promotion does not exist for
                       shoppers
    6 limit exceeded   the user holds per_user_limit places on the day
    7 exhausted        daily_limit places are taken on the day
    9 recovering       frozen (Redis lost or rolled back its counters; see
                       app/flows/freshness.py), or found behind ARGV[4..5] and frozen now

  The checks run in this order: 9, 2, 9 (behind), 5, 3, 4, 1, 6, 7.
]]
local p = redis.call('HMGET', KEYS[1],
  'starts_ms', 'ends_ms', 'daily_limit', 'per_user_limit', 'held', 'frozen', 'epoch', 'seq')
local taken = tonumber(redis.call('GET', KEYS[2]) or '0')
if p[6] == '1' then
  return {9, taken, 0, 0}
end
if p[7] == false or p[3] == false then
  return {2, taken, 0, 0}
end
local epoch, seq = tonumber(p[7]), tonumber(p[8] or '0')
local seen_epoch, seen_seq = tonumber(ARGV[4]), tonumber(ARGV[5])
if epoch < seen_epoch or (epoch == seen_epoch and seq < seen_seq) then
  redis.call('HSET', KEYS[1], 'frozen', '1', 'behind', '1')
  return {9, taken, epoch, seq}
end
if p[5] == '1' then
  return {5, taken, epoch, seq}
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now_ms < tonumber(p[1]) then
  return {3, taken, epoch, seq}
end
if now_ms >= tonumber(p[2]) then
  return {4, taken, epoch, seq}
end
local order_id, user = ARGV[2], ARGV[1]
if redis.call('HEXISTS', KEYS[4], order_id) == 1 then
  return {1, taken, epoch, seq}
end
if tonumber(redis.call('HGET', KEYS[3], user) or '0') >= tonumber(p[4]) then
  return {6, taken, epoch, seq}
end
if taken >= tonumber(p[3]) then
  return {7, taken, epoch, seq}
end
if ARGV[6] ~= '1' then
  return {0, taken, epoch, seq}
end
taken = redis.call('INCR', KEYS[2])
redis.call('HINCRBY', KEYS[3], user, 1)
redis.call('HSET', KEYS[4], order_id, user)
redis.call('PEXPIREAT', KEYS[2], ARGV[3])
redis.call('PEXPIREAT', KEYS[3], ARGV[3])
redis.call('PEXPIREAT', KEYS[4], ARGV[3])
seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
return {0, taken, epoch, seq}

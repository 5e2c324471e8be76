--[[
  promotion_release.lua: a cancelled (or timed-out) order gives its promotion place back
  to the day it took it on, at most once: the order leaves the day's holders, and only an
  order found there gives anything back. A frozen promotion is given back to as well: its
  rebuild replaces the counters anyway, from Postgres, where the order is cancelled.

  KEYS[1] taken    string places taken on the day (see promotion.lua)
  KEYS[2] users    hash   user id -> places held on the day
  KEYS[3] holders  hash   order id -> user id

  ARGV[1] order id

  Returns {outcome, taken}: outcome 1 given back, 0 the order held no place (given back
  before, never taken, or the day's keys have expired).
]]
local user = redis.call('HGET', KEYS[3], ARGV[1])
if not user then
  return {0, tonumber(redis.call('GET', KEYS[1]) or '0')}
end
redis.call('HDEL', KEYS[3], ARGV[1])
local taken = tonumber(redis.call('GET', KEYS[1]) or '0')
if taken > 0 then
  taken = redis.call('DECR', KEYS[1])
end
if redis.call('HINCRBY', KEYS[2], user, -1) <= 0 then
  redis.call('HDEL', KEYS[2], user)
end
return {1, taken}

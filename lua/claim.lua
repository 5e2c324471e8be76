--[[
  claim.lua: one coupon claim, decided and recorded atomically (the coupon's own flash
  sale: thousands claim the first 1,000 at 10:00).

  KEYS[1] coupon    hash  remaining, starts_ms, ends_ms, audience, limit,
                          valid_until_ms ("" if relative), valid_ms (relative, "" if fixed),
                          frozen, epoch, seq, behind: as an item's sale hash (purchase.lua),
                          held ("1" while its campaign is not approved: no such coupon)
  KEYS[2] claimers  hash  user id -> coupons claimed
  KEYS[3] idem      string "claim id|valid until ms" for (user, Idempotency-Key); any key
                    of the coupon's slot when no Idempotency-Key was sent
  KEYS[4] claims    stream of claims (the order writer's input, like an item's orders)
  KEYS[5] queued    hash  claim id -> "valid until ms|claimed ms|user id", until the claim
                    is in Postgres (user id last: it may hold any character)

  ARGV[1] user id
  ARGV[2] "1" if the user is a member, else "0"
  ARGV[3] "1" if the user has no paid order yet (a new user), "0" if they have one, ""
          if not looked up (the caller asks Postgres only when the script says so: 8)
  ARGV[4] claim id to use if claimed
  ARGV[5] Idempotency-Key, or "" for none
  ARGV[6] idempotency record TTL in seconds
  ARGV[7] coupon id
  ARGV[8] epoch  ARGV[9] seq: the newest generation of this coupon's counters the calling
          process has seen claimed (app/store/generations.py), "0" "0" if none; Redis
          behind it came back from an older snapshot: the coupon is frozen (answer 9)

  Returns {outcome, remaining, claim id or "", valid until ms or ""} where outcome is
    0 claimed            one coupon taken, the claim appended to KEYS[4]; the reply
                         carries the counters' epoch and the claim's seq too
    1 replayed           same Idempotency-Key seen: the first claim, nothing taken
    2 no such coupon     KEYS[1] does not exist, or its campaign is not approved (held)
    3 not started        before the claim window
    4 ended              after the claim window, or past a fixed valid_until (a coupon
                         claimed now would arrive expired)
    5 audience mismatch  the coupon is for new users or members, and this user is not
    6 limit exceeded     the user holds per_user_limit claims already
    7 exhausted          none left
    8 ask who            a new-users coupon and ARGV[3] is "": call again with "1" or "0"
    9 recovering         the coupon is frozen (Redis lost or rolled back its counters; see
                         app/flows/freshness.py), or is found behind ARGV[8..9] and frozen
                         now: nothing taken

  The checks run in this order: 2 (held), 9, 2, 9 (behind), 1, 3, 4, 8, 5, 6, 7. The clock is
  Redis's own (TIME).
]]
local c = redis.call('HMGET', KEYS[1],
  'remaining', 'starts_ms', 'ends_ms', 'audience', 'limit', 'valid_until_ms', 'valid_ms',
  'frozen', 'epoch', 'seq', 'held')
local remaining = tonumber(c[1])
if c[11] == '1' then
  return {2, 0, '', ''}
end
if c[8] == '1' then
  return {9, remaining or 0, '', ''}
end
if remaining == nil then
  return {2, 0, '', ''}
end
local epoch, seq = tonumber(c[9] or '0'), tonumber(c[10] or '0')
local seen_epoch, seen_seq = tonumber(ARGV[8]), tonumber(ARGV[9])
if epoch < seen_epoch or (epoch == seen_epoch and seq < seen_seq) then
  redis.call('HSET', KEYS[1], 'frozen', '1', 'behind', '1')
  return {9, remaining, '', ''}
end

local idem_key = ARGV[5]
if idem_key ~= '' then
  local first = redis.call('GET', KEYS[3])
  if first then
    local sep = string.find(first, '|', 1, true)
    return {1, remaining, string.sub(first, 1, sep - 1), string.sub(first, sep + 1)}
  end
end

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now_ms < tonumber(c[2]) then
  return {3, remaining, '', ''}
end
if now_ms >= tonumber(c[3]) or (c[6] ~= '' and now_ms >= tonumber(c[6])) then
  return {4, remaining, '', ''}
end
if c[4] == 'new_users' and ARGV[3] == '' then
  return {8, remaining, '', ''}
end
if (c[4] == 'new_users' and ARGV[3] ~= '1') or (c[4] == 'members' and ARGV[2] ~= '1') then
  return {5, remaining, '', ''}
end

local user = ARGV[1]
local held = tonumber(redis.call('HGET', KEYS[2], user) or '0')
if held >= tonumber(c[5]) then
  return {6, remaining, '', ''}
end
if remaining < 1 then
  return {7, remaining, '', ''}
end

local valid_until_ms
if c[6] ~= '' then
  valid_until_ms = c[6]
else
  valid_until_ms = tostring(now_ms + tonumber(c[7]))
end
local claim_id = ARGV[4]
remaining = redis.call('HINCRBY', KEYS[1], 'remaining', -1)
seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HINCRBY', KEYS[2], user, 1)
if idem_key ~= '' then
  redis.call('SET', KEYS[3], claim_id .. '|' .. valid_until_ms, 'EX', tonumber(ARGV[6]))
end
redis.call('HSET', KEYS[5], claim_id, valid_until_ms .. '|' .. now_ms .. '|' .. user)
redis.call('XADD', KEYS[4], '*',
  'claim_id', claim_id, 'coupon_id', ARGV[7], 'user_id', user, 'claimed_ms', now_ms,
  'valid_until_ms', valid_until_ms, 'idempotency_key', idem_key)
return {0, remaining, claim_id, valid_until_ms, epoch, seq}

--[[
  queue.lua: a shopper's place in an event's waiting room, joined (ARGV[2] a score) or
  only looked at, and their state decided in the same call: waiting (with the rank),
  admitted (the first admission recorded once, so the pass window never moves), or
  closed. Admission needs no writer: from starts_ms the queue admits admit_per_second
  places a second in score order, so the first floor((now - starts_ms) * rate / 1000)
  ranks are admitted (now: Redis's clock, TIME). One ZRANK per call: O(log n).

  A new place is appended to the joins stream in the same call (as purchase.lua appends
  an order): the order writer stores it in Postgres, and until then the `queued` hash
  remembers it for a rebuild.

  KEYS[1] queue     hash  starts_ms, ends_ms, admit_per_second, closed ("1": every item
                          sold out), expires_ms (when the queue's keys expire: a place or
                          admission written keeps to it), pass_ms (how long a pass is
                          valid), items (the event's item ids, comma-separated: for the
                          caller's sold-out check), opens_ms (joins from then), pow_bits
                          (the proof of work a join needs), hidden ("1": the event is not
                          shown, its campaign not approved), arrivals (places numbered
                          after the start so far), epoch, seq, frozen, behind (as a
                          promotion's hash, promotion.lua)
  KEYS[2] places    zset  user id -> score: joined before the start, a secret random number
                          below 2^52 drawn by the API (uniformly random order at the
                          start); after it, 2^52 + the arrival number (arrival order)
  KEYS[3] admitted  hash  user id -> when first admitted (Unix ms, Redis's clock)
  KEYS[4] joins     stream of new places (the order writer's input): event_id, user_id,
                          score, joined_ms
  KEYS[5] queued    hash  user id -> "score|joined ms", until the place is in Postgres

  ARGV[1] user id
  ARGV[2] a secret random score below 2^52 to join with (used if Redis's clock says the
          start has not come), or "" to only look
  ARGV[3] epoch  ARGV[4] seq: the newest generation of the queue the calling process has
          seen (app/store/generations.py), "0" "0" if none; Redis behind it came back from
          an older snapshot: frozen (answer 9)
  ARGV[5] the leading zero bits of the join's proof of work (-1: none sent)
  ARGV[6] the event id (for the stream entry)
  ARGV[7] "1": ARGV[2] is the score Postgres stored for the user's place, which Redis lost:
          put back as it is (no terms checked, nothing appended), else "0"

  Returns {outcome, rank, admitted_count, admitted_ms, epoch, seq, pass_ms,
  admit_per_second, items, pow_bits, score, joined_ms} (pass_ms to pow_bits from KEYS[1],
  so a poll needs no other read; "0" "0" "" "0" with outcomes 6 and 9; score and joined_ms
  with outcome 2: the place's score and, while it waits for the writer, its join time,
  else "") where outcome is
    0 waiting          rank: places ahead (ZRANK); -1 before starts_ms (the order is
                       drawn at the start: unknown until then)
    1 admitted         admitted_ms: the first admission, recorded before
    2 admitted now     recorded by this call (admitted_ms = now)
    3 closed           every item sold out (`closed`): nobody still waiting gets in
    4 ended            at or after ends_ms: closed for everyone still waiting
    5 not in queue     the user holds no place (ARGV[2] "")
    6 no such queue    KEYS[1] holds no queue
    8 not open         a join while the event is hidden or before opens_ms: nothing
                       written (the caller asks Postgres why)
    9 recovering       frozen (Redis lost or rolled back the queue; see
                       app/flows/freshness.py), or found behind ARGV[3..4] and frozen now
   10 challenge        a join whose proof of work has fewer than pow_bits zero bits:
                       nothing written

  The checks run in this order: 9, 6, 9 (behind), 8, 10 (a join, not a restore), 1, 4, 3,
  (join or restore), 5, 0 (before the start), 2, 0. A join adds the place only if the user
  holds none (the first score stays).
]]
local q = redis.call('HMGET', KEYS[1],
  'starts_ms', 'ends_ms', 'admit_per_second', 'closed', 'frozen', 'epoch', 'seq', 'expires_ms',
  'pass_ms', 'items', 'opens_ms', 'pow_bits', 'hidden')
if q[5] == '1' then
  return {9, -1, 0, 0, 0, 0, 0, 0, '', 0, '', ''}
end
if q[6] == false or q[1] == false then
  return {6, -1, 0, 0, 0, 0, 0, 0, '', 0, '', ''}
end
local pow_bits = tonumber(q[12] or '0')
local terms = {q[9] or '0', q[3], q[10] or '', pow_bits}
local epoch, seq = tonumber(q[6]), tonumber(q[7] or '0')
local seen_epoch, seen_seq = tonumber(ARGV[3]), tonumber(ARGV[4])
local function reply(outcome, rank, count, admitted_ms)
  return {outcome, rank, count, admitted_ms, epoch, seq, terms[1], terms[2], terms[3], terms[4],
    '', ''}
end
if epoch < seen_epoch or (epoch == seen_epoch and seq < seen_seq) then
  redis.call('HSET', KEYS[1], 'frozen', '1', 'behind', '1')
  return reply(9, -1, 0, 0)
end
local user = ARGV[1]
local joining = ARGV[2] ~= ''
local restoring = ARGV[7] == '1'
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if joining and not restoring then
  if q[13] == '1' or now_ms < tonumber(q[11] or '0') then
    return reply(8, -1, 0, 0)
  end
  if pow_bits > 0 and tonumber(ARGV[5]) < pow_bits then
    return reply(10, -1, 0, 0)
  end
end
local admitted_ms = redis.call('HGET', KEYS[3], user)
if admitted_ms then
  return reply(1, -1, 0, tonumber(admitted_ms))
end
if now_ms >= tonumber(q[2]) then
  return reply(4, -1, 0, 0)
end
if q[4] == '1' then
  return reply(3, -1, 0, 0)
end
local starts_ms = tonumber(q[1])
if restoring then
  redis.call('ZADD', KEYS[2], 'NX', ARGV[2], user)
elseif joining and redis.call('ZSCORE', KEYS[2], user) == false then
  local score = ARGV[2]
  if now_ms >= starts_ms then
    -- After the start: in arrival order, behind everyone shuffled at the start. Formatted
    -- with %.0f: Lua's tostring keeps 14 digits, and scores need 16.
    score = string.format('%.0f', 4503599627370496 + redis.call('HINCRBY', KEYS[1], 'arrivals', 1))
  end
  redis.call('ZADD', KEYS[2], score, user)
  redis.call('HSET', KEYS[5], user, score .. '|' .. now_ms)
  redis.call('XADD', KEYS[4], '*',
    'event_id', ARGV[6], 'user_id', user, 'score', score, 'joined_ms', now_ms)
  seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
  if q[8] then
    redis.call('PEXPIREAT', KEYS[2], q[8])
  end
end
local rank = redis.call('ZRANK', KEYS[2], user)
if rank == false then
  return reply(5, -1, 0, 0)
end
if now_ms < starts_ms then
  return reply(0, -1, 0, 0)
end
local admitted_count = math.floor((now_ms - starts_ms) * tonumber(q[3]) / 1000)
if rank < admitted_count then
  redis.call('HSET', KEYS[3], user, now_ms)
  if q[8] then
    redis.call('PEXPIREAT', KEYS[3], q[8])
  end
  seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
  local answer = reply(2, rank, admitted_count, now_ms)
  answer[11] = redis.call('ZSCORE', KEYS[2], user)
  local queued = redis.call('HGET', KEYS[5], user)
  if queued then
    answer[12] = string.sub(queued, string.find(queued, '|', 1, true) + 1)
  end
  return answer
end
return reply(0, rank, admitted_count, 0)

--[[
  queue.lua: a shopper's place in an event's waiting room, joined (ARGV[2] a score) or
  only looked at, and their state decided in the same call: waiting (with the rank),
  admitted (the first admission recorded once, so the pass window never moves), or
  closed. Admission needs no writer: from starts_ms the queue admits admit_per_second
  places a second in score order, so the first floor((now - starts_ms) * rate / 1000)
  ranks are admitted (now: Redis's clock, TIME). One ZRANK per call: O(log n).

  KEYS[1] queue     hash  starts_ms, ends_ms, admit_per_second, closed ("1": every item
                          sold out), expires_ms (when the queue's keys expire: a place or
                          admission written keeps to it), pass_ms (how long a pass is
                          valid), items (the event's item ids, comma-separated: for the
                          caller's sold-out check), epoch, seq, frozen, behind (as a
                          promotion's hash, promotion.lua)
  KEYS[2] places    zset  user id -> score: joined before the start, a secret random number
                          below 2^52 drawn by the API (uniformly random order at the
                          start); after it, 2^52 + the arrival number (arrival order).
                          Postgres (queue_places) holds the same scores.
  KEYS[3] admitted  hash  user id -> when first admitted (Unix ms, Redis's clock)

  ARGV[1] user id
  ARGV[2] the score to join with (the one Postgres stored), or "" to only look
  ARGV[3] epoch  ARGV[4] seq: the newest generation of the queue the calling process has
          seen (app/store/generations.py), "0" "0" if none; Redis behind it came back from
          an older snapshot: frozen (answer 9)
  ARGV[5] "1" if ARGV[2] is a random score just drawn for a new place because the API's
          clock said the start had not come: by Redis's clock (the one admission runs on)
          it may have, and then the place is not shuffled in (answer 7), else "0"

  Returns {outcome, rank, admitted_count, admitted_ms, epoch, seq, pass_ms,
  admit_per_second, items} (the last three from KEYS[1], so a poll needs no other read;
  "0" "0" "" with outcomes 6 and 9) where outcome is
    0 waiting          rank: places ahead (ZRANK); -1 before starts_ms (the order is
                       drawn at the start: unknown until then)
    1 admitted         admitted_ms: the first admission, recorded before
    2 admitted now     recorded by this call (admitted_ms = now)
    3 closed           every item sold out (`closed`): nobody still waiting gets in
    4 ended            at or after ends_ms: closed for everyone still waiting
    5 not in queue     the user holds no place (ARGV[2] "")
    6 no such queue    KEYS[1] holds no queue
    7 too late to draw ARGV[5] "1" at or after starts_ms and the user holds no place:
                       nothing written (the caller joins them as an arrival)
    9 recovering       frozen (Redis lost or rolled back the queue; see
                       app/flows/freshness.py), or found behind ARGV[3..4] and frozen now

  The checks run in this order: 9, 6, 9 (behind), 1, 4, 3, 7, (join), 5, 0 (before the
  start), 2, 0. A join adds the place only if the user holds none (the first score stays).
]]
local q = redis.call('HMGET', KEYS[1],
  'starts_ms', 'ends_ms', 'admit_per_second', 'closed', 'frozen', 'epoch', 'seq', 'expires_ms',
  'pass_ms', 'items')
if q[5] == '1' then
  return {9, -1, 0, 0, 0, 0, 0, 0, ''}
end
if q[6] == false or q[1] == false then
  return {6, -1, 0, 0, 0, 0, 0, 0, ''}
end
local terms = {q[9] or '0', q[3], q[10] or ''}
local epoch, seq = tonumber(q[6]), tonumber(q[7] or '0')
local seen_epoch, seen_seq = tonumber(ARGV[3]), tonumber(ARGV[4])
if epoch < seen_epoch or (epoch == seen_epoch and seq < seen_seq) then
  redis.call('HSET', KEYS[1], 'frozen', '1', 'behind', '1')
  return {9, -1, 0, 0, epoch, seq, terms[1], terms[2], terms[3]}
end
local user = ARGV[1]
local admitted_ms = redis.call('HGET', KEYS[3], user)
if admitted_ms then
  return {1, -1, 0, tonumber(admitted_ms), epoch, seq, terms[1], terms[2], terms[3]}
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now_ms >= tonumber(q[2]) then
  return {4, -1, 0, 0, epoch, seq, terms[1], terms[2], terms[3]}
end
if q[4] == '1' then
  return {3, -1, 0, 0, epoch, seq, terms[1], terms[2], terms[3]}
end
local starts_ms = tonumber(q[1])
if ARGV[2] ~= '' then
  if ARGV[5] == '1' and now_ms >= starts_ms and redis.call('ZSCORE', KEYS[2], user) == false then
    return {7, -1, 0, 0, epoch, seq, terms[1], terms[2], terms[3]}
  end
  if redis.call('ZADD', KEYS[2], 'NX', ARGV[2], user) == 1 then
    seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
    if q[8] then
      redis.call('PEXPIREAT', KEYS[2], q[8])
    end
  end
end
local rank = redis.call('ZRANK', KEYS[2], user)
if rank == false then
  return {5, -1, 0, 0, epoch, seq, terms[1], terms[2], terms[3]}
end
if now_ms < starts_ms then
  return {0, -1, 0, 0, epoch, seq, terms[1], terms[2], terms[3]}
end
local admitted_count = math.floor((now_ms - starts_ms) * tonumber(q[3]) / 1000)
if rank < admitted_count then
  redis.call('HSET', KEYS[3], user, now_ms)
  if q[8] then
    redis.call('PEXPIREAT', KEYS[3], q[8])
  end
  seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
  return {2, rank, admitted_count, now_ms, epoch, seq, terms[1], terms[2], terms[3]}
end
return {0, rank, admitted_count, 0, epoch, seq, terms[1], terms[2], terms[3]}

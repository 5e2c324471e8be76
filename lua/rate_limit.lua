--[[
  rate_limit.lua: one request against one rate limit, decided with GCRA (the generic cell
  rate algorithm: a token bucket kept as a single timestamp).

  A limit of N requests per period P lets a client send N at once from rest, then one
  every P/N. The key holds the "theoretical arrival time" (TAT, microseconds of Redis's
  clock): when the bucket would be full again. It expires when the bucket is full, so an
  idle client costs no memory. A refused request changes nothing.

  One key per call, so the script runs unchanged on a Redis Cluster; the clock is Redis's
  own (TIME), so API processes with skewed clocks share one bucket exactly.

  KEYS[1] bucket    string  TAT in microseconds (absent = full bucket)

  ARGV[1] emission interval   microseconds between requests at the steady rate (P/N)
  ARGV[2] burst               requests allowed at once from rest (N)

  Returns {allowed, retry_after_us, remaining}
    allowed          1 counted and allowed, 0 refused (nothing changed)
    retry_after_us   when refused: microseconds until one request would be allowed; else 0
    remaining        requests that could still be sent at once after this one
]]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local interval = tonumber(ARGV[1])
local window = interval * tonumber(ARGV[2])

local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then
  tat = now
end
local new_tat = tat + interval
local ahead = new_tat - now
if ahead > window then
  return {0, ahead - window, 0}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil(ahead / 1000))
return {1, 0, math.floor((window - ahead) / interval)}

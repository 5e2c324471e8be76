--[[
  stored.lua: forget stream entries the order writer has committed to Postgres.

  One call per stream and batch, with the ids joined into two arguments: the ids of a
  1,000-entry batch as 4,000 separate arguments cost the writer more CPU to send than
  Postgres spent storing them. Only ever called after the commit, so a crash before it
  re-delivers entries whose rows exist (stored again as no-ops, then forgotten here).

  KEYS[1] stream    the item's orders (or the coupon's claims), with the writer's group
  KEYS[2] queued    hash: record id -> queued mark, cleared once the record is stored
  KEYS[3] failures  hash: entry id -> times Postgres refused it

  ARGV[1] the consumer group
  ARGV[2] stream entry ids, separated by spaces
  ARGV[3] record ids (order or claim ids) of the entries, separated by spaces

  Returns {acknowledged, deleted, marks cleared}.
]]
-- Lua's unpack() puts every value on the C stack (at most ~8,000): chunks stay below.
local CHUNK = 1000

local function words(joined)
  local list = {}
  for word in string.gmatch(joined, '%S+') do
    list[#list + 1] = word
  end
  return list
end

local entry_ids = words(ARGV[2])
local record_ids = words(ARGV[3])
local counted_failures = redis.call('EXISTS', KEYS[3]) == 1
local acknowledged, deleted, cleared = 0, 0, 0
for first = 1, #entry_ids, CHUNK do
  local last = math.min(first + CHUNK - 1, #entry_ids)
  acknowledged = acknowledged + redis.call('XACK', KEYS[1], ARGV[1], unpack(entry_ids, first, last))
  deleted = deleted + redis.call('XDEL', KEYS[1], unpack(entry_ids, first, last))
  if counted_failures then
    redis.call('HDEL', KEYS[3], unpack(entry_ids, first, last))
  end
end
for first = 1, #record_ids, CHUNK do
  local last = math.min(first + CHUNK - 1, #record_ids)
  cleared = cleared + redis.call('HDEL', KEYS[2], unpack(record_ids, first, last))
end
return {acknowledged, deleted, cleared}

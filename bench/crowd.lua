--[[
  crowd.lua: the million-buyer crowd. Each line of the token file is one buyer, who
  sends exactly one purchase. Once every buyer has been answered the thread stops and
  prints CROWD-ANSWERED: wrk (4.1) would still wait out --duration, so the bench then
  interrupts it (SIGINT), and wrk reports as at the end of a run.

  Arguments (after `--`): 1 token file, 2 request path, 3 JSON body.
  done() prints one line  CROWD-RESULT {"requests": ..., "non_2xx": ..., ...}
]]

local answered = 0

function init(args)
  local template = wrk.format("POST", args[2], {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer @TOKEN@",
  }, args[3])
  local head, tail = template:match("^(.-)@TOKEN@(.*)$")
  prepared = {}
  for token in io.lines(args[1]) do
    prepared[#prepared + 1] = head .. token .. tail
  end
  position = 0
end

function request()
  -- Past the last buyer (at most one request per connection): the last one again,
  -- refused as over the limit; stop() ends the run once every buyer is answered.
  position = position + 1
  return prepared[math.min(position, #prepared)]
end

function response(status, headers, body)
  answered = answered + 1
  if answered == #prepared then
    io.write("CROWD-ANSWERED\n")
    io.flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  io.write(string.format(
    'CROWD-RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
      .. '"non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end

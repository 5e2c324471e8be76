--[[
  post.lua: the wrk script of the bench. POSTs a JSON body (or GETs), each request as the
  next of many users, so per-user limits and per-user Redis fields do not dominate.

  Arguments (after `--`):
    1  token file: one JWT a line (one user each)
    2  request path
    3  JSON body
    4  the line to start from (0-based; cold-token runs go on where the last one stopped)
    5  "once" (the crowd): each line is sent once; when every one has been answered the
       thread stops and prints ALL-ANSWERED (wrk 4.1 would still wait out --duration,
       so the bench then interrupts it, and wrk reports as at the end of a run)
    6  an extra header sent with every request, "Name: value" ("" for none), e.g. the
       campaign target's "X-Channel: app"
    7  pass file ("" for none): one X-Seckill-Pass a line, line n for the user of the
       token file's line n (a queue or draw sale's purchases)
    8  the request method ("" or absent: POST); a GET is sent without the body of 3 or a
       Content-Type (the queue poll)

  Every request is built once per thread in init(), so request() costs a table lookup
  and wrk stays far from being the bottleneck. At the end, done() prints one line
    BENCH-RESULT {"requests": ..., "p50_us": ..., ...}
  with wrk's exact counts and latency percentiles in microseconds.
]]

local threads = {}

function setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

-- Defined only for a "once" run: without it wrk does not hand responses to Lua at all.
local function count_answer(status, headers, body)
  answered = answered + 1
  if answered == #prepared then
    io.write("ALL-ANSWERED\n")
    io.flush()
    wrk.thread:stop()
  end
end

function init(args)
  -- Format one request with a marker for the token, then splice each token in.
  local method = args[8] or ""
  if method == "" then
    method = "POST"
  end
  local headers = { ["Authorization"] = "Bearer @TOKEN@" }
  local body = nil
  if method ~= "GET" then
    headers["Content-Type"] = "application/json"
    body = args[3]
  end
  local extra_name, extra_value = (args[6] or ""):match("^([^:]+):%s*(.*)$")
  if extra_name then
    headers[extra_name] = extra_value
  end
  local pass_file = args[7] or ""
  if pass_file ~= "" then
    headers["X-Seckill-Pass"] = "@PASS@"
  end
  local template = wrk.format(method, args[2], headers, body)
  local head, tail = template:match("^(.-)@TOKEN@(.*)$")
  prepared = {}
  for token in io.lines(args[1]) do
    prepared[#prepared + 1] = head .. token .. tail
  end
  if pass_file ~= "" then
    -- Passes are base64url and dots: nothing gsub would read as a pattern.
    local line = 0
    for pass in io.lines(pass_file) do
      line = line + 1
      prepared[line] = (prepared[line]:gsub("@PASS@", pass))
    end
  end
  -- Threads start far apart in the list, so no two send the same user at once.
  position = (tonumber(args[4] or "0") + thread_index * 7919) % #prepared
  once = args[5] == "once"
  answered = 0
  if once then
    response = count_answer
  end
end

function request()
  if once then
    -- Past the last line (at most one request per connection): the last one again.
    position = math.min(position + 1, #prepared)
  else
    position = position % #prepared + 1
  end
  return prepared[position]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH-RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "p50_us": %d, '
      .. '"p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f, "errors": {'
      .. '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end

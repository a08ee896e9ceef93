-- wrk script: POSTs pre-signed, unique LiveKit webhooks (from
-- `attendance-loadgen presign --out FILE`) to /webhooks/livekit.
--
--   wrk -t2 -c64 -d10s --latency -s bench/wrk/webhooks.lua URL -- FILE THREADS
--
-- Each wrk thread takes every THREADS-th line of FILE, so no two requests of
-- a run carry the same event id. If a thread runs out it starts over (those
-- requests are duplicates) and `done` says so: write more lines for longer runs.

local next_thread_id = 0
local threads = {}

function setup(thread)
  thread:set("thread_id", next_thread_id)
  next_thread_id = next_thread_id + 1
  table.insert(threads, thread)
end

function init(args)
  local file, nthreads = args[1], tonumber(args[2] or "2")
  requests, sent, wrapped = {}, 0, 0
  local i = 0
  for line in io.lines(file) do
    if i % nthreads == thread_id then
      local tab = line:find("\t", 1, true)
      requests[#requests + 1] = wrk.format("POST", "/webhooks/livekit", {
        ["Authorization"] = line:sub(1, tab - 1),
        ["Content-Type"] = "application/webhook+json",
      }, line:sub(tab + 1))
    end
    i = i + 1
  end
end

function request()
  sent = sent + 1
  if sent > #requests then
    wrapped = wrapped + 1
    return requests[(sent - 1) % #requests + 1]
  end
  return requests[sent]
end

function done(summary, latency, requests_)
  local repeated = 0
  for _, thread in ipairs(threads) do
    repeated = repeated + (thread:get("wrapped") or 0)
  end
  local errors = summary.errors
  io.write(string.format(
    'WRK {"requests":%d,"seconds":%.3f,"per_s":%.0f,"repeated":%d,"non_2xx":%d,' ..
    '"socket_errors":%d,"latency_ms":{"p50":%.2f,"p90":%.2f,"p99":%.2f,"max":%.2f}}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    repeated, summary.errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end

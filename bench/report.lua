-- wrk's done() hook: the run's numbers as one JSON line (prefixed "WRK_JSON "), so the
-- harness reads numbers, not wrk's text. Latencies are in microseconds.
-- ok_2xx: completed responses less those wrk counts as "Non-2xx or 3xx responses"
-- (status > 399); the harness checks every target answers 200 (never 3xx) before loading it.

local points = {}
for p = 1, 99 do
  points[#points + 1] = p
end
for _, p in ipairs({ 99.5, 99.9, 99.99 }) do
  points[#points + 1] = p
end

local function number(x)
  if x ~= x or x == math.huge or x == -math.huge then
    return "null"
  end
  return string.format("%.17g", x)
end

done = function(summary, latency, requests)
  local e = summary.errors
  local parts = {}
  local function add(key, value)
    parts[#parts + 1] = string.format("%q:%s", key, value)
  end
  add("duration_us", number(summary.duration))
  add("requests", number(summary.requests))
  add("bytes", number(summary.bytes))
  add("non_2xx_3xx", number(e.status))
  add("ok_2xx", number(summary.requests - e.status))
  add("errors", string.format('{"connect":%s,"read":%s,"write":%s,"status":%s,"timeout":%s}',
    number(e.connect), number(e.read), number(e.write), number(e.status), number(e.timeout)))
  add("latency_us", string.format('{"min":%s,"max":%s,"mean":%s,"stdev":%s}',
    number(latency.min), number(latency.max), number(latency.mean), number(latency.stdev)))
  local percentiles = {}
  for _, p in ipairs(points) do
    percentiles[#percentiles + 1] = string.format('"%s":%s', tostring(p), number(latency:percentile(p)))
  end
  add("latency_percentiles_us", "{" .. table.concat(percentiles, ",") .. "}")
  add("thread_req_per_s", string.format('{"min":%s,"max":%s,"mean":%s,"stdev":%s}',
    number(requests.min), number(requests.max), number(requests.mean), number(requests.stdev)))
  io.write("WRK_JSON {" .. table.concat(parts, ",") .. "}\n")
end

-- wrk script for the benchmarks: the request (method and body from the environment) and, at the
-- end, one machine-readable line with the exact numbers (microseconds), for benchmarks/peers/wrk.py.
--   BODY_FILE     a file whose bytes are POSTed as application/json (unset: a GET with no body)
--   REPORT_PREFIX the marker that starts the report line (default "WRK_REPORT")

local body_file = os.getenv("BODY_FILE")
if body_file ~= nil and body_file ~= "" then
   local f = assert(io.open(body_file, "rb"))
   wrk.method = "POST"
   wrk.body = f:read("*a")
   f:close()
   wrk.headers["Content-Type"] = "application/json"
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "%s {\"duration_us\": %d, \"requests\": %d, \"bytes\": %d, " ..
      "\"errors_connect\": %d, \"errors_read\": %d, \"errors_write\": %d, " ..
      "\"errors_status\": %d, \"errors_timeout\": %d, " ..
      "\"latency_mean_us\": %.1f, \"latency_max_us\": %d, " ..
      "\"latency_p50_us\": %d, \"latency_p90_us\": %d, \"latency_p99_us\": %d}\n",
      os.getenv("REPORT_PREFIX") or "WRK_REPORT",
      summary.duration, summary.requests, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency.max,
      latency:percentile(50.0), latency:percentile(90.0), latency:percentile(99.0)))
end

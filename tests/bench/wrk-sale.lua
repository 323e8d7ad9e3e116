-- POST /v1/sales with a unique Idempotency-Key per request.
local counter = 0
local thread_id = 0
function setup(thread)
  thread:set("tid", thread_id)
  thread_id = thread_id + 1
end
function init(args)
  counter = 0
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("CAJA_TOKEN") or "")
wrk.body = '{"lines":[{"sku":"B0001","quantity":2},{"sku":"B0007","quantity":1}],"tenders":[{"kind":"cash","amount":"100.00"}]}'
function request()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = string.format("wrk-%d-%d-%d", tid, counter, math.random(1, 1e9))
  return wrk.format(nil, "/v1/sales")
end
function done(summary, latency, requests)
  io.write(string.format("p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms, errors %d non-2xx %d\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end

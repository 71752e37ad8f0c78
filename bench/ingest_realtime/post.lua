-- wrk script: POST one unique `transactions` record (~350 bytes of JSON) per request,
-- keep-alive, to /api/v1/ingest/transactions.
-- Env: DTM_KEY (X-API-Key; empty for the nginx ceiling run), DTM_RUN (unique per wrk run so
-- that keys never repeat across runs).
local key = os.getenv("DTM_KEY") or ""
local run = os.getenv("DTM_RUN") or tostring(os.time())
local counter = 0
local threads = 0

function setup(thread)
   thread:set("tid", threads)
   threads = threads + 1
end

function init(args)
   math.randomseed(os.time() * 1000 + tid)
   prefix = string.format("B%s-%d-%d", run, tid, math.random(1, 1000000000))
   headers = {["Content-Type"] = "application/json"}
   if key ~= "" then headers["X-API-Key"] = key end
end

local channels = {"web", "mobile", "api", "kiosk", "counter"}
local regions = {"HN", "HCM", "DN", "HP", "CT"}

function request()
   counter = counter + 1
   local body = string.format(
      '{"txn_id":"%s-%d","service_code":"SV%02d","channel":"%s","status":"success",' ..
      '"started_at":"2026-11-20T10:%02d:%02d+07:00","finished_at":"2026-11-20T10:%02d:%02d+07:00",' ..
      '"response_ms":%d,"citizen_id":"%06d%06d","amount":"%d","region_code":"%s",' ..
      '"agency_code":"BO-KHCN","priority":"normal","classification":"internal"}',
      prefix, counter, counter % 50, channels[counter % 5 + 1],
      counter % 60, counter % 60, counter % 60, counter % 60,
      math.random(10, 3000), math.random(0, 999999), math.random(0, 999999),
      math.random(0, 5000000), regions[counter % 5 + 1])
   return wrk.format("POST", "/api/v1/ingest/transactions", headers, body)
end

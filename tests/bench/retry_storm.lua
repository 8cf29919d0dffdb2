-- 2,000 requests with 500 in flight against a server that answers 30% of them with 503:
-- every request must end (answered, or an error that says why) and the attempts per
-- request must stay within the retry policy. Prints the distribution.
local N, K = tonumber(arg[1]) or 2000, tonumber(arg[2]) or 500
local items = {}
for i = 1, N do items[i] = i end
local attempts, errors = {}, {}
local t0 = os.time()
task.map(items, function(i)
  local ok, r = pcall(llm.chat, { prompt = "storm " .. i, max_tokens = 16 })
  local a = ok and r.attempts or r.attempts or 0
  attempts[a] = (attempts[a] or 0) + 1
  if not ok then errors[r.kind] = (errors[r.kind] or 0) + 1 end
end, { limit = K })
local s = llm.stats()
print(("requests %d, in flight at most %d, wall %d s"):format(N, s.in_flight_peak, os.time() - t0))
print(("answered %d, failed %d, sent %d (%.2f sends per request), retries %d"):format(
  s.ok, s.errors, s.sent, s.sent / N, s.retries))
print("attempts per request:")
for a = 1, 10 do
  if attempts[a] then print(("  %2d  %6d  %s"):format(a, attempts[a], ("#"):rep(math.ceil(60 * attempts[a] / N)))) end
end
for kind, n in pairs(errors) do print(("  failed with %s: %d"):format(kind, n)) end

-- 400 concurrent llm.chat calls (a quarter of them streamed), with a progress line
-- against whatever OPENAI_BASE_URL points at (try the mock server with --fault 500=0.02):
-- it shows progress, then what happened: throughput, errors by kind, tokens.
local N = tonumber(arg[1]) or 400
local started = os.clock()
local t0 = os.time()
local done, failed = 0, {}

local prompts = {}
for i = 1, N do
  prompts[i] = ("Write a one-line question about topic #%d for a quiz."):format(i)
end

local progress = task.spawn(function()
  local ticks = 0
  while done < N do
    task.sleep(250)
    ticks = ticks + 1
    if ticks % 4 == 0 then log.info("%d/%d answered, %d in flight", done, N, llm.stats().in_flight) end
  end
end)

local results = task.map(prompts, function(prompt, i)
  local streamed = {}
  local ok, r = pcall(llm.chat, {
    model = "weak",
    prompt = prompt,
    max_tokens = 64,
    stream = (i % 4 == 0) and function(delta) streamed[#streamed + 1] = delta end or nil,
  })
  done = done + 1
  if not ok then
    failed[r.kind] = (failed[r.kind] or 0) + 1
    if failed[r.kind] == 1 then log.info("first %s error: %s", r.kind, tostring(r)) end
    return nil
  end
  return r.text
end, { limit = 200 })
progress:join()

local s = llm.stats()
print(("sent %d requests (%d concurrent at peak) over %d connections"):format(
  s.requests, s.in_flight_peak, s.connections_opened))
print(("answered %d, failed %d, tokens in/out %d/%d"):format(s.ok, s.errors, s.input_tokens,
  s.output_tokens))
for kind, n in pairs(failed) do print(("  %-12s %d (each surfaced as an error object with kind=%q)"):format(kind, n, kind)) end
print("sample answer: " .. tostring(results[1] or results[2]))
print(("wall time about %ds, CPU %.2fs"):format(os.time() - t0, os.clock() - started))

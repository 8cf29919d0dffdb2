-- Benchmark client for tests/bench/run.sh: N chat requests, one task each, never more than
-- K in flight. Prints one machine-readable BENCH line so the harness can check that every
-- request succeeded before it trusts the timing.
--
--   moonloop run tests/bench/chat_flood.lua N K [stream]
--
-- N = 0 starts the runtime and exits: the harness uses it as the idle memory baseline.

local n = math.tointeger(tonumber(arg[1] or ""))
local k = math.tointeger(tonumber(arg[2] or ""))
local mode = arg[3] or "plain"
if n == nil or n < 0 or k == nil or k < 1 or (mode ~= "plain" and mode ~= "stream") then
  error("usage: moonloop run chat_flood.lua N K [stream]  (N >= 0 requests, K >= 1 in flight)", 0)
end

-- A wall clock with sub-second resolution; the runtime has none yet, so ask date(1) twice.
local function now()
  local p = io and io.popen and io.popen("date +%s.%N")
  if p then
    local t = tonumber(p:read("l"))
    p:close()
    if t then return t end
  end
  return os.time()
end

local ok, failed, deltas = 0, 0, 0
local first_error = nil

local function on_delta()
  deltas = deltas + 1
end

local function one_request()
  -- A fresh spec per call, as a real script would build one per prompt.
  local spec = { model = "bench", prompt = "hi", max_tokens = 16 }
  if mode == "stream" then spec.stream = on_delta end
  local good, res = pcall(llm.chat, spec)
  if good and type(res) == "table" and res.text ~= nil then
    ok = ok + 1
  else
    failed = failed + 1
    if first_error == nil then
      first_error = type(res) == "table" and ("%s: %s"):format(res.kind, res.message or "?")
        or tostring(res)
    end
  end
end

local t0 = now()
-- The main task takes a permit before each spawn and the request gives it back when it
-- ends, so at most K request tasks exist at any moment (not N parked ones).
local slots = task.semaphore(k)
for _ = 1, n do
  slots:acquire()
  task.spawn(function()
    local held <close> = setmetatable({}, { __close = function() slots:release() end })
    one_request()
  end)
end
for _ = 1, k do
  slots:acquire() -- every permit back: every request has finished
end
local wall = now() - t0

local st = llm.stats()
if first_error then
  io.stderr:write("chat_flood: first failure: ", first_error, "\n")
end
print(("BENCH ok=%d failed=%d wall_s=%.3f deltas=%d in_flight_peak=%d connections=%d"):format(
  ok, failed, wall, deltas, st.in_flight_peak or 0, st.connections_opened or 0))

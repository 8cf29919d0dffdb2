-- What the sandbox costs: calls per second through sb:call and through a wrapped function,
-- a CPU-bound loop inside and outside the sandbox, and creating a sandbox. Prints numbers;
-- asserts nothing (not a test).
--   moonloop run --trusted --offline tests/sandbox/call_bench.lua [N]
local sandbox = require "moonloop.sandbox"
local N = tonumber(arg[1]) or 200000

local function clock() return os.clock() end

local function rate(label, n, fn)
  local t0 = clock()
  fn(n)
  local dt = clock() - t0
  print(("%-48s %10.0f /s  (%.2f us each)"):format(label, n / dt, dt / n * 1e6))
  return n / dt
end

local sb = sandbox.new{ name = "bench" }
local trivial = assert(sb:load("return function(x) return x end", "=bench"))
local _, f = sb:call_raw(trivial)
local _, wrapped = sb:call(trivial)
local plain = function(x) return x end

rate("plain Lua call (trusted, for scale)", N * 10, function(n)
  for i = 1, n do plain(i) end
end)
rate("sb:call_raw(f, i) (no copies)", N, function(n)
  for i = 1, n do sb:call_raw(f, i) end
end)
rate("sb:call(f, i)", N, function(n)
  for i = 1, n do sb:call(f, i) end
end)
rate("wrapped(i): a function the sandbox returned", N, function(n)
  for i = 1, n do wrapped(i) end
end)
local ctx = { recipe = { name = "x", max_rounds = 3, samples = { weak = 3, strong = 3 } },
  item = { id = "a", text = ("word "):rep(200) } }
rate("wrapped(ctx): a 3-level table argument copied in", N, function(n)
  for _ = 1, n do wrapped(ctx) end
end)

local loop = "local x = 0 for i = 1, 5e7 do x = x + i end return x"
local t0 = clock()
assert(load(loop))()
local trusted = clock() - t0
local fn = assert(sb:load(loop, "=loop"))
t0 = clock()
sb:call(fn)
local boxed = clock() - t0
print(("%-48s %10.3f s vs %.3f s trusted (%+.1f%%)"):format("5e7-iteration loop in the sandbox", boxed,
  trusted, (boxed / trusted - 1) * 100))

rate("sandbox.new{} (env, libraries, task helpers)", 2000, function(n)
  for _ = 1, n do sandbox.new{ name = "x" } end
end)

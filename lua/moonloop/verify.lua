-- Verifier capabilities the trusted library offers recipes. Recipes never reach a
-- subprocess themselves: they name these functions, which run generated code with a fixed
-- interpreter (moonloop itself), a time limit, a memory limit, no network, in a fresh
-- temporary directory that is removed afterwards.
local M = {}

-- Runs in the child: load solution.lua in the sandbox (a model's code never gets io, os or
-- the rest of the standard library, even in its own process), call solve() on every test,
-- print one JSON line.
local HARNESS = [[
local sandbox = require "moonloop.sandbox"
local function report(t) print(json.encode(t)) end
local tests = json.decode(fs.read("tests.json"))
local sb = sandbox.new{ name = "solution.lua" }
local fn, err = sb:load(fs.read("solution.lua"), "@solution.lua")
local ok = fn ~= nil
if ok then ok, err = sb:call(fn) end
if not ok then return report({ passed = 0, total = #tests, error = "the code does not load: " .. tostring(err) }) end
local _, solve = sb:call(assert(sb:load("return solve", "=solve")))
if type(solve) ~= "function" then return report({ passed = 0, total = #tests, error = "the code defines no function solve" }) end
local passed, failures = 0, {}
for i, t in ipairs(tests) do
  local ok2, got = pcall(solve, table.unpack(t.args))
  if ok2 and got == t.expected then
    passed = passed + 1
  elseif #failures < 3 then
    failures[#failures + 1] = ok2 and ("test %d: got %s, expected %s"):format(i, tostring(got), tostring(t.expected))
      or ("test %d: error %s"):format(i, tostring(got))
  end
end
report({ passed = passed, total = #tests, failures = json.array(failures) })
]]

-- The code in a model's answer: the first ```lua fence, else the first fence, else all.
function M.extract_code(s)
  return s:match("```[Ll]ua%s*\n(.-)\n```") or s:match("```%w*%s*\n(.-)\n```") or s
end

local function remove_tree(dir)
  for _, name in ipairs(fs.list(dir)) do pcall(fs.remove, fs.join(dir, name)) end
  pcall(fs.remove, dir)
end

-- code{ source =, tests = { {args = {...}, expected = v}, ... }, timeout_ms = } ->
-- { passed =, total =, failures = {...}, error = string|nil, dir = the removed work dir }
function M.code(opts)
  assert(type(opts.source) == "string", "verify.code: source must be a string")
  assert(type(opts.tests) == "table" and #opts.tests > 0, "verify.code: tests must be a non-empty list")
  local dir = fs.tmpdir("moonloop-verify-")
  local cleanup <close> = setmetatable({}, { __close = function() remove_tree(dir) end })
  fs.write(fs.join(dir, "solution.lua"), opts.source)
  fs.write(fs.join(dir, "tests.json"), json.encode(opts.tests))
  fs.write(fs.join(dir, "harness.lua"), HARNESS)
  local env = {}
  if os.getenv("MOONLOOP_LUA_DIR") then env.MOONLOOP_LUA_DIR = os.getenv("MOONLOOP_LUA_DIR") end
  local r = proc.run{
    argv = { proc.exe(), "run", "--trusted", "--offline", "--quiet", "harness.lua" },
    cwd = dir, env = env, timeout_ms = opts.timeout_ms or 5000, max_output = 65536,
    -- (a sanitizer build of moonloop cannot run under an address-space cap: there the
    -- memory limit is left out; time, CPU and network limits still apply)
    limits = { memory_mb = proc.can_cap_memory and (opts.memory_mb or 256) or nil, cpu_s = 5,
               no_network = true },
  }
  local total = #opts.tests
  -- dir: where it ran (removed when this returns), so a caller can check nothing is left
  if r.timed_out then return { passed = 0, total = total, error = "timed out", dir = dir } end
  local line = r.stdout:match("([^\n]*)\n?$")
  local ok, out = pcall(json.decode, line or "")
  if not ok or type(out) ~= "table" then
    return { passed = 0, total = total, dir = dir,
      error = ("the test run failed (exit %s): %s"):format(tostring(r.code or r.signal), r.stderr:sub(1, 300)) }
  end
  out.dir = dir
  return out
end

-- Recipe hook: the challenger's reference solution must pass its own tests.
function M.reference_passes(ctx, item, ex)
  if type(ex.tests) ~= "table" or #ex.tests == 0 then
    return { pass = false, reason = "the example has no tests" }
  end
  for i, t in ipairs(ex.tests) do
    if type(t) ~= "table" or type(t.args) ~= "table" or t.expected == nil then
      return { pass = false, reason = ("test %d is not {args = [...], expected = value}"):format(i) }
    end
  end
  local r = M.code{ source = M.extract_code(ex.reference_answer), tests = ex.tests }
  if r.passed == r.total then return { pass = true, reason = ("reference passes %d tests"):format(r.total) } end
  return { pass = false, reason = ("the reference solution fails its own tests (%d of %d pass)%s"):format(
    r.passed, r.total, r.error and (": " .. r.error) or "") }
end

-- Recipe hook: score a solver's answer as the share of tests its code passes.
function M.tests_passed(ctx, ex, answer)
  local r = M.code{ source = M.extract_code(answer), tests = ex.tests }
  return r.passed / r.total, r.error or (r.failures and r.failures[1])
end

return M

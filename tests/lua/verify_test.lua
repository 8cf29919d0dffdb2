-- The code verifier: generated code runs in a separate moonloop process with limits, and
-- its results come back as passed / total with the reason for failures.
package.path = os.getenv("MOONLOOP_LUA_DIR") .. "/?.lua;" .. package.path
local t = dofile("lib/t.lua")
local verify = require "moonloop.verify"

local tests = json.array({ { args = json.array({ 2, 3 }), expected = 5 }, { args = json.array({ 0, 0 }), expected = 0 } })

t.test("correct code passes every test", function()
  local r = verify.code{ source = "function solve(a, b) return a + b end", tests = tests }
  t.eq(r.passed, 2); t.eq(r.total, 2); t.eq(r.error, nil)
end)

t.test("wrong code passes some tests and says which failed", function()
  local r = verify.code{ source = "function solve(a, b) return a * b + 1 end", tests = tests }
  t.eq(r.passed, 0)
  t.ok(r.failures[1]:find("test 1: got 7, expected 5", 1, true), r.failures[1])
end)

t.test("code that does not load is reported as such", function()
  local r = verify.code{ source = "function solve(a, b) return a + end", tests = tests }
  t.eq(r.passed, 0); t.ok(r.error:find("does not load"), r.error)
end)

t.test("code without solve is reported as such", function()
  local r = verify.code{ source = "local x = 1", tests = tests }
  t.ok(r.error:find("no function solve"), r.error)
end)

t.test("an endless loop is stopped by the time limit", function()
  local r = verify.code{ source = "function solve() while true do end end", tests = tests, timeout_ms = 500 }
  t.eq(r.passed, 0); t.ok(r.error == "timed out" or r.error:find("test run failed"), tostring(r.error))
end)

t.test("the code cannot see the parent's environment", function()
  local r = verify.code{ source = "function solve() return (os.getenv and os.getenv('OPENAI_API_KEY')) or 0 end",
    tests = json.array({ { args = json.array({}), expected = 0 } }) }
  t.eq(r.passed, 1)
end)

t.test("the code runs in the sandbox: no io, no os.execute, no require of files", function()
  local r = verify.code{ source = "function solve() return io == nil and os.execute == nil and dofile == nil end",
    tests = json.array({ { args = json.array({}), expected = true } }) }
  t.eq(r.passed, 1, "sandboxed globals")
  r = verify.code{ source = "os.execute('touch escaped')\nfunction solve() return 1 end",
    tests = json.array({ { args = json.array({}), expected = 1 } }) }
  t.eq(r.passed, 0)
  t.ok(r.error:find("does not load", 1, true), tostring(r.error))
end)

t.test("the reference check fails a reference that breaks its own tests", function()
  local ex = { reference_answer = "```lua\nfunction solve(a, b) return a - b end\n```", tests = tests }
  local v = verify.reference_passes(nil, nil, ex)
  t.eq(v.pass, false); t.ok(v.reason:find("fails its own tests"), v.reason)
  ex.reference_answer = "```lua\nfunction solve(a, b) return a + b end\n```"
  t.eq(verify.reference_passes(nil, nil, ex).pass, true)
  t.eq(verify.reference_passes(nil, nil, { reference_answer = "x" }).pass, false)
end)

t.test("an answer is scored by the share of tests it passes", function()
  local score = verify.tests_passed(nil, { tests = tests }, "Sure:\n```lua\nfunction solve(a, b) return a + b + (a > 0 and 1 or 0) end\n```")
  t.eq(score, 0.5)
end)

t.test("the temporary directory is removed afterwards", function()
  -- Its own directory, not a count of /tmp: other tests create and remove theirs meanwhile.
  local r = verify.code{ source = "function solve(a, b) return a + b end", tests = tests }
  t.ok(type(r.dir) == "string" and r.dir:find("moonloop-verify-", 1, true), tostring(r.dir))
  t.eq(fs.exists(r.dir), false, "the work directory exists afterwards")
end)

t.done()

-- The sandbox's escape suite (runtime-anchors 7.6 item 11, and more): every case tries one way
-- out or one way to exhaust the host and asserts the specific error it meets. Run trusted
-- (`moonloop run --trusted`), because it builds sandboxes with moonloop.sandbox; the last
-- cases check that the process is alive and still runs sandboxes.
local t = dofile((os.getenv("MOONLOOP_TEST_LIB") or "../lua/lib") .. "/t.lua")
local sandbox = require "moonloop.sandbox"

-- Small limits keep the kills quick; each case gets a fresh sandbox unless it says otherwise.
local FAST = { name = "case", instructions = 2e6 }

local LLM = { name = "llm" } -- the default limits: the offline simulator runs in the call

local function new(opts) return sandbox.new(opts or FAST) end

-- Run source in a sandbox; returns sb, ok, results-or-error...
local function run(src, opts, ...)
  local sb = new(opts)
  local fn, err = sb:load(src, "=case.lua")
  assert(fn, err)
  return sb, sb:call(fn, ...)
end

-- Expect the sandboxed source to fail with an error matching pattern.
local function fails(src, pattern, opts)
  local sb, ok, err = run(src, opts)
  t.ok(not ok, "expected the sandboxed code to fail, it returned " .. tostring(err))
  local msg = type(err) == "table" and tostring(err.message) or tostring(err)
  t.ok(msg:find(pattern), ("error %q does not match %q"):format(msg, pattern))
  return sb, err
end

-- Expect the sandboxed source to return values; returns them.
local function returns(src, opts, ...)
  local r = table.pack(run(src, opts, ...))
  local a = r[3]
  t.ok(r[2], "the sandboxed code failed: " .. tostring(type(a) == "table" and a.message or a))
  return table.unpack(r, 3, r.n)
end

local function killed(src, reason, opts)
  local sb, err = fails(src, "killed: ", opts)
  t.eq(type(err), "table", "the kill is a structured error")
  t.eq(err.kind, "killed", "kind")
  t.eq(err.reason, reason, "reason")
  t.eq(sb:stats().killed, reason, "stats().killed")
  return sb, err
end

-- 7.6 item 11: bytecode ----------------------------------------------------------------

t.test("string.dump is gone, from the library and from string methods", function()
  local a, b = returns("return string.dump, ('').dump")
  t.eq(a, nil, "string.dump")
  t.eq(b, nil, "('').dump")
end)

t.test("load(string.dump(f)) of bytecode made by the host is refused", function()
  local sb = new()
  sb:set("bc", string.dump(function() return 1 end))
  local fn = assert(sb:load("return load(bc)", "=case.lua"))
  local ok, f, msg = sb:call(fn)
  t.ok(ok and f == nil, "load returned a function")
  t.ok(msg:find("attempt to load a binary chunk %(mode is 't'%)"), msg)
end)

t.test("load(bytecode, nil, 'b') is refused too: the mode is always text", function()
  local sb = new()
  sb:set("bc", string.dump(function() return 1 end))
  local fn = assert(sb:load("return load(bc, 'x', 'b')", "=case.lua"))
  local _, f, msg = sb:call(fn)
  t.eq(f, nil, "function")
  t.ok(msg:find("binary chunk"), msg)
end)

t.test("the host API sb:load refuses bytecode as well", function()
  local fn, msg = new():load(string.dump(function() return 1 end), "=bc")
  t.eq(fn, nil, "function")
  t.ok(msg:find("binary chunk"), msg)
end)

t.test("load with a reader function is refused", function()
  fails("return load(function() return nil end)", "loads source text from a string only")
end)

-- 7.6 item 11: the removed libraries ---------------------------------------------------

t.test("os.getenv, io.open, debug, package, dofile, loadfile are nil", function()
  local r = returns([[return { os.getenv, io, debug, package, dofile, loadfile, fs, proc, sqlite,
    os.execute, os.exit, os.remove, os.rename, os.tmpname, os.setlocale, llm.resolve, llm.budget }]])
  for i = 1, 17 do t.eq(r[i], nil, "forbidden name #" .. i) end
  local n = returns("return type(os.time()) .. type(os.clock()) .. type(os.date()) .. type(os.difftime(2, 1))")
  t.eq(n, "numbernumberstringnumber", "os.time/clock/date/difftime remain")
end)

t.test("io.open cannot be reached by indexing", function()
  fails("return io.open('/etc/passwd')", "attempt to index a nil value %(global 'io'%)")
end)

t.test("package.loadlib cannot be reached", function()
  fails("return package.loadlib('libc.so.6', 'system')", "attempt to index a nil value %(global 'package'%)")
end)

t.test("require outside the allow-list is refused, by name", function()
  fails("return require 'io'", "module 'io' is not available in the sandbox")
  fails("return require 'moonloop.runner'", "module 'moonloop.runner' is not available")
  fails("return require 'debug'", "module 'debug' is not available")
  fails("return require 'moonloop.compare'", "module 'moonloop.compare' is not available")
  t.eq(returns("return type(require('moonloop.compare').run)", { modules = { "moonloop.compare" } }),
    "function", "a module granted to this sandbox")
end)

-- 7.6 item 11: the string metatable --------------------------------------------------------

t.test("getmetatable('') does not reach the string library", function()
  t.eq(returns("return getmetatable('')"), false, "getmetatable('')")
  fails("getmetatable('').__index.upper = function() return 'pwned' end",
    "attempt to index a boolean value")
end)

t.test("a sandbox changing its string table affects no one else", function()
  returns("string.upper = function() return 'pwned' end; string.rep = nil")
  t.eq(("x"):upper(), "X", "host method call")
  t.eq(string.upper("x"), "X", "host library")
  t.eq(returns("return ('x'):upper(), string.upper('y')"), "X", "another sandbox")
end)

-- 7.6 item 11: finalizers and protected metatables -----------------------------------------

t.test("setmetatable with __gc is refused", function()
  fails("setmetatable({}, {__gc = function() end})", "a metatable with __gc is not allowed")
end)

t.test("the metatable of a read-only module view cannot be replaced", function()
  fails("setmetatable(require 'moonloop.asi', {})", "cannot change a protected metatable")
end)

t.test("the host's metatables are locked (error objects, json arrays)", function()
  local a, b, c = returns([[
    return getmetatable(json.decode('[1]')), json.array_mt, getmetatable(task.error('x', 'y'))]])
  t.eq(a, false, "json array metatable")
  t.eq(b, nil, "json.array_mt")
  t.eq(c, false, "error metatable")
end)

-- 7.6 item 11: runaway code ------------------------------------------------------------------

t.test("while true do end is killed, naming the chunk and line", function()
  local _, err = killed("local x = 0\nwhile true do x = x + 1 end", "instructions")
  t.ok(err.message:find("^case.lua:2: killed: instruction limit %(2000000%) exceeded"), err.message)
end)

t.test("while true do pcall(function() while true do end end) end is killed, not swallowed", function()
  killed("while true do pcall(function() while true do end end) end", "instructions")
end)

t.test("an xpcall handler cannot swallow a kill either", function()
  killed("while true do xpcall(function() while true do end end, function() return 'caught' end) end",
    "instructions")
end)

t.test("a coroutine cannot swallow a kill", function()
  killed([[while true do
    pcall(coroutine.wrap(function() while true do end end))
    coroutine.resume(coroutine.create(function() while true do end end))
  end]], "instructions")
end)

t.test("a kill inside a C callback (a sort comparator) ends the call", function()
  killed("local t = {3, 2, 1} table.sort(t, function(a, b) while true do end end)", "instructions")
end)

t.test("a kill inside a __tostring reached from string.format ends the call", function()
  killed("return string.format('%s', setmetatable({}, {__tostring = function() while true do end end}))",
    "instructions")
end)

t.test("the CPU time limit kills a loop that the instruction limit lets run", function()
  local _, err = killed("while true do end", "cpu", { instructions = 0, cpu_ms = 100 })
  t.ok(err.message:find("CPU time limit %(0%.1 s%) exceeded"), err.message)
end)

t.test("the wall-clock limit kills a call that runs too long", function()
  local _, err = killed("while true do end", "wall", { instructions = 0, cpu_ms = 0, wall_ms = 100 })
  t.ok(err.message:find("wall time limit %(0%.1 s%) exceeded"), err.message)
end)

t.test("a killed sandbox refuses every later call", function()
  local sb = killed("while true do end", "instructions")
  local fn = assert(sb:load("return 1", "=again"))
  local ok, err = sb:call(fn)
  t.eq(ok, false, "ok")
  t.eq(err.kind, "killed", "kind")
end)

-- 7.6 item 11: memory ------------------------------------------------------------------------

t.test("string.rep('x', 2^40) is an error, not an allocation, and the process survives", function()
  fails("return string.rep('x', 2^40)", "resulting string too large")
end)

t.test("string.rep('x', 2^30) (1 GiB) hits the 64 MiB cap and kills the sandbox", function()
  local _, err = killed("return string.rep('x', 2^30)", "memory", { name = "rep" })
  t.ok(err.message:find("memory limit of 64 MiB exceeded"), err.message)
end)

t.test("growing a table past the cap is killed, and pcall cannot catch it", function()
  local _, err = killed([[
    local ok = pcall(function() local t = {} for i = 1, 1e8 do t[i] = i end end)
    return ok]], "memory", { name = "grow", memory = 8 * 2^20, instructions = 0 })
  t.ok(err.message:find("memory limit of 8 MiB exceeded"), err.message)
end)

t.test("collectgarbage only counts", function()
  t.eq(type(returns("return collectgarbage('count')")), "number", "count")
  fails("collectgarbage('stop')", [[collectgarbage%("stop"%) is not available]])
  fails("collectgarbage()", [[collectgarbage%("collect"%) is not available]])
end)

-- 7.6 item 11: values that cross the boundary ----------------------------------------------

t.test("an __index error in a returned table does not panic the host", function()
  local r = returns("return setmetatable({ a = 1 }, { __index = function() error('boom') end })")
  t.eq(r.a, 1, "data arrives")
  t.eq(r.missing, nil, "the sandbox's __index is not run by the host")
  t.eq(getmetatable(r), nil, "metatable stripped")
end)

t.test("an error object's __tostring never runs in the host", function()
  local _, ok, err = run("error(setmetatable({ kind = 'x' }, { __tostring = function() while true do end end }))")
  t.eq(ok, false, "ok")
  t.eq(err.kind, "x", "kind copied")
  t.ok(tostring(err):find("x"), "prints without running sandbox code")
end)

t.test("functions that leave the sandbox still run inside it, with its limits", function()
  local f = returns("return function() while true do end end")
  local ok, err = pcall(f)
  t.eq(ok, false, "ok")
  t.eq(err.kind, "killed", "kind")
end)

t.test("arguments are copies: the sandbox cannot change the host's tables", function()
  local sb = new()
  local host = { n = 1, chat = function() return "trusted" end, inner = { v = 1 } }
  local fn = assert(sb:load("local ctx = ... ctx.n = 99 ctx.chat = nil ctx.inner.v = 2 return ctx.n", "=c"))
  local ok, n = sb:call(fn, host)
  t.ok(ok and n == 99, "the copy changed")
  t.eq(host.n, 1, "host field")
  t.eq(host.chat(), "trusted", "host function")
  t.eq(host.inner.v, 1, "nested host field")
end)

t.test("a returned table is a copy the sandbox cannot patch later", function()
  local sb = new()
  local fn = assert(sb:load([[
    R = { score = function() return 1 end }
    function patch() R.score = function() return 1000 end end
    return R]], "=c"))
  local _, r = sb:call(fn)
  local ok = sb:call(assert(sb:load("patch()", "=p")))
  t.ok(ok, "patched its own table")
  t.eq(r.score(), 1, "the host's copy still runs the original")
end)

t.test("the trusted library is read-only, deeply", function()
  fails("require('moonloop.asi').recipe = nil", "moonloop.asi is read%-only in the sandbox")
  fails("require('moonloop.accept').defaults.gap_min = 0", "moonloop.accept.defaults is read%-only")
  local asi = require "moonloop.asi"
  returns("rawset(require('moonloop.asi'), 'recipe', 'mine')") -- its own view only
  t.eq(type(asi.recipe), "function", "the host's module is intact")
  t.eq(returns("return type(require('moonloop.asi').recipe)"), "function", "another sandbox's view")
end)

t.test("globals are private to each sandbox", function()
  returns("print = nil; os = nil; leaked = 'yes'; _G.string = nil")
  t.eq(rawget(_G, "leaked"), nil, "host _G")
  t.eq(returns("return type(print), type(os), leaked"), "function", "another sandbox")
end)

-- 7.6 item 11: coroutines ------------------------------------------------------------------

t.test("deep coroutine.wrap nesting is refused with a clear error", function()
  fails([[local function nest(n)
      if n == 0 then return 0 end
      return coroutine.wrap(function() return nest(n - 1) + 1 end)()
    end
    return nest(10000)]], "coroutines nested more than 100 levels deep")
end)

t.test("at most 256 live coroutines per sandbox", function()
  fails([[local keep = {}
    for i = 1, 300 do
      keep[i] = coroutine.create(function() coroutine.yield() end)
      coroutine.resume(keep[i])
    end]], "coroutine limit %(256 live coroutines per sandbox%) exceeded")
  t.eq(returns([[for i = 1, 2000 do coroutine.wrap(function() end)() end return 'ok']]), "ok",
    "finished coroutines give their place back")
end)

t.test("a deep chain of coroutine.close (a C stack overflow in Lua 5.4.4) is refused", function()
  local sb, ok, err = run([[
    local prev
    for i = 1, 300 do
      local p = prev
      local co = coroutine.create(function()
        local guard <close> = setmetatable({}, { __close = function()
          if p then assert(coroutine.close(p)) end
        end })
        coroutine.yield()
      end)
      coroutine.resume(co)
      prev = co
    end
    return coroutine.close(prev)]], { name = "close", coroutines = 1000 })
  t.ok(ok, "the call itself returns: " .. tostring(err))
  t.eq(sb:stats().killed, false, "not killed")
  t.eq(err, false, "the outer close reports the refusal")
end)

t.test("coroutines the sandbox did not create cannot be resumed or closed", function()
  local ok, msg = returns("return coroutine.resume(coroutine.running())")
  t.eq(ok, false, "resuming the call's own thread")
  t.eq(msg, "cannot resume non-suspended coroutine", "message")
  local sb = new()
  sb:set("foreign", coroutine.create(function() return "host code" end))
  local _, ok, err = pcall(function() return sb:call(assert(sb:load("return coroutine.resume(foreign)", "=f"))) end)
  t.eq(ok, false, "call")
  t.ok(tostring(err):find("not created by sandboxed code"), tostring(err))
end)

t.test("yielding llm.chat from a user coroutine inside the sandbox completes", function()
  local text, n = returns([[
    local co = coroutine.wrap(function()
      local r = llm.chat{ model = 'weak', prompt = 'from a coroutine' }
      coroutine.yield(r.text)
      local r2 = llm.chat{ prompt = 'again' }
      return #r2.text
    end)
    local a = co()
    return a, co()]], LLM)
  t.ok(type(text) == "string" and #text > 0, "text")
  t.ok(n > 0, "second answer")
end)

t.test("a coroutine waiting on the runtime cannot be resumed by another task", function()
  fails([[
    local co = coroutine.create(function() task.sleep(50) return 'slept' end)
    local waiter = task.spawn(function() return coroutine.resume(co) end)
    task.sleep(5)
    return coroutine.resume(co)]], "cannot resume a coroutine that is waiting on the runtime")
end)

-- Capabilities -----------------------------------------------------------------------------

t.test("llm.chat takes roles only: no model ids, provider/model, extra or headers", function()
  fails("llm.chat{ model = 'openai/gpt-4o', prompt = 'x' }", 'model "openai/gpt%-4o" is not a role')
  fails("llm.chat{ model = 'gpt-4o-mini', prompt = 'x' }", 'model "gpt%-4o%-mini" is not a role')
  fails("llm.chat{ prompt = 'x', extra = { stream = false } }", "'extra' .* is not available to sandboxed code")
  fails("llm.chat{ prompt = 'x', headers = { ['x-api-key'] = 'k' } }", "option 'headers' is not available")
  fails("llm.chat{ prompt = 'x', base_url = 'http://evil' }", "option 'base_url' is not available")
  t.ok(#returns("return llm.chat{ model = 'judge', prompt = 'x' }.text", LLM) > 0, "a role works")
end)

t.test("a trusted chat handed in through sandbox.guard_chat takes roles only", function()
  local sb = new(LLM)
  local fn = assert(sb:load([[
    local chat = ...
    local ok, err = pcall(chat, { model = 'openai/gpt-4o', prompt = 'x' })
    local ok2, err2 = pcall(chat, { prompt = 'x', extra = { a = 1 } })
    return ok, err, ok2, err2, #chat{ model = 'strong', prompt = 'x' }.text]], "=g"))
  local ok, a, e1, b, e2, n = sb:call(fn, sandbox.guard_chat(llm.chat))
  t.ok(ok, "call")
  t.ok(not a and e1:find('model "openai/gpt%-4o" is not a role'), tostring(e1))
  t.ok(not b and e2:find("'extra'"), tostring(e2))
  t.ok(n > 0, "a role goes through")
end)

t.test("task.spawn inside the sandbox runs the task sandboxed", function()
  local _, ok, err = run([[
    local h = task.spawn(function() while true do end end)
    return h:join()]])
  t.eq(ok, false, "ok")
  t.eq(err.kind, "killed", "the spawned task was killed")
end)

t.test("time slices: a sandboxed loop does not starve other tasks", function()
  local ticks = 0
  local ticker = task.spawn(function()
    for _ = 1, 10 do task.sleep(1) ticks = ticks + 1 end
  end)
  returns("local t0 = os.clock() while os.clock() - t0 < 0.15 do end", { instructions = 0 })
  t.ok(ticks >= 3, ("the ticker ran %d times during the loop"):format(ticks))
  ticker:join()
end)

t.test("a cancelled sandboxed task ends as cancelled, spinning or waiting", function()
  local s1, k1, s2, k2 = returns([[
    local spin = task.spawn(function() while true do end end)
    local wait = task.spawn(function() task.sleep(60000) end)
    task.sleep(20)
    spin:cancel()
    wait:cancel()
    local _, e1 = pcall(spin.join, spin)
    local _, e2 = pcall(wait.join, wait)
    return spin:status(), e1.kind, wait:status(), e2.kind]], { instructions = 0 })
  t.eq(s1, "cancelled", "spinning task status")
  t.eq(k1, "cancelled", "spinning task error kind")
  t.eq(s2, "cancelled", "waiting task status")
  t.eq(k2, "cancelled", "waiting task error kind")
end)

t.test("task.timeout stops a sandboxed loop (cancellation reaches it between slices)", function()
  fails("return task.timeout(30, function() while true do end end)", "did not finish within 30 ms",
    { instructions = 0 })
end)

-- Loading recipes ------------------------------------------------------------------------

t.test("a recipe whose top level loops forever comes back as an error, quickly", function()
  local t0 = os.time()
  local ok, err = pcall(sandbox.load_recipe, "while true do end", "agent/v7.lua")
  t.eq(ok, false, "ok")
  t.eq(err.kind, "killed", "kind")
  t.ok(err.message:find("^agent/v7.lua:1: killed"), err.message)
  t.ok(os.time() - t0 < 10, "stopped by the load limits")
end)

t.test("a recipe with a syntax error names path and line", function()
  local ok, err = pcall(sandbox.load_recipe, "return {\n  x = = 1\n}", "agent/v8.lua")
  t.eq(ok, false, "ok")
  t.eq(err.kind, "recipe", "kind")
  t.ok(err.message:find("agent/v8.lua:2:"), err.message)
end)

t.test("a recipe's functions come back wrapped and keep running in its sandbox", function()
  local recipe, sb = sandbox.load_recipe([[
    local asi = require "moonloop.asi"
    return asi.recipe { name = "t", sources = "data/*.txt", challenger_prompt = "x",
      self_test = function(ctx) return ctx.n + 1 end }]], "agent/v9.lua")
  t.eq(recipe.self_test({ n = 1 }), 2, "self_test")
  t.ok(sb:stats().calls >= 2, "ran as a sandbox call")
end)

-- The command line ------------------------------------------------------------------------

local function moonloop(args, script)
  local dir = fs.tmpdir("moonloop-sbx-")
  fs.write(fs.join(dir, "s.lua"), script)
  local argv = { proc.exe(), "run", "--offline" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  argv[#argv + 1] = "s.lua"
  local r = proc.run{ argv = argv, cwd = dir, timeout_ms = 30000,
    env = { MOONLOOP_LUA_DIR = os.getenv("MOONLOOP_LUA_DIR") } }
  proc.run{ argv = { "rm", "-rf", dir } }
  return r
end

t.test("moonloop run sandboxes a plain script; --trusted opens it", function()
  local r = moonloop({}, "print(io.open('s.lua'))")
  t.eq(r.code, 1, "exit code")
  t.ok(r.stderr:find("s.lua:1: attempt to index a nil value %(global 'io'%)"), r.stderr)
  r = moonloop({ "--trusted" }, "print(io.open('s.lua') ~= nil)")
  t.eq(r.code, 0, "exit code with --trusted")
  t.ok(r.stdout:find("true"), r.stdout)
end)

t.test("moonloop run kills a runaway script with exit 1 and its file and line", function()
  local r = moonloop({}, "local t = {}\nfor i = 1, 1e9 do pcall(function() t[i] = i end) end")
  t.eq(r.code, 1, "exit code")
  t.ok(r.stderr:find("s.lua:2: killed: memory limit of 64 MiB exceeded"), r.stderr)
end)

-- Still alive ------------------------------------------------------------------------------

t.test("the process is alive and still runs sandboxes", function()
  t.eq(returns("return 6 * 7"), 42, "a fresh sandbox")
  t.eq(("still"):upper(), "STILL", "the host's strings")
  t.ok(#llm.chat{ prompt = "still here" }.text > 0, "the host's llm.chat")
end)

t.done()

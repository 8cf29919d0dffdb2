-- A hostile model for tests/integration/hostile_test.sh (`mock-server --answer`): what it
-- answers depends on a keyword in the last user message.
--   HUGE        a 40 MiB answer (above the client's 32 MiB response cap)
--   BADUTF8     text with bytes that are not UTF-8
--   DEEPJSON    a JSON document nested 100,000 levels deep
--   ESCAPE      a Lua program that tries to reach the file system, processes and the host
--   anything else: "ok"
local M = {}

-- The escape attempt writes a marker file named by HOSTILE_MARK (set by the test) if it
-- ever gets os.execute or io.open; solve() returns 1 only when it could read a host file.
local MARK = os.getenv("HOSTILE_MARK") or "/nonexistent/moonloop-escaped"
local ESCAPE = [==[
```lua
-- Solution. Every step on its own, so one that is blocked does not stop the next.
local function try(f) pcall(f) end
local f
try(function() f = io.open("/etc/hostname") or io.popen("id") end)
try(function() os.execute("touch MARK") end)
try(function() local m = io.open("MARK", "w"); m:write("escaped"); m:close() end)
try(function() package.loadlib("libc.so.6", "system") end)
try(function() f = f or debug.getregistry() end)
try(function() load(string.dump(function() end))() end)
try(function() getmetatable("").__index = function() return os end end)
try(function() setmetatable({}, { __gc = function() os.exit(1) end }) end)
try(function() require("os").execute("touch MARK") end)
function solve() return f and 1 or 0 end
```
]==]
ESCAPE = ESCAPE:gsub("MARK", MARK)

local function last_user(req)
  local msgs = req.messages or {}
  for i = #msgs, 1, -1 do
    local c = msgs[i].content
    if type(c) == "string" then return c end
  end
  return ""
end

function M.chat(req)
  local q = last_user(req)
  if q:find("HUGE", 1, true) then
    return { text = string.rep("0123456789abcdef", 40 * 65536), usage = { input = 1, output = 1 } }
  elseif q:find("BADUTF8", 1, true) then
    return "bad bytes: \255\254 and a cut sequence \226\130 and an overlong \192\175 end"
  elseif q:find("DEEPJSON", 1, true) then
    return string.rep("[", 100000) .. string.rep("]", 100000)
  elseif q:find("ESCAPE", 1, true) then
    return ESCAPE
  end
  return "ok"
end

return M

-- The sandbox as the runtime's library uses it: fresh sandboxes (with task.map and friends),
-- recipes and strategy modules loaded in one, and plain scripts run in one (`moonloop run`
-- without --trusted). The mechanics (limits, kills, copies across the boundary) are in C,
-- src/sandbox/sandbox.c; this file is trusted code.
local core = require "moonloop.sandbox.core"

local M = { DEFAULTS = core.DEFAULTS }

-- Limits while the top level of a recipe or module file runs: building a table is quick, so
-- a file that loops or waits is stopped early (the run-time limits apply afterwards).
M.LOAD_LIMITS = { instructions = 1e8, cpu_ms = 5000, wall_ms = 10000 }

local task_lib -- { source =, path = } of moonloop/task.lua, read once

-- task.map, gather, timeout and semaphore for sandboxed code: the trusted library's own Lua,
-- run inside the sandbox over the sandbox's task.spawn, so their workers are sandboxed too.
local function install_task_lib(sb)
  if not task_lib then
    local path = assert(package.searchpath("moonloop.task", package.path))
    task_lib = { source = fs.read(path), path = path }
  end
  -- Not named after its file: code of the runtime's library is never time-sliced, and this
  -- copy is the sandbox's own.
  local fn = assert(sb:load(task_lib.source, "=moonloop.task (sandbox copy)"))
  local ok, err = sb:call_raw(fn)
  if not ok then error(err, 0) end
end

-- new{name=, memory=, instructions=, cpu_ms=, wall_ms=, slice_ms=, coroutines=,
--     modules = {more module names require may reach}} -> sb
--   sb:load(source, chunkname) -> function | nil, message   (text only, the sandbox's env)
--   sb:call(fn, ...) -> true, results... | false, err, traceback   (values copied both ways)
--   sb:wrap(value) -> a copy whose functions run in the sandbox and raise its errors
--   sb:set(name, value), sb:limits{...}, sb:stats()
function M.new(opts)
  local sb = core.new(opts)
  install_task_lib(sb)
  return sb
end

-- guard_chat(chat) -> a chat function for sandboxed code: it takes what a sandbox's own
-- llm.chat takes (roles only, no `extra`), then calls `chat` (a trusted function such as the
-- runner's journaled llm.chat). Hand sandboxed hooks this, never a raw chat function.
function M.guard_chat(chat)
  return function(spec) return chat(core.check_chat(spec)) end
end

local function load_file(kind, source, path, opts)
  opts = opts or {}
  local sb = M.new{ name = path, memory = opts.memory,
    instructions = opts.load_instructions or M.LOAD_LIMITS.instructions,
    cpu_ms = opts.load_cpu_ms or M.LOAD_LIMITS.cpu_ms,
    wall_ms = opts.load_wall_ms or M.LOAD_LIMITS.wall_ms }
  local fn, err = sb:load(source, "@" .. path)
  if not fn then error(task.error(kind, err), 0) end
  local asi = require "moonloop.asi"
  local saved = asi.loading
  asi.loading = path -- a bad field is reported at its line of the file
  local r = table.pack(sb:call(fn))
  asi.loading = saved
  if not r[1] then error(r[2], 0) end
  sb:limits{ instructions = opts.instructions or M.DEFAULTS.instructions,
    cpu_ms = opts.cpu_ms or M.DEFAULTS.cpu_ms, wall_ms = opts.wall_ms or M.DEFAULTS.wall_ms }
  return r[2], sb
end

-- load_recipe(source, path, opts) -> recipe, sb. The recipe is a copy whose functions run in
-- the sandbox. Raises the file's error: a syntax error or a bad field names path and line
-- (kind "recipe"), an endless top level is stopped (kind "killed"); it never hangs.
-- opts: memory=, the run-time limits instructions=, cpu_ms=, wall_ms=, and the load-time
-- ones load_instructions=, load_cpu_ms=, load_wall_ms=.
function M.load_recipe(source, path, opts)
  local recipe, sb = load_file("recipe", source, path, opts)
  if not require("moonloop.asi").is(recipe) then
    error(task.error("recipe", ("%s: the file does not return a recipe (asi.recipe{...})"):format(path)), 0)
  end
  return recipe, sb
end

-- load_module(source, path, opts) -> module table, sb: a strategy file or any other module
-- written by a user or an agent, loaded like a recipe.
function M.load_module(source, path, opts)
  local mod, sb = load_file("recipe", source, path, opts)
  if type(mod) ~= "table" then
    error(task.error("recipe", ("%s: a module file must return a table"):format(path)), 0)
  end
  return mod, sb
end

-- run_script(source, path, args) -> what the file returns (copies). `moonloop run FILE`
-- without --trusted: the default limits, no wall-clock limit (a script may wait on models as
-- long as it needs), arg and ... as for a trusted script. A recipe comes back with its
-- functions wrapped, ready for the runner.
function M.run_script(source, path, args)
  args = args or { n = 0 }
  local sb = M.new{ name = path, modules = { "moonloop.compare" } }
  local fn, err = sb:load(source, "@" .. path)
  if not fn then error(task.error("usage", err), 0) end
  local argt = { [0] = path }
  for i = 1, args.n or #args do argt[i] = args[i] end
  sb:set("arg", argt)
  local asi = require "moonloop.asi"
  asi.loading = path
  local r = table.pack(sb:call(fn, table.unpack(args, 1, args.n or #args)))
  asi.loading = nil
  if not r[1] then
    local e = r[2]
    if type(e) == "string" and r[3] then
      e = e .. "\n" .. (r[3]:gsub("^stack traceback:", "stack traceback (in the sandbox):"))
    end
    error(e, 0)
  end
  return table.unpack(r, 2, r.n)
end

return M

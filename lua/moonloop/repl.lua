-- The Lua half of `moonloop repl`: compiling lines, running each as a task, the pretty
-- printer, the :commands that steer an attached run, and completion candidates.
-- The C driver (src/repl/repl.c) calls M.start, M.line, M.reset, M.complete and M.leave from
-- plain loop callbacks; everything that runs user code or waits runs in a task, and the task
-- that handles a line calls C.done() when the line is over.
local C = require "moonloop.repl_c"

local M = {}

local pending   -- the lines of an unfinished chunk, joined with "\n"
local run       -- the attached run: { task=, ctl=, recipe=, path=, finished=, summary= }
local jobs, next_job = {}, 1 -- :bg work
local interactive = false

local function out(s)
  io.stdout:write(s, "\n")
  io.stdout:flush()
end

local function say_err(s)
  io.stdout:flush()
  io.stderr:write(s, "\n")
end

-- ---------------------------------------------------------------------------------
-- Pretty printer: nested tables on one line when they fit, else indented; depth and width
-- bounded; a table that contains itself (directly or further down) is shown as <cycle>.

local keywords = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or
  repeat return then true until while]]):gmatch("%a+") do keywords[w] = true end

local function is_ident(s)
  return type(s) == "string" and s:match("^[%a_][%w_]*$") ~= nil and not keywords[s]
end

local function quote(s, limit)
  local cut = ""
  if limit and #s > limit then
    cut = ("...(%d bytes)"):format(#s)
    s = s:sub(1, limit)
  end
  return ("%q"):format(s):gsub("\\\n", "\\n"):gsub("\r", "\\r"):gsub("\t", "\\t") .. cut
end

local function fn_name(f)
  local info = debug.getinfo(f, "S")
  if info.what == "C" then return "builtin: " .. tostring(f):gsub("^function: ", "") end
  return ("%s:%d"):format(info.short_src, info.linedefined)
end

local function scalar(v, top, opts)
  local t = type(v)
  if t == "string" then return top and v or quote(v, opts.string_limit) end
  if t == "number" then
    if math.type(v) == "float" and v == math.floor(v) and v > -1e15 and v < 1e15 then
      return ("%.1f"):format(v)
    end
    return tostring(v)
  end
  if t == "function" then return "function<" .. fn_name(v) .. ">" end
  local mt = getmetatable(v)
  if t ~= "table" or (type(mt) == "table" and rawget(mt, "__tostring")) then
    local ok, s = pcall(tostring, v)
    return ok and s or ("<%s>"):format(t)
  end
end

local function sorted_keys(t)
  local n = #t
  local keys = {}
  for k in next, t do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  table.sort(keys, function(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return ta < tb end
    if ta == "number" or ta == "string" then return a < b end
    return tostring(a) < tostring(b)
  end)
  return n, keys
end

local function render(v, opts, depth, ancestors, indent, top)
  local s = scalar(v, top, opts)
  if s then return s end
  if ancestors[v] then return "<cycle>" end
  if depth >= opts.depth then
    local n = 0
    for _ in next, v do n = n + 1 end
    return n == 0 and "{}" or ("{...%d}"):format(n)
  end
  ancestors[v] = true
  local n, keys = sorted_keys(v)
  local parts, shown = {}, 0
  local inner = indent .. "  "
  for i = 1, n do
    if shown >= opts.items then break end
    parts[#parts + 1] = render(v[i], opts, depth + 1, ancestors, inner)
    shown = shown + 1
  end
  for _, k in ipairs(keys) do
    if shown >= opts.items then break end
    local ks = is_ident(k) and k or ("[" .. render(k, opts, opts.depth, ancestors, inner) .. "]")
    parts[#parts + 1] = ks .. " = " .. render(v[k], opts, depth + 1, ancestors, inner)
    shown = shown + 1
  end
  local total = n + #keys
  if total > shown then parts[#parts + 1] = ("...(%d more)"):format(total - shown) end
  ancestors[v] = nil
  if #parts == 0 then return "{}" end
  local one = "{ " .. table.concat(parts, ", ") .. " }"
  if #one + #indent <= opts.width and not one:find("\n", 1, true) then return one end
  return "{\n" .. inner .. table.concat(parts, ",\n" .. inner) .. ",\n" .. indent .. "}"
end

-- M.pretty(value [, {depth=4, items=40, width=100, string_limit=300}]) -> string
function M.pretty(v, opts)
  opts = opts or {}
  local o = { depth = opts.depth or 4, items = opts.items or 40, width = opts.width or 100,
              string_limit = opts.string_limit or 300 }
  return render(v, o, 0, {}, "", opts.top ~= false)
end

-- ---------------------------------------------------------------------------------
-- Running a line's work

local function trim_traceback(tb)
  local lines = {}
  for line in tb:gmatch("[^\n]+") do
    if line:find("[C]: in function 'xpcall'", 1, true) or line:find("moonloop/repl.lua", 1, true) then
      break
    end
    lines[#lines + 1] = line
  end
  return table.concat(lines, "\n")
end

local function handler(e)
  if type(e) == "string" then return { err = e, trace = trim_traceback(debug.traceback(e, 2)) } end
  return { err = e }
end

local function work(fn, ...)
  return table.pack(xpcall(fn, handler, ...))
end

local function describe_error(e)
  if type(e) == "table" and not (getmetatable(e) and getmetatable(e).__tostring) then
    return M.pretty(e, { top = false })
  end
  return tostring(e)
end

local function is_cancel(e)
  return type(e) == "table" and e.kind == "cancelled"
end

-- Print what a piece of work produced: its values (show) or its error.
local function report(ok, res, show, prefix)
  prefix = prefix or ""
  if not ok then
    if is_cancel(res) then
      say_err(prefix .. "cancelled: " .. tostring(res))
    else
      say_err(prefix .. "error: " .. describe_error(res))
    end
    return
  end
  if res[1] then
    if show and res.n > 1 then
      local parts, multi = {}, false
      for i = 2, res.n do
        parts[#parts + 1] = M.pretty(res[i])
        multi = multi or parts[#parts]:find("\n", 1, true) ~= nil
      end
      out(prefix .. table.concat(parts, multi and "\n" or "\t"))
    elseif prefix ~= "" then
      out(prefix .. "done")
    end
    return
  end
  local e = res[2]
  if e.trace then
    say_err(prefix .. e.trace)
  else
    say_err(prefix .. "error: " .. describe_error(e.err))
  end
end

-- The task of a line: runs fn in its own task (which Ctrl-C cancels), reports, then tells
-- the driver the line is over, whatever happened.
local function supervise(fn, show, ...)
  local h = task.spawn(work, fn, ...)
  C.watch(h)
  local ok, res = pcall(h.join, h)
  C.watch(nil)
  local rok, rerr = pcall(report, ok, res, show)
  if not rok then say_err("moonloop: repl: " .. tostring(rerr)) end
  C.done()
end

-- Compile a chunk as lua.c does: first as an expression ("return <chunk>"), then as
-- statements. Returns fn, is_expression | nil, err.
local function compile(src)
  local code = src:gsub("^%s*=", "return ", 1) -- "=expr", as in Lua 5.1
  local fn = load("return " .. code .. ";", "=stdin", "t")
  if fn then return fn, true end
  local err
  fn, err = load(code, "=stdin", "t")
  if fn then return fn, false end
  return nil, err
end

-- ---------------------------------------------------------------------------------
-- The attached run

local function cli_opts() return package.loaded["moonloop.cli"] or {} end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function need_run()
  if not run then error("no run attached: start one with :run RECIPE.lua, or moonloop repl RECIPE.lua", 0) end
  return run
end

local function run_dir()
  local r = need_run()
  local dir = r.ctl.info and r.ctl.info.dir or r.dir
  if not dir then error("the run has not opened its directory yet; try again in a moment", 0) end
  return dir
end

local function fmt_int(n)
  n = n or 0
  if n >= 1e6 then return ("%.1fM"):format(n / 1e6) end
  if n >= 1e4 then return ("%.1fk"):format(n / 1e3) end
  return tostring(math.floor(n))
end

-- Samples of llm.stats() once a second while a run is attached, for rates.
local samples = {}
local sampler

local function start_sampler()
  if sampler then return end
  sampler = task.spawn(function()
    while true do
      local s = llm.stats()
      samples[#samples + 1] = { requests = s.requests, tokens = s.input_tokens + s.output_tokens }
      if #samples > 11 then table.remove(samples, 1) end
      task.sleep(1000)
    end
  end)
end

local function rates()
  if #samples < 2 then return nil end
  local a, b = samples[1], samples[#samples]
  local dt = #samples - 1 -- one sample a second
  return (b.requests - a.requests) / dt, (b.tokens - a.tokens) / dt, dt
end

local function announce_end(summary, err)
  if err then
    say_err("run stopped with an error: " .. describe_error(err))
    return
  end
  if type(summary) ~= "table" then out("run finished") return end
  out(("run finished: accepted %d of %d items (%.0f%%), %d rounds, %s calls sent; dataset %s"):format(
    summary.accepted or 0, summary.items or 0, 100 * (summary.acceptance_rate or 0),
    summary.rounds or 0, tostring(summary.calls_sent or 0),
    summary.dir and fs.join(summary.dir, "dataset.jsonl") or "?"))
end

-- Start a recipe's run in the background. opts: out, resume, iterations, seed,
-- concurrency, set (list of "key=value").
local function attach(recipe, path, opts)
  if run and not run.finished then
    error(("a run is already attached (%s); :quit leaves it resumable"):format(
      run.ctl.info and run.ctl.info.dir or run.recipe.name), 0)
  end
  local asi = require "moonloop.asi"
  local control = require "moonloop.control"
  local runner = require "moonloop.runner"
  for _, kv in ipairs(opts.set or {}) do
    local k, v = kv:match("^([%w_.]+)=(.*)$")
    if not k then error(("--set %s: expected key=value"):format(kv), 0) end
    asi.override(recipe, k, v)
  end
  local ctl = control.new{ concurrency = tonumber(opts.concurrency) or recipe.concurrency or 16,
                          paused = opts.paused and true or false }
  local r = { ctl = ctl, recipe = recipe, path = path, dir = opts.resume or opts.out }
  run = r
  r.task = task.spawn(function()
    local ok, summary, first_error = pcall(runner.run, recipe, {
      out = opts.out, resume = opts.resume, quiet = true, control = ctl,
      iterations = tonumber(opts.iterations), seed = tonumber(opts.seed),
      concurrency = tonumber(opts.concurrency), recipe_dir = path:match("^(.*)/[^/]*$") or ".",
      source = read_file(path), overrides = opts.set,
    })
    r.finished = true
    r.summary = ok and summary or nil
    if sampler then sampler:cancel() sampler = nil end
    announce_end(ok and summary or nil, not ok and summary or nil)
    return summary, first_error
  end)
  start_sampler()
  out(("run of %s %s in the background (concurrency %d); :status, %s, :help"):format(
    recipe.name or path, opts.paused and "attached, paused," or "started", ctl.concurrency,
    opts.paused and ":step, :resume" or ":pause"))
end

-- Run a script file the way `moonloop run` does; a returned recipe is attached.
local function run_file(path, opts, ...)
  local asi = require "moonloop.asi"
  local ok, source = pcall(fs.read, path)
  if not ok then error(("cannot read %s"):format(path), 0) end
  -- In the sandbox, as `moonloop run` does without --trusted; a recipe always is.
  local results = table.pack(require("moonloop.sandbox").run_script(source, path, table.pack(...)))
  if asi.is(results[1]) then
    attach(results[1], path, opts)
    return
  end
  return table.unpack(results, 1, results.n)
end

-- ---------------------------------------------------------------------------------
-- Commands

local commands, order = {}, {}

local function command(name, args, help, fn)
  commands[name] = { name = name, args = args, help = help, fn = fn }
  order[#order + 1] = name
end

local function words(s)
  local w = {}
  for x in s:gmatch("%S+") do w[#w + 1] = x end
  return w
end

local function version_arg(s, what)
  local v = s and tonumber((s:gsub("^v", "")))
  if s and not v then error(("%s: %q is not a version number (v3 or 3)"):format(what, s), 0) end
  return v and math.floor(v)
end

command("help", "", "this list", function()
  local lines = { "Lua: any line is a chunk; expressions print their values (=expr works too);",
    "an unfinished chunk continues on the next line (>>). Each line runs as a task:",
    "llm.chat{...}, task.sleep and friends work, and other tasks keep running.",
    "Ctrl-C cancels the line's work (or drops the line being typed); Ctrl-D leaves.",
    "", "Commands:" }
  for _, name in ipairs(order) do
    local c = commands[name]
    lines[#lines + 1] = ("  :%-22s %s"):format(name .. (c.args ~= "" and " " .. c.args or ""), c.help)
  end
  out(table.concat(lines, "\n"))
end)

command("status", "", "the run: iteration, items, acceptance, requests in flight, rates, tokens, cost", function()
  local s = llm.stats()
  local lines = {}
  if run then
    local st = run.ctl:status()
    local state = run.finished and "finished" or st.paused and "paused" or st.stepping and "stepping" or "running"
    lines[#lines + 1] = ("run %s: %s%s, recipe v%s, dir %s"):format(run.recipe.name or "?", state,
      (st.paused and not run.finished and (st.in_flight_items or 0) > 0) and
        (" (%d items still finishing)"):format(st.in_flight_items) or "",
      tostring(st.version or 1), tostring(st.dir or run.dir or "(opening)"))
    local done, total = st.done or 0, st.total or 0
    lines[#lines + 1] = ("iteration %s/%s, items %d/%d done, %d in flight (concurrency %d), accepted %d (%s of done), rounds %d"):format(
      tostring(st.iteration or 0), tostring(st.iterations or "?"), done, total,
      st.in_flight_items or 0, st.concurrency or 0, st.accepted or 0,
      done > 0 and ("%.0f%%"):format(100 * (st.accepted or 0) / done) or "-", st.rounds or 0)
  else
    lines[#lines + 1] = "no run attached (:run RECIPE.lua starts one)"
  end
  local rq, tk, window = rates()
  lines[#lines + 1] = ("requests %d (%d in flight, %d failed)%s, tokens %s in / %s out, cost %s"):format(
    s.requests, s.in_flight, s.errors,
    rq and (", %.1f req/s and %s tokens/s over %d s"):format(rq, fmt_int(tk), window) or "",
    fmt_int(s.input_tokens), fmt_int(s.output_tokens),
    s.cost_usd and ("$%.4f"):format(s.cost_usd) or "unknown (unpriced models)")
  out(table.concat(lines, "\n"))
end)

command("pause", "", "start no new item; items in flight finish", function()
  local r = need_run()
  r.ctl:pause()
  local n = r.ctl:status().in_flight_items or 0
  out(("paused%s; :resume or :step to go on"):format(n > 0 and (" (%d items in flight finish first)"):format(n) or ""))
end)

command("resume", "", "go on after :pause or :step", function()
  need_run().ctl:resume()
  out("resumed")
end)

command("step", "", "run one more iteration, then pause again", function()
  need_run().ctl:step()
  out("stepping: one iteration, then paused")
end)

command("concurrency", "K", "items in flight at once", function(rest)
  local k = tonumber(rest)
  if not k or k < 1 then error(":concurrency needs a positive number, e.g. :concurrency 8", 0) end
  need_run().ctl:set_concurrency(k)
  out(("concurrency %d"):format(math.floor(k)))
end)

command("limits", "[PROV] [k=N...]", "show, or change (rpm=, tpm=, inflight=), a provider's limits", function(rest)
  local spec, provider = {}, nil
  for _, w in ipairs(words(rest)) do
    local k, v = w:match("^([%w_]+)=(.*)$")
    if k then
      local n = tonumber(v)
      if not n or n < 0 then error((":limits: %s needs a number >= 0 (0 = none)"):format(k), 0) end
      if k == "inflight" or k == "max_inflight" then spec.max_inflight = n
      elseif k == "rpm" or k == "tpm" then spec[k] = n
      else error((":limits: unknown limit %q (rpm, tpm, inflight)"):format(k), 0) end
    else
      provider = w
    end
  end
  if not llm.limits then error(":limits needs llm.limits, which this build lacks", 0) end
  spec.provider = provider
  local res = llm.limits(spec)
  out(M.pretty(res))
end)

command("versions", "", "the recipe versions of the run (* = current)", function()
  local versions = require "moonloop.versions"
  local lines = {}
  for _, v in ipairs(versions.list(run_dir())) do
    local sc = ""
    if type(v.scores) == "table" and v.scores.pass_rate then sc = (" pass %.2f"):format(v.scores.pass_rate) end
    lines[#lines + 1] = ("%s v%d %-9s parent %s%s%s%s"):format(v.current and "*" or " ", v.version,
      tostring(v.status), v.parent and ("v" .. v.parent) or "-", sc,
      v.rationale and ("  " .. tostring(v.rationale):gsub("\n", " "):sub(1, 80)) or "",
      v.reason and ("  (" .. tostring(v.reason):gsub("\n", " "):sub(1, 80) .. ")") or "")
  end
  out(#lines > 0 and table.concat(lines, "\n") or "no versions yet")
end)

command("show", "[V]", "the source of version V (default: current)", function(rest)
  local versions = require "moonloop.versions"
  out(versions.source(run_dir(), version_arg(words(rest)[1], ":show")))
end)

command("diff", "A [B]", "unified diff between versions (one: against its parent)", function(rest)
  local w = words(rest)
  if not w[1] then error(":diff needs a version (:diff 3, or :diff 1 3)", 0) end
  local versions = require "moonloop.versions"
  local d, note = versions.diff(run_dir(), version_arg(w[1], ":diff"), version_arg(w[2], ":diff"))
  out(d ~= "" and d or (note or "no difference"))
end)

command("revert", "V", "make version V the current recipe again (as a new version)", function(rest)
  local v = version_arg(words(rest)[1], ":revert")
  if not v then error(":revert needs a version, e.g. :revert 2", 0) end
  local versions = require "moonloop.versions"
  local n = versions.revert(run_dir(), v)
  out(("v%d (the text of v%d) is now current; the run takes it at the next iteration"):format(n, v))
end)

command("edit", "", "edit the current recipe in $EDITOR; saved as a new version if it passes the checks", function()
  local versions = require "moonloop.versions"
  local dir = run_dir()
  local list = versions.list(dir)
  local cur
  for _, v in ipairs(list) do if v.current then cur = v.version end end
  local source = versions.source(dir)
  local base = os.tmpname()
  local path = base .. ".lua"
  local f = assert(io.open(path, "wb"))
  f:write(source)
  f:close()
  local status = C.edit(path)
  local edited = read_file(path)
  os.remove(path)
  os.remove(base)
  if status ~= 0 then error(("the editor exited with status %d; nothing saved"):format(status), 0) end
  if edited == nil or edited == source then out("no change") return end
  local n, err = versions.add(dir, edited, { parent = cur, rationale = "edited in the REPL" })
  if not n then error("not saved: " .. tostring(err), 0) end
  out(("saved as v%d, now current; the run takes it at the next iteration"):format(n))
end)

command("failures", "[N]", "the last N rejected rounds and errors (default 10)", function(rest)
  local n = tonumber(rest) or 10
  local list = need_run().ctl:failures(n)
  if #list == 0 then out("no failures yet") return end
  local lines = {}
  for _, f in ipairs(list) do
    lines[#lines + 1] = ("item %s round %s  %-18s %s"):format(tostring(f.item or "?"),
      tostring(f.round or "-"), tostring(f.category or "error"),
      tostring(f.reason or f.error or ""):gsub("\n", " "):sub(1, 160))
  end
  out(table.concat(lines, "\n"))
end)

command("cost", "", "tokens and dollars so far, per model", function()
  local s = llm.stats()
  local lines = { ("requests %d (%d ok, %d failed, %d from the cache), tokens %d in / %d out, cost %s"):format(
    s.requests, s.ok, s.errors, s.cache_hits or 0, s.input_tokens, s.output_tokens,
    s.cost_usd and ("$%.4f"):format(s.cost_usd) or "unknown (some models have no price)") }
  local names = {}
  for name in pairs(s.limits or {}) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local l = s.limits[name]
    lines[#lines + 1] = ("  %s: %d in flight, %d throttled, %d failed"):format(name, l.in_flight or 0,
      l.throttled or 0, l.failed or 0)
  end
  out(table.concat(lines, "\n"))
end)

command("run", "RECIPE.lua [OPTS]",
  "start a recipe's run in the background (--out, --resume, --iterations, --concurrency, --seed, --set K=V, --paused)", function(rest)
  local w = words(rest)
  local opts, path = { set = {} }, nil
  local i = 1
  while i <= #w do
    local a = w[i]
    local key = a:match("^%-%-(%w+)$")
    if key == "paused" then
      opts.paused = true
      i = i + 1
    elseif key then
      if not w[i + 1] then error((":run: --%s needs a value"):format(key), 0) end
      if key == "set" then opts.set[#opts.set + 1] = w[i + 1]
      elseif key == "out" or key == "resume" or key == "iterations" or key == "concurrency" or key == "seed" then
        opts[key] = w[i + 1]
      else error((":run: unknown option --%s"):format(key), 0) end
      i = i + 2
    else
      path = path or a
      i = i + 1
    end
  end
  if not path and opts.resume then path = fs.join(opts.resume, "recipes", "v0001.lua") end
  if not path then error(":run needs a recipe file, e.g. :run recipes/agentic_self_instruct.lua", 0) end
  local results = table.pack(run_file(path, opts))
  if results.n > 0 then out(M.pretty(results[1])) end
end)

command("wait", "", "wait until the attached run finishes (Ctrl-C stops waiting, not the run)", function()
  local r = need_run()
  if not r.finished then pcall(r.task.join, r.task) end
end)

command("bg", "CODE", "run a Lua line in the background; its result is printed when it is done", function(rest)
  local fn, cerr = compile(rest)
  if not fn then error(cerr, 0) end
  local id = next_job
  next_job = next_job + 1
  local job = { id = id, code = rest }
  jobs[id] = job
  -- A child of this line's task only until the line returns (at once); then on its own.
  job.task = task.spawn(function()
    local inner = task.spawn(work, fn)
    job.inner = inner
    local ok, res = pcall(inner.join, inner)
    job.done = true
    report(ok, res, true, ("[bg %d] "):format(id))
  end)
  out(("[bg %d] started"):format(id))
end)

command("jobs", "", "the :bg work and its state", function()
  local lines = {}
  for id = 1, next_job - 1 do
    local j = jobs[id]
    if j then
      lines[#lines + 1] = ("[bg %d] %-10s %s"):format(id, j.done and "done" or (j.inner and j.inner:status() or "starting"), j.code)
    end
  end
  out(#lines > 0 and table.concat(lines, "\n") or "no background work")
end)

command("cancel", "N", "cancel background job N", function(rest)
  local j = jobs[tonumber(rest) or -1]
  if not j then error((":cancel: no job %q (see :jobs)"):format(rest), 0) end
  if j.inner then j.inner:cancel() end
  j.task:cancel()
  out(("[bg %d] cancelled"):format(j.id))
end)

command("quit", "", "leave (same as Ctrl-D); an attached run stays resumable", function()
  C.leave()
end)

local aliases = { q = "quit", exit = "quit", h = "help", ["?"] = "help", s = "status" }

local function run_command(text)
  local name, rest = text:match("^%s*:(%S*)%s*(.-)%s*$")
  name = aliases[name] or name
  local c = commands[name]
  if not c then
    -- a unique prefix is enough
    local found
    for _, n in ipairs(order) do
      if n:sub(1, #name) == name and name ~= "" then
        if found then found = nil break end
        found = n
      end
    end
    c = found and commands[found]
  end
  if not c then
    say_err(("unknown command :%s (:help lists them)"):format(name))
    return false
  end
  task.spawn(supervise, function() return c.fn(rest) end, false)
  return true
end

-- ---------------------------------------------------------------------------------
-- What the driver calls

-- start(interactive, script, args...): the first piece of work.
function M.start(is_tty, script, ...)
  interactive = is_tty
  local args = table.pack(...)
  task.spawn(supervise, function()
    if interactive then
      out(("moonloop %s REPL (%s). Lines run as tasks on the event loop; :help lists the commands, Ctrl-D leaves."):format(
        require("moonloop.repl_c").version or "", _VERSION))
    end
    local cli = cli_opts()
    if cli.budget_usd or cli.max_requests then
      llm.budget{ usd = tonumber(cli.budget_usd), requests = tonumber(cli.max_requests) }
    end
    if script then
      return run_file(script, { out = cli.out, resume = cli.resume, iterations = cli.iterations,
        seed = cli.seed, concurrency = cli.concurrency, set = cli.set, paused = cli.paused },
        table.unpack(args, 1, args.n))
    end
  end, true)
end

-- line(text) -> "run" | "more" | "empty" | "error", history entry
function M.line(text)
  if not pending and text:match("^%s*:") then
    if run_command(text) then return "run", text end
    return "error", text
  end
  local src = pending and (pending .. "\n" .. text) or text
  if not pending and src:match("^%s*$") then return "empty" end
  local fn, is_expr = compile(src)
  if not fn then
    local err = is_expr
    if err:match("<eof>$") then
      pending = src
      return "more"
    end
    pending = nil
    say_err(err)
    return "error", src
  end
  pending = nil
  task.spawn(supervise, fn, true) -- what a statement returns is shown too, as in lua.c
  return "run", src
end

-- Ctrl-C at a continuation prompt: forget the unfinished chunk.
function M.reset() pending = nil end

-- leave(): Ctrl-D, end of input, :quit. The run is cancelled so that its finalizer writes
-- the files; it can be resumed later.
function M.leave()
  task.spawn(function()
    if run and not run.finished and run.task then
      local dir = run.ctl.info and run.ctl.info.dir or run.dir
      out("leaving: stopping the run" .. (dir and (" in " .. dir) or "") .. " (it stays resumable)")
      run.task:cancel()
      pcall(run.task.join, run.task)
      if dir then out(("resume it with: moonloop repl --resume %s (or moonloop run --resume %s)"):format(dir, dir)) end
    end
    C.quit()
  end)
end

-- ---------------------------------------------------------------------------------
-- Completion: globals and keywords, fields of tables (a.b.c), methods (obj:m), commands.

local function fields_of(v, methods_only)
  local out_keys, seen = {}, {}
  local function add_from(t, depth)
    if type(t) ~= "table" or depth > 5 then return end
    for k, val in next, t do
      if is_ident(k) and not seen[k] and (not methods_only or type(val) == "function") then
        seen[k] = true
        out_keys[#out_keys + 1] = k
      end
    end
    local mt = getmetatable(t)
    if type(mt) == "table" and type(rawget(mt, "__index")) == "table" then
      add_from(rawget(mt, "__index"), depth + 1)
    end
  end
  if type(v) == "string" then
    add_from(string, 1)
  elseif type(v) == "table" then
    add_from(v, 1)
  elseif type(v) == "userdata" then
    local mt = getmetatable(v)
    if type(mt) == "table" and type(rawget(mt, "__index")) == "table" then add_from(rawget(mt, "__index"), 1) end
  end
  return out_keys
end

-- The value a dotted path names, without calling anything (rawget, and __index tables).
local function resolve(path)
  local v = _G
  for name in path:gmatch("[^%.:]+") do
    if not is_ident(name) then return nil end
    local t = v
    local found
    for _ = 1, 6 do
      if type(t) == "string" then t = string end
      if type(t) ~= "table" and type(t) ~= "userdata" then break end
      if type(t) == "table" then found = rawget(t, name) end
      if found ~= nil then break end
      local mt = getmetatable(t)
      t = type(mt) == "table" and rawget(mt, "__index") or nil
      if type(t) ~= "table" then break end
    end
    if found == nil then return nil end
    v = found
  end
  return v
end

function M.complete(word, line)
  local cands = {}
  if line:match("^%s*:%S*$") then
    local prefix = word:gsub("^:", "")
    for _, n in ipairs(order) do
      if n:sub(1, #prefix) == prefix then cands[#cands + 1] = (word:sub(1, 1) == ":" and ":" or "") .. n end
    end
    return cands
  end
  local base, sep, partial = word:match("^(.-)([%.:])([%w_]*)$")
  if base and base ~= "" then
    local v = resolve(base)
    if v == nil then return cands end
    for _, k in ipairs(fields_of(v, sep == ":")) do
      if k:sub(1, #partial) == partial then cands[#cands + 1] = base .. sep .. k end
    end
  elseif word:match("^[%a_][%w_]*$") or word == "" then
    for _, k in ipairs(fields_of(_G)) do
      if k:sub(1, #word) == word then cands[#cands + 1] = k end
    end
    for k in pairs(keywords) do
      if k:sub(1, #word) == word then cands[#cands + 1] = k end
    end
  end
  table.sort(cands)
  return cands
end

-- The attached run for scripts at the prompt: { ctl = (moonloop.control), task =, recipe =,
-- finished =, summary = } or nil. ctl:status(), ctl:pause() ... are what the :commands use.
function M.attached() return run end

M.commands = commands
return M

-- Running a recipe: the run directory, work items, iterations, concurrency, the request
-- journal, progress, resume, the dataset files and the closing summary.
local control = require "moonloop.control"
local evolve = require "moonloop.evolve"
local loop = require "moonloop.loop"
local sources = require "moonloop.sources"
local store = require "moonloop.store"
local versions = require "moonloop.versions"

local M = {}

-- A 31-bit seed for one call, from the run seed and where the call sits. Pure Lua FNV-1a
-- over the parts, so it is the same on every machine and in every process.
local function seed_for(run_seed)
  return function(...)
    local h = 0xcbf29ce484222325 ~ run_seed
    for _, part in ipairs({ ... }) do
      local s = tostring(part) .. "\0"
      for i = 1, #s do h = (h ~ s:byte(i)) * 0x100000001b3 end
    end
    return (h ~ (h >> 31)) & 0x7fffffff
  end
end

-- llm.chat through the journal: a recorded answer is returned without a request. With a
-- trace (run --trace), every call is also written to trace.jsonl.
local function journaled_chat(st, counters, tr, version_of)
  local function record(spec, r, replayed, err)
    if not tr then return end
    local tags = spec.tags or {}
    tr:record{ role = tags.role, model = r and r.model or spec.model, provider = r and r.provider,
      item = tags.item, round = tags.round, sample = tags.sample, system = spec.system,
      messages = spec.messages or spec.prompt, response = r and r.text,
      latency_ms = r and r.latency_ms, usage = r and r.usage, cost_usd = r and r.cost_usd,
      cache_hit = r and r.cached, replayed = replayed, recipe_version = version_of(),
      finish_reason = r and r.finish_reason, error = err }
  end
  return function(spec)
    local request = json.encode(spec, { sort_keys = true })
    local key = text.hash(request)
    local saved = st:journal_get(key)
    if saved then
      counters.replayed = counters.replayed + 1
      local r = json.decode(saved)
      r.replayed = true
      record(spec, r, true)
      return r
    end
    local ok, r = pcall(llm.chat, spec)
    if not ok then
      record(spec, nil, false, r)
      error(r, 0)
    end
    record(spec, r, false)
    counters.sent = counters.sent + 1
    local keep = { text = r.text, finish_reason = r.finish_reason, usage = r.usage,
      cost_usd = r.cost_usd, latency_ms = r.latency_ms, model = r.model, provider = r.provider }
    st:journal_put(key, spec.tags or {}, request, json.encode(keep, { sort_keys = true }), r)
    return r
  end
end

local function example_record(recipe, item, outcome, version)
  local ex, rec = outcome.example, outcome.record
  local function scores(list)
    local out = {}
    for _, s in ipairs(list or {}) do out[#out + 1] = s.score end
    return json.array(out)
  end
  local record = {
    messages = json.array({
      { role = "user", content = ex.context .. "\n\n" .. ex.question },
      { role = "assistant", content = ex.reference_answer },
    }),
    question = ex.question, context = ex.context, reference_answer = ex.reference_answer,
    question_type = ex.question_type, rubric = json.array(ex.rubric),
    provenance = {
      recipe = recipe.name, recipe_version = version, source = item.source, chunk = item.chunk,
      item = item.id, rounds = outcome.rounds,
      models = { challenger = recipe.roles.challenger, weak = recipe.roles.weak,
                 strong = recipe.roles.strong, judge = recipe.roles.judge },
      weak_scores = scores(rec.weak), strong_scores = scores(rec.strong),
      weak_mean = rec.weak_mean, strong_mean = rec.strong_mean, gap = rec.gap,
    },
  }
  for k, v in pairs(ex) do -- recipe-specific fields (the tests of a code task, ...)
    if record[k] == nil then record[k] = v end
  end
  return record
end

local function write_outputs(st, dir)
  local lines = {}
  for _, row in ipairs(st:examples()) do lines[#lines + 1] = row.record end
  fs.write(fs.join(dir, "dataset.jsonl"), #lines > 0 and table.concat(lines, "\n") .. "\n" or "")
  local rej = {}
  for _, row in ipairs(st:rejected_rounds()) do
    local rec = json.decode(row.record)
    rej[#rej + 1] = json.encode({
      item = row.item_id, round = row.round, category = row.category, reason = row.reason,
      question = rec.example and rec.example.question or json.null,
      weak_mean = row.weak_mean or json.null, strong_mean = row.strong_mean or json.null,
      gap = row.gap or json.null,
    }, { sort_keys = true })
  end
  fs.write(fs.join(dir, "rejected.jsonl"), #rej > 0 and table.concat(rej, "\n") .. "\n" or "")
end

-- report.html from what run.db holds; a failure to draw it never fails the run.
local function write_report(dir)
  local ok, path = pcall(function() return require("moonloop.report").write(dir) end)
  if ok then return path end
  log.warn("could not write report.html: %s", tostring(path))
  return nil
end

local function fmt_num(v, pat) return v and (pat or "%.2f"):format(v) or "-" end

-- The closing summary, for people (stderr) and for --json (one event on stdout).
local function summarize(st, dir, counters, opts, elapsed, report)
  local t = st:totals()
  local s = {
    event = "summary", items = t.items, accepted = t.accepted, exhausted = t.exhausted,
    errors = t.errors, pending = t.pending,
    acceptance_rate = t.items > 0 and t.accepted / t.items or 0,
    weak_mean = t.weak, strong_mean = t.strong, gap = t.gap,
    rounds_per_example = t.rounds_per_example, rounds = t.rounds,
    calls_per_example = t.accepted > 0 and t.calls / t.accepted or json.null,
    tokens_per_example = t.accepted > 0 and (t.input_tokens + t.output_tokens) / t.accepted or json.null,
    calls_sent = counters.sent, calls_replayed = counters.replayed,
    input_tokens = t.input_tokens, output_tokens = t.output_tokens,
    cost_usd = (t.unpriced == 0 and t.calls > 0) and t.cost or json.null,
    categories = t.categories, dir = dir, seconds = elapsed, by_role = st:by_role(),
    report = report or json.null,
    by_iteration = st:by_iteration(),
  }
  if opts.json then
    io.stdout:write(json.encode(s, { sort_keys = true }), "\n")
    io.stdout:flush()
  end
  if opts.quiet then return s end
  local out = {}
  local function say(...) out[#out + 1] = string.format(...) end
  say("")
  say("accepted %d of %d items (%.0f%%); %d exhausted their rounds, %d failed, %d not finished",
    t.accepted, t.items, 100 * s.acceptance_rate, t.exhausted, t.errors, t.pending)
  say("accepted examples: weak %s, strong %s, gap %s, %s rounds per example",
    fmt_num(t.weak), fmt_num(t.strong), fmt_num(t.gap), fmt_num(t.rounds_per_example, "%.1f"))
  local cats = {}
  for k, v in pairs(t.categories) do cats[#cats + 1] = ("%s %d"):format(k, v) end
  table.sort(cats)
  say("rounds: %d (%s)", t.rounds, table.concat(cats, ", "))
  say("LLM calls: %d (%d sent now, %d answered from the journal); per accepted example: %s calls, %s tokens",
    t.calls, counters.sent, counters.replayed,
    t.accepted > 0 and ("%.0f"):format(t.calls / t.accepted) or "-",
    t.accepted > 0 and ("%.0f"):format((t.input_tokens + t.output_tokens) / t.accepted) or "-")
  say("tokens: %d in, %d out; cost %s", t.input_tokens, t.output_tokens,
    s.cost_usd ~= json.null and ("$%.4f"):format(t.cost) or "unknown (no price configured for some models)")
  local roles = {}
  for _, r in ipairs(st:by_role()) do
    roles[#roles + 1] = ("%s %d calls, %d tokens, %s"):format(r.role or "?", r.calls,
      (r.input or 0) + (r.output or 0),
      (r.unpriced or 0) == 0 and r.cost and ("$%.4f"):format(r.cost) or "cost unknown")
  end
  if #roles > 0 then say("by role: %s", table.concat(roles, "; ")) end
  local iters = st:by_iteration()
  if #iters > 1 then
    local parts = {}
    for _, r in ipairs(iters) do
      parts[#parts + 1] = ("%d: %d calls, %d tokens, %s"):format(r.iteration, r.calls,
        (r.input or 0) + (r.output or 0),
        (r.unpriced or 0) == 0 and r.cost and ("$%.4f"):format(r.cost) or "cost unknown")
    end
    say("by iteration: %s", table.concat(parts, "; "))
  end
  local vs = st:versions()
  if #vs > 1 then
    local kept, why = 0, { apply = 0, validation = 0, trial = 0 }
    for _, v in ipairs(vs) do
      if v.status == "kept" then kept = kept + 1
      elseif v.status == "rejected" then
        local r = v.reason or ""
        local k = r:find("did not apply", 1, true) and "apply"
          or r:find("^validation") and "validation" or "trial"
        why[k] = why[k] + 1
      end
    end
    local cur = tonumber(st:get_meta("current_version")) or 1
    local s1, sc = st:score(1), st:score(cur)
    say("recipe versions: %d (%d kept; rejected: %d edits that did not apply, %d failed validation, %d lost their trial)",
      #vs, kept, why.apply, why.validation, why.trial)
    if s1 and sc then
      say("validation pass rate: v1 %.2f (%d evaluations) -> current v%d %.2f (%d); every edit and why: moonloop recipe log %s",
        s1.pass_rate, s1.evaluations, cur, sc.pass_rate, sc.evaluations, dir)
    end
  end
  say("dataset:  %s", fs.join(dir, "dataset.jsonl"))
  say("rejected: %s", fs.join(dir, "rejected.jsonl"))
  if report then say("report:   %s (moonloop report %s --text for a terminal summary)", report, dir) end
  say("run:      %s (resume with: moonloop run --resume %s)", fs.join(dir, "run.db"), dir)
  io.stderr:write(table.concat(out, "\n"), "\n")
  return s
end

local function progress_task(state, opts)
  local tty = log.isatty()
  local every = tty and 500 or (opts.progress_ms or 10000)
  return task.spawn(function()
    while true do
      task.sleep(every)
      local st = llm.stats()
      local elapsed = (os.time() - state.t0)
      local done = state.done
      local rate = elapsed > 0 and st.requests / elapsed or 0
      local eta = done > 0 and (state.total - done) * elapsed / done or nil
      local line = ("iteration %d/%d  items %d/%d  accepted %d  rounds %d  in flight %d  %.0f req/s  tokens %d  cost %s  ETA %s"):format(
        state.iteration, state.iterations, done, state.total, state.accepted, state.rounds,
        st.in_flight, rate, st.input_tokens + st.output_tokens,
        st.cost_usd and ("$%.2f"):format(st.cost_usd) or "?",
        eta and ("%ds"):format(math.floor(eta)) or "?")
      if opts.json then
        io.stdout:write(json.encode({ event = "progress", iteration = state.iteration,
          items_done = done, items = state.total, accepted = state.accepted, rounds = state.rounds,
          in_flight = st.in_flight, requests = st.requests }, { sort_keys = true }), "\n")
        io.stdout:flush()
      elseif not opts.quiet then
        io.stderr:write(tty and ("\r\27[K" .. line) or (line .. "\n"))
        io.stderr:flush()
      end
    end
  end)
end

-- Run (or resume) a recipe. opts: out, resume, iterations, seed, concurrency, json, quiet,
-- recipe_path, recipe_dir, source (the recipe file's text).
function M.run(recipe, opts)
  local t0 = os.time()
  local dir = opts.resume or opts.out or
    fs.join("runs", recipe.name .. "-" .. os.date("!%Y%m%dT%H%M%SZ"))
  fs.mkdir(fs.join(dir, "recipes"))
  -- The recipe as started, before anything else: `--resume DIR` loads it from here.
  local v1_path = fs.join(dir, "recipes", "v0001.lua")
  if opts.source and not fs.exists(v1_path) then fs.write(v1_path, opts.source) end
  local st = store.open(fs.join(dir, "run.db"))
  local resuming = st:get_meta("recipe") ~= nil
  if resuming and st:get_meta("recipe") ~= recipe.name then
    error(("%s holds a run of recipe %q, not %q"):format(dir, st:get_meta("recipe"), recipe.name), 0)
  end
  local seed = tonumber(resuming and st:get_meta("seed") or opts.seed) or 1
  if not resuming then
    -- A new run becomes resumable in one step: the recipe's copy is on disk (written first,
    -- before run.db, see above), then the metadata, the items and version 1 are committed
    -- together. A kill before the commit leaves a directory that starts afresh.
    local items = sources.load(recipe, opts.recipe_dir)
    local held = {}
    if recipe.evolve then
      -- Held-out items for the trial of recipe versions: the last ones, never in the dataset.
      local n = recipe.evolve.validation
      if #items <= n then
        error(task.error("recipe", ("recipe %s: evolve.validation = %d held-out items leaves none of the %d work items for the dataset"):format(
          recipe.name, n, #items)), 0)
      end
      for i = #items - n + 1, #items do
        local it = items[i]
        held[#held + 1] = { id = #held + 1, source = it.source, chunk = it.chunk, text = it.text }
        items[i] = nil
      end
    end
    local batch = recipe.batch or #items
    for _, it in ipairs(items) do it.iteration = (it.id - 1) // batch + 1 end
    local cli = package.loaded["moonloop.cli"] or {}
    st.db:transaction(function()
      st:set_meta("seed", seed)
      st:set_meta("recipe_dir", opts.recipe_dir)
      st:set_meta("created", os.date("!%Y-%m-%dT%H:%M:%SZ"))
      st:set_meta("overrides", json.encode(json.array(opts.overrides or cli.set or {})))
      st:add_validation_items(held)
      st:add_items(items)
      st:save_version({ version = 1, path = v1_path, source = opts.source, status = "root" })
      st:set_meta("recipe", recipe.name) -- what marks the run as started
    end)
  end
  local version = 1
  local overrides = json.decode(st:get_meta("overrides") or "[]")
  if resuming then
    -- The --set options of the first run hold for the whole run (the recipe we were given
    -- is recipes/v0001.lua as written, before them).
    local asi = require "moonloop.asi"
    for _, kv in ipairs(overrides) do
      local k, v = kv:match("^([%w_.]+)=(.*)$")
      if k then asi.override(recipe, k, v) end
    end
  end
  -- The recipe of each version, loaded once (version 1 is the file we were started with).
  local recipes = { [1] = recipe }
  local function recipe_of(v, source, path)
    if recipes[v] then return recipes[v] end
    if not source then
      local row = st:version(v)
      source, path = row and row.source, row and row.path
    end
    local r, err = versions.load(source or "", path or ("v" .. v), overrides)
    if not r then error(("recipe version %d does not load: %s"):format(v, err), 0) end
    recipes[v] = r
    return r
  end

  local items = st:items()
  local by_iteration, last_iteration = {}, 0
  local state = { t0 = t0, total = #items, done = 0, accepted = 0, rounds = 0, iteration = 0 }
  for _, it in ipairs(items) do
    last_iteration = math.max(last_iteration, it.iteration)
    if it.status == "accepted" or it.status == "exhausted" then
      state.done = state.done + 1
      if it.status == "accepted" then state.accepted = state.accepted + 1 end
    else
      by_iteration[it.iteration] = by_iteration[it.iteration] or {}
      table.insert(by_iteration[it.iteration], it)
    end
  end
  state.iterations = last_iteration
  if not opts.quiet then
    io.stderr:write(("moonloop: %s %s: %d items in %d iteration(s), %d left; run directory %s\n"):format(
      resuming and "resuming" or "running", recipe.name, #items, last_iteration,
      #items - state.done, dir))
  end

  local ctl = opts.control or control.new{ concurrency = opts.concurrency or recipe.concurrency }
  local counters = { sent = 0, replayed = 0, repairs = 0 }
  local cli = package.loaded["moonloop.cli"] or {}
  local tr = (opts.trace or cli.trace) and require("moonloop.trace").open(dir) or nil
  local chat = journaled_chat(st, counters, tr, function() return version end)
  local ctx = {
    recipe = recipe, chat = chat, seed_for = seed_for(seed),
    count = function(what) counters[what] = (counters[what] or 0) + 1 end,
    on_round = function(_, rec)
      st:save_round(rec, version)
      state.rounds = state.rounds + 1
      if not rec.accepted then
        ctl:note_failure{ item = rec.item, round = rec.round, category = rec.category, reason = rec.reason }
      end
    end,
  }
  local progress = progress_task(state, opts)
  -- Whatever ends the run (done, an error, Ctrl-C), the files reflect what run.db holds.
  local finalize <close> = setmetatable({}, { __close = function(_, err)
    progress:cancel()
    if err ~= nil then
      if not opts.quiet and log.isatty() then io.stderr:write("\r\27[K") end
      local ok, werr = pcall(write_outputs, st, dir)
      if not ok then log.error("could not write the dataset files: %s", tostring(werr)) end
      write_report(dir)
      io.stderr:write(("moonloop: stopped; what is done is in %s (resume with: moonloop run --resume %s)\n"):format(dir, dir))
    end
    if tr then tr:close() end
    st:close()
  end })

  local first_error
  local ran = 0
  ctl:attach{ dir = dir, recipe = recipe, state = state, version = function() return version end }
  -- Items of one iteration run as tasks, as many at once as the control allows (the REPL
  -- can change that live). If the run is cancelled, so is every item still running.
  local running = {}
  local stop_items <close> = setmetatable({}, { __close = function(_, err)
    if err ~= nil then
      for h in pairs(running) do h:cancel() end
    end
    ctl:detach()
  end })
  local function run_one(item)
    local v, r = version, ctx.recipe -- the version that started the item finishes it
    local ok, outcome = pcall(loop.run_item, ctx, item)
    if not ok then
      first_error = first_error or outcome
      log.warn("item %d (%s) failed: %s", item.id, item.source, tostring(outcome))
      outcome = { status = "error", rounds = 0, error = tostring(outcome) }
      ctl:note_failure{ item = item.id, category = "error", reason = tostring(outcome.error) }
    end
    local record = outcome.status == "accepted" and example_record(r, item, outcome, v)
    st:finish_item(item, outcome, record or nil, v)
    state.done = state.done + 1
    if outcome.status == "accepted" then state.accepted = state.accepted + 1 end
    if opts.json then
      io.stdout:write(json.encode({ event = "item", item = item.id, status = outcome.status,
        rounds = outcome.rounds }, { sort_keys = true }), "\n")
    end
  end
  local function say(...)
    local line = string.format(...)
    if opts.json then
      io.stdout:write(json.encode({ event = "evolve", message = line }), "\n")
    elseif not opts.quiet then
      if log.isatty() then io.stderr:write("\r\27[K") end
      io.stderr:write("moonloop: ", line, "\n")
    end
  end
  -- Levels 2 and 3: before iteration i > 1, the generations that revise the recipe.
  local function revise(iteration)
    local cfg = recipe.evolve
    local stats, failures = st:iteration_stats(iteration - 1, cfg.failures)
    local env = {
      st = st, dir = dir, cfg = cfg, recipe = recipe, recipe_of = recipe_of, chat = chat,
      seed_for = ctx.seed_for, validation = st:validation_items(), stats = stats,
      failures = failures, iteration = iteration, say = say, overrides = overrides,
      recipe_dir = opts.recipe_dir, concurrency = ctl.concurrency,
    }
    for k = 1, cfg.generations do
      local g = (iteration - 2) * cfg.generations + k
      if not st:get_meta("generation_done:" .. g) then
        say("generation %d (before iteration %d): %d candidate(s), strategy %s", g, iteration,
          cfg.candidates, cfg.strategy)
        local best = evolve.generation(env, g)
        if best then
          say("generation %d: best is v%d, validation pass rate %.2f over %d evaluation(s)", g,
            best.version, best.score.pass_rate, best.score.evaluations)
        end
      end
    end
  end

  for iteration = 1, last_iteration do
    local todo = by_iteration[iteration]
    if todo then
      if opts.iterations and ran >= opts.iterations then break end
      ctl:boundary(iteration)
      if recipe.evolve and iteration > 1 and not st:get_meta("iteration_version:" .. iteration) then
        revise(iteration)
      end
      -- The version of an iteration is fixed when it starts (and kept across a resume);
      -- the REPL or `moonloop recipe revert` may have chosen another one meanwhile.
      version = tonumber(st:get_meta("iteration_version:" .. iteration))
        or tonumber(st:get_meta("current_version")) or 1
      st:set_meta("iteration_version:" .. iteration, version)
      ctx.recipe = recipe_of(version)
      ran = ran + 1
      state.iteration = iteration
      state.iteration_running = true
      for _, item in ipairs(todo) do
        ctl:acquire()
        local h
        h = task.spawn(function()
          local done <close> = setmetatable({}, { __close = function()
            running[h] = nil
            ctl:release()
          end })
          run_one(item)
        end)
        running[h] = true
      end
      while next(running) do
        local h = next(running)
        pcall(h.join, h)
        running[h] = nil
      end
      state.iteration_running = false
    end
  end
  progress:cancel()
  if not opts.quiet and log.isatty() then io.stderr:write("\r\27[K") end
  write_outputs(st, dir)
  local report = write_report(dir)
  return summarize(st, dir, counters, opts, os.time() - t0, report), first_error
end

return M

-- Levels 2 and 3 of Agentic Self-Instruct: revising the recipe between iterations and
-- evolving a population of recipe versions.
--
-- One generation, with `candidates` slots evaluated concurrently:
--   1. pick a parent from the population (kept versions) by Boltzmann selection over the
--      mean validation pass rate, P(v) ~ exp(pass_rate / T);
--   2. evaluate the parent again on the held-out validation items (its score is the mean
--      of all its evaluations, so noise averages out as it is picked again);
--   3. ask the revision strategy for an edit, with a bounded number of repair attempts
--      when the edit does not apply (the refusal message goes back to the analyst);
--   4. validate the child before any tokens are spent on it: regions intact, frozen text
--      unchanged, compiles, loads in the sandbox, frozen fields equal, self-test on the
--      simulator;
--   5. evaluate the child on the validation items; it joins the population only if it
--      strictly beats its parent (pass rate, ties broken by mean gap).
-- Every step is in run.db: versions (with parent, edit, rationale, scores, status and the
-- reason of a rejection) and evaluations keyed by (version, generation, slot). Requests go
-- through the run's journal, so a generation interrupted by a crash replays to the same
-- result on resume, and nothing is counted twice.
local edit = require "moonloop.edit"
local loop = require "moonloop.loop"
local versions = require "moonloop.versions"

local M = {}

M.DEFAULTS = require("moonloop.asi").EVOLVE_DEFAULTS

-- A seeded float source in [0, 1) from the run's seed function.
local function rng_from(seed_fn, ...)
  local state = seed_fn(...)
  return function()
    state = (state * 1103515245 + 12345) & 0x7fffffff
    return state / 0x80000000
  end
end

-- Boltzmann choice over the population's pass rates.
function M.select(population, temperature, u)
  local best = -math.huge
  for _, p in ipairs(population) do best = math.max(best, p.score.pass_rate) end
  local weights, total = {}, 0
  for i, p in ipairs(population) do
    local w = temperature > 0 and math.exp((p.score.pass_rate - best) / temperature)
      or (p.score.pass_rate == best and 1 or 0)
    weights[i] = w
    total = total + w
  end
  local x = u * total
  for i, w in ipairs(weights) do
    x = x - w
    if x < 0 then return population[i] end
  end
  return population[#population]
end

-- Does a strictly beat b? Pass rate first, then mean gap.
function M.beats(a, b)
  local eps = 1e-9
  if a.pass_rate > b.pass_rate + eps then return true end
  if a.pass_rate < b.pass_rate - eps then return false end
  return (a.gap or -math.huge) > (b.gap or -math.huge) + eps
end

-- Where a strategy lives: a file path (relative to the recipe), or a bundled name.
-- Returns path, is_file.
function M.strategy_path(name, recipe_dir)
  if name:find("/", 1, true) or name:find("%.lua$") then
    return name:sub(1, 1) == "/" and name or fs.join(recipe_dir or ".", name), true
  end
  return package.searchpath("moonloop.strategies." .. name, package.path), false
end

local function load_strategy(name, recipe_dir)
  local path, is_file = M.strategy_path(name, recipe_dir)
  if is_file then
    local ok, src = pcall(fs.read, path)
    if not ok then error(("evolve.strategy: cannot read %s"):format(path), 0) end
    return versions.load_module(src, path)
  end
  local ok, s = pcall(require, "moonloop.strategies." .. name)
  if not ok then
    error(("evolve.strategy: no bundled strategy %q (search_replace, rewrite_region, params) and no file of that name"):format(name), 0)
  end
  return s
end

-- Evaluate one version on the validation items; cached per (version, generation, slot).
local function evaluate(env, v, generation, slot)
  local done = env.st:evaluation(v.version, generation, slot)
  if done then return done end
  local cfg = env.cfg
  local recipe = setmetatable({ max_rounds = math.min(cfg.rounds, v.recipe.max_rounds) },
    { __index = v.recipe })
  local ctx = {
    recipe = recipe, chat = env.chat,
    seed_for = function(...) return env.seed_for("eval", v.version, generation, slot, ...) end,
    count = function() end, on_round = function() end,
  }
  local passed, gaps, n = 0, {}, #env.validation
  task.map(env.validation, function(item)
    local vitem = { id = -item.id, source = item.source, chunk = item.chunk, text = item.text }
    local ok, out = pcall(loop.run_item, ctx, vitem)
    if ok and out.status == "accepted" then
      passed = passed + 1
      gaps[#gaps + 1] = out.record.gap
    elseif not ok then
      log.warn("validation item %d under version %d failed: %s", item.id, v.version, tostring(out))
    end
  end, { limit = env.concurrency })
  local gap
  if #gaps > 0 then
    table.sort(gaps) -- the same sum whatever order the items finished in
    gap = 0
    for _, g in ipairs(gaps) do gap = gap + g end
    gap = gap / #gaps
  end
  local e = { version = v.version, generation = generation, slot = slot, items = n,
    passed = passed, pass_rate = n > 0 and passed / n or 0, gap = gap }
  env.st:save_evaluation(e)
  return e
end

-- The score a decision of (generation, slot) uses, and the all-time mean stored for people.
local function refresh_score(env, v, generation, slot)
  local all = env.st:score(v.version) or { pass_rate = 0, evaluations = 0 }
  env.st:set_version_scores(v.version, all)
  if not generation then return all end
  return env.st:score(v.version, generation, slot) or { pass_rate = 0, evaluations = 0 }
end

-- The population: every version that is the root or was kept, with its recipe loaded.
local function population(env, below, generation)
  local out = {}
  for _, row in ipairs(env.st:versions()) do
    if (row.status == "root" or row.status == "kept") and (not below or row.version < below) then
      out[#out + 1] = { version = row.version, parent = row.parent, source = row.source,
        path = row.path, recipe = env.recipe_of(row.version, row.source, row.path),
        score = env.st:score(row.version, generation, 0) }
    end
  end
  return out
end

-- The lineage the analyst reads: versions of earlier generations only (a sibling slot's
-- outcome depends on timing; a resumed generation must write the same brief).
local function history(env, below)
  local rows = {}
  for _, r in ipairs(env.st:versions()) do
    if r.version < below then rows[#rows + 1] = r end
  end
  local out = {}
  for i = math.max(1, #rows - env.cfg.history + 1), #rows do
    local r = rows[i]
    if r.status ~= "root" and r.status ~= "candidate" then
      out[#out + 1] = { version = r.version, parent = r.parent, status = r.status,
        reason = r.reason, rationale = r.rationale }
    end
  end
  return out
end

-- Validate a child before spending tokens on it. Returns its recipe or nil, reason.
function M.validate(env, parent, source, path)
  local ok, err = edit.check(parent.source, source)
  if not ok then return nil, err end
  local recipe, lerr = versions.load(source, path, env.overrides)
  if not recipe then return nil, lerr end
  local fok, ferr = versions.same_frozen_fields(parent.recipe, recipe, source)
  if not fok then return nil, ferr end
  local st = require("moonloop.check").self_test(recipe, env.validation[1] or env.any_item)
  if not st.ok then return nil, "self-test on the simulator failed: " .. tostring(st.error) end
  return recipe
end

-- One slot of a generation.
local function run_slot(env, g, slot, snapshot, number, base)
  local st, cfg = env.st, env.cfg
  local existing = st:version(number)
  if existing and existing.status ~= "candidate" then return end -- done before a crash
  local rng = rng_from(env.seed_for, "select", g, slot)
  local parent = M.select(snapshot, cfg.temperature, rng())
  -- The parent is evaluated again for this slot (the mean of its evaluations is its score).
  evaluate(env, parent, g, slot)
  local pscore = refresh_score(env, parent, g, slot)
  local path = fs.join(env.dir, "recipes", ("v%04d.lua"):format(number))
  local row = { version = number, parent = parent.version, path = path, status = "candidate",
    strategy = env.strategy.name, iteration = env.iteration, generation = g, slot = slot,
    strategy_version = env.strategy_version }
  st:save_version(row)

  local sctx = {
    parent = { version = parent.version, source = parent.source, score = pscore },
    stats = env.stats, failures = env.failures, history = history(env, base),
    rng = rng_from(env.seed_for, "strategy", g, slot),
  }
  local child_src, answer, rationale, last_err
  for attempt = 1, 1 + cfg.repair_attempts do
    sctx.attempt, sctx.error = attempt, last_err
    sctx.chat = function(spec)
      local role = spec.role or "analyst"
      spec.role = nil
      spec.model = spec.model or env.recipe.roles[role] or env.recipe.roles.analyst
      spec.tags = { role = role, generation = g, slot = slot, attempt = attempt }
      spec.seed = env.seed_for(role, g, slot, attempt)
      return env.chat(spec)
    end
    local ok, proposal, perr = pcall(env.strategy.propose, sctx)
    if not ok then
      last_err = "the strategy failed: " .. tostring(type(proposal) == "table" and proposal.message or proposal)
      break
    end
    if not proposal then
      last_err = tostring(perr or "the strategy proposed nothing")
    else
      rationale, answer = proposal.rationale, proposal.answer
      if proposal.source then
        child_src = proposal.source
        answer = answer or edit.diff(parent.source, child_src, "parent", "child")
      else
        local new, aerr = edit.apply(parent.source, proposal.answer or "",
          { format = env.strategy.format == "rewrite" and "rewrite" or "auto" })
        child_src, last_err = new, aerr
      end
    end
    if child_src then break end
    env.count_rejected("malformed")
  end
  local function reject(reason, scores)
    st.db:run("UPDATE recipe_versions SET source = ?, edit = ?, rationale = ? WHERE version = ?",
      child_src, answer, rationale, number)
    if scores then st:set_version_scores(number, scores) end
    st:set_version_status(number, "rejected", reason)
    env.say("v%d (from v%d, %s): rejected: %s", number, parent.version, env.strategy.name, reason)
  end
  if not child_src then
    return reject(("the edit did not apply after %d attempt(s): %s"):format(1 + cfg.repair_attempts, tostring(last_err)))
  end
  local recipe, verr = M.validate(env, parent, child_src, path)
  if not recipe then return reject("validation: " .. verr) end
  fs.write(path, child_src)
  st.db:run("UPDATE recipe_versions SET source = ?, edit = ?, rationale = ? WHERE version = ?",
    child_src, answer, rationale, number)
  local child = { version = number, source = child_src, recipe = recipe }
  local e = evaluate(env, child, g, slot)
  local cscore = refresh_score(env, child, g, slot)
  if M.beats(cscore, pscore) then
    st:set_version_status(number, "kept", nil)
    env.say("v%d (from v%d, %s): kept: validation pass rate %.2f (gap %s) vs parent %.2f (gap %s)",
      number, parent.version, env.strategy.name, e.pass_rate, e.gap and ("%.2f"):format(e.gap) or "-",
      pscore.pass_rate, pscore.gap and ("%.2f"):format(pscore.gap) or "-")
  else
    st:set_version_status(number, "rejected", ("did not beat its parent: pass rate %.2f (gap %s) vs v%d's %.2f (gap %s)"):format(
      e.pass_rate, e.gap and ("%.2f"):format(e.gap) or "-", parent.version, pscore.pass_rate,
      pscore.gap and ("%.2f"):format(pscore.gap) or "-"))
    env.say("v%d (from v%d, %s): rejected: pass rate %.2f does not beat %.2f", number,
      parent.version, env.strategy.name, e.pass_rate, pscore.pass_rate)
  end
end

-- Run generation g. env: st, dir, cfg, recipe (root), recipe_of(version, source, path),
-- chat, seed_for, validation (items), stats, failures, iteration, say, overrides.
function M.generation(env, g)
  local st = env.st
  if st:get_meta("generation_done:" .. g) then return end
  if (env.cfg.meta or 0) > 0 then
    env.strategy, env.strategy_version = require("moonloop.meta").strategy_for(env, g)
  else
    env.strategy = env.strategy or load_strategy(env.cfg.strategy, env.recipe_dir)
  end
  env.count_rejected = env.count_rejected or function() end
  -- Version numbers are fixed before any slot runs, so concurrency cannot reorder them,
  -- and the parents are chosen among the versions older than this generation, so a
  -- generation resumed after a crash sees the population it started with.
  local base = tonumber(st:get_meta("generation_base:" .. g))
  if not base then
    base = st:next_version()
    st:set_meta("generation_base:" .. g, base)
  end
  local pop = population(env, base, g)
  for _, p in ipairs(pop) do
    if not p.score then
      evaluate(env, p, g, 0)
      p.score = refresh_score(env, p, g, 0)
    end
  end
  local slots = {}
  for c = 1, env.cfg.candidates do slots[c] = c end
  task.map(slots, function(c) run_slot(env, g, c, pop, base + c - 1, base) end)
  st:set_meta("generation_done:" .. g, os.date("!%Y-%m-%dT%H:%M:%SZ"))
  -- The best version (pass rate, then gap) becomes the recipe of the next iteration.
  local best
  for _, p in ipairs(population(env)) do
    p.score = p.score or { pass_rate = 0 }
    if not best or M.beats(p.score, best.score) then best = p end
  end
  if best then st:set_meta("current_version", best.version) end
  return best
end

return M

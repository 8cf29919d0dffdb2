-- Revision and evolution: selection, the strict-improvement rule, validation of children
-- (frozen fields, a runaway edit), a worse child left out, versions shown and reverted.
package.path = os.getenv("MOONLOOP_LUA_DIR") .. "/?.lua;" .. package.path
local t = dofile("lib/t.lua")
local evolve = require "moonloop.evolve"
local versions = require "moonloop.versions"
local edit = require "moonloop.edit"
local store = require "moonloop.store"

local root = os.getenv("MOONLOOP_LUA_DIR") .. "/.."
local DEMO = fs.read(root .. "/recipes/evolve_demo.lua")

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  fs.mkdir(fs.join(d, "recipes"))
  return d
end

local function block(search, replace)
  return ("<<<<<<< SEARCH challenger_prompt\n%s\n=======\n%s\n>>>>>>> REPLACE"):format(search, replace)
end

t.test("Boltzmann selection: greedy at low temperature, proportional to exp(s/T)", function()
  local pop = { { version = 1, score = { pass_rate = 0.2 } }, { version = 2, score = { pass_rate = 0.5 } } }
  t.eq(evolve.select(pop, 0, 0.99).version, 2, "T = 0 picks the best")
  local n2, N = 0, 1000
  for i = 1, N do
    if evolve.select(pop, 0.1, (i - 0.5) / N).version == 2 then n2 = n2 + 1 end
  end
  -- P(v2) = 1 / (1 + exp(-3)) = 0.953
  t.ok(math.abs(n2 / N - 0.953) < 0.01, ("share of the better version %.3f"):format(n2 / N))
end)

t.test("a child must strictly beat its parent; ties go to the larger gap", function()
  t.eq(evolve.beats({ pass_rate = 0.5, gap = 0.3 }, { pass_rate = 0.5, gap = 0.3 }), false, "equal")
  t.eq(evolve.beats({ pass_rate = 0.5, gap = 0.31 }, { pass_rate = 0.5, gap = 0.3 }), true, "tie, larger gap")
  t.eq(evolve.beats({ pass_rate = 0.4, gap = 0.9 }, { pass_rate = 0.5, gap = 0.1 }), false, "lower pass rate")
  t.eq(evolve.beats({ pass_rate = 0.5 }, { pass_rate = 0.5, gap = 0.1 }), false, "no gap")
end)

-- An environment for evolve.validate / evolve.generation on the in-process simulator.
local function env_for(dir, strategy, cfg, source)
  source = source or DEMO
  local st = store.open(fs.join(dir, "run.db"))
  local recipe = assert(versions.load(source, root .. "/recipes/evolve_demo.lua"))
  local sources = require "moonloop.sources"
  local items = sources.load(recipe, root .. "/recipes")
  local held = {}
  for i = 1, (cfg and cfg.validation or 6) do
    held[i] = { id = i, source = items[i].source, chunk = items[i].chunk, text = items[i].text }
  end
  st:add_validation_items(held)
  st:save_version({ version = 1, path = fs.join(dir, "recipes", "v0001.lua"), source = source, status = "root" })
  local c = {}
  for k, v in pairs(recipe.evolve) do c[k] = v end
  for k, v in pairs(cfg or {}) do c[k] = v end
  local said = {}
  return {
    st = st, dir = dir, cfg = c, recipe = recipe,
    recipe_of = function(v, src, path) return v == 1 and recipe or assert(versions.load(src, path)) end,
    chat = llm.chat, seed_for = function(...)
      local h = 7
      for _, p in ipairs({ ... }) do for i = 1, #tostring(p) do h = (h * 31 + tostring(p):byte(i)) % 2147483647 end end
      return h
    end,
    validation = st:validation_items(), stats = { items = 4, accepted = 0, rounds = 8, categories = { too_easy = 8 } },
    failures = {}, iteration = 2, say = function(...) said[#said + 1] = string.format(...) end,
    strategy = strategy, concurrency = 8,
  }, said
end

t.test("validation refuses an edit that reaches a frozen field from inside a region", function()
  local dir = tmpdir()
  local env = env_for(dir)
  local parent = { version = 1, source = DEMO, recipe = env.recipe }
  local child = assert(edit.apply(DEMO, block("Give a reference answer and a rubric.]],",
    "Give a reference answer and a rubric.]],\n  accept = { gap_min = 0.0 },")))
  t.eq(edit.check(DEMO, child), true, "the text change itself is inside the region")
  local r, err = evolve.validate(env, parent, child, fs.join(dir, "recipes", "v0002.lua"))
  t.eq(r, nil)
  t.ok(err:find("changes the frozen field", 1, true), err)
  -- and one that breaks the Lua is refused with the file and line
  local broken = assert(edit.apply(DEMO, block("Give a reference answer and a rubric.]],", "Give a reference answer ]] and a rubric.]],")))
  r, err = evolve.validate(env, parent, broken, fs.join(dir, "recipes", "v0003.lua"))
  t.eq(r, nil)
  t.ok(err:find("v0003.lua:%d+:"), err)
  env.st:close()
end)

t.test("an edit that loops forever is killed in validation and rolled back", function()
  local dir = tmpdir()
  local strategy = { name = "runaway", format = "search_replace", propose = function()
    return { answer = "Loop.\n\n" .. block("Give a reference answer and a rubric.]],",
      "Give a reference answer and a rubric.]] .. (function() while true do end end)(),"),
      rationale = "loops" }
  end }
  local env, said = env_for(dir, strategy, { candidates = 1, repair_attempts = 0 })
  evolve.generation(env, 1)
  local v2 = env.st:version(2)
  t.eq(v2.status, "rejected")
  t.ok(v2.reason:find("validation", 1, true) and v2.reason:find("limit", 1, true), v2.reason)
  t.eq(tonumber(env.st:get_meta("current_version")), 1, "the parent stays current")
  t.ok(said[1]:find("rejected", 1, true), said[1])
  env.st:close()
end)

t.test("a worse child is not kept, and the rejection says why", function()
  local dir = tmpdir()
  local flagship = fs.read(root .. "/recipes/agentic_self_instruct.lua")
  local good = flagship:match("challenger_prompt = %[%[\n(.-)%]%],")
  -- The parent asks for hard questions; the child asks for simple ones.
  local hard = DEMO:gsub("Write one question about the note and its main result.\nGive a reference answer and a rubric.",
    function() return good end)
  local strategy = { name = "harmful", format = "rewrite", propose = function()
    return { answer = "Simpler is better.\n\nBEGIN REGION challenger_prompt\n  challenger_prompt = [[\n"
      .. "Write one question about the note. Keep the question simple and direct.]],\nEND REGION",
      rationale = "simpler" }
  end }
  local env = env_for(dir, strategy, { candidates = 1, validation = 12, rounds = 4 }, hard)
  evolve.generation(env, 1)
  local v2 = env.st:version(2)
  t.eq(v2.status, "rejected")
  t.ok(v2.reason:find("did not beat its parent", 1, true), v2.reason)
  local s1, s2 = env.st:score(1), env.st:score(2)
  t.ok(s2.pass_rate < s1.pass_rate, ("child %.2f, parent %.2f"):format(s2.pass_rate, s1.pass_rate))
  t.eq(env.st:score(1).evaluations, 2, "the parent was evaluated at the start and again for the slot")
  -- running the same generation again changes nothing (a resumed run replays it)
  evolve.generation(env, 1)
  t.eq(env.st:score(1).evaluations, 2, "evaluations after a replay")
  t.eq(#env.st:versions(), 2, "versions after a replay")
  env.st:close()
end)

t.test("revert restores the exact bytes of an earlier version", function()
  local dir = tmpdir()
  local env = env_for(dir)
  local odd = DEMO .. "-- trailing comment without newline\t "
  env.st:save_version({ version = 2, parent = 1, source = odd, status = "kept",
    path = fs.join(dir, "recipes", "v0002.lua") })
  env.st:save_version({ version = 3, parent = 2, source = DEMO:gsub("main result", "key result"),
    status = "kept", path = fs.join(dir, "recipes", "v0003.lua") })
  env.st:set_meta("current_version", 3)
  env.st:close()
  local n = versions.revert(dir, 2)
  t.eq(n, 4)
  t.eq(versions.source(dir, 4), odd, "source in run.db")
  t.eq(fs.read(fs.join(dir, "recipes", "v0004.lua")), odd, "file bytes")
  local list = versions.list(dir)
  t.eq(list[4].current, true); t.eq(list[4].parent, 2); t.eq(list[4].strategy, "revert")
  t.ok(versions.diff(dir, 3, 4):find("-Write one question about the note and its key result.", 1, true))
  t.raises(function() versions.source(dir, 9) end, "no version 9")
end)

t.test("the bundled strategies run against the simulator's analyst", function()
  for _, name in ipairs({ "search_replace", "rewrite_region" }) do
    local dir = tmpdir()
    local env = env_for(dir, require("moonloop.strategies." .. name), { candidates = 3, rounds = 1 })
    evolve.generation(env, 1)
    local applied = 0
    for _, v in ipairs(env.st:versions()) do
      if v.version > 1 then
        t.ok(v.status == "kept" or v.status == "rejected", name .. " status " .. tostring(v.status))
        t.eq(v.strategy, name)
        if v.status == "kept" or not (v.reason or ""):find("did not apply", 1, true) then
          applied = applied + 1
          t.ok(v.rationale and #v.rationale > 0, "rationale recorded")
          t.eq(edit.check(DEMO, v.source), true)
        end
      end
    end
    t.ok(applied >= 1, name .. ": at least one edit applied")
    env.st:close()
  end
end)

t.test("params scales the numbers of a non-prompt region and nothing else", function()
  local src = DEMO:gsub("  samples = ", "  -- @editable temperature\n  temperature = { challenger = 0.8 },\n  -- @end\n  samples = ", 1)
  local params = require "moonloop.strategies.params"
  local out = assert(params.propose({ parent = { source = src }, rng = function() return 1 end }))
  t.ok(out.source:find("temperature = { challenger = 1 },", 1, true), out.source:match("temperature = [^\n]*"))
  t.eq(edit.check(src, out.source), true)
  local none, err = params.propose({ parent = { source = DEMO }, rng = function() return 0.5 end })
  t.eq(none, nil)
  t.ok(err:find("no number", 1, true), err)
end)

t.test("a recipe may bring its own strategy file", function()
  local dir = tmpdir()
  local path = fs.join(dir, "mine.lua")
  fs.write(path, [==[
return { name = "mine", format = "search_replace", propose = function(ctx)
  return { answer = "<<<<<<< SEARCH challenger_prompt\nGive a reference answer and a rubric.]],\n=======\nGive a reference answer and a rubric.\nDo not leak the reference answer into the context.]],\n>>>>>>> REPLACE",
           rationale = "guard the answer" }
end }
]==])
  local env = env_for(dir, nil, { candidates = 1, strategy = path })
  env.recipe_dir = dir
  evolve.generation(env, 1)
  local v2 = env.st:version(2)
  t.eq(v2.strategy, "mine")
  t.ok(v2.source:find("Do not leak the reference answer", 1, true), "edit applied")
  env.st:close()
end)

t.test("meta level: the strategy's own region is revised, tried and judged", function()
  local dir = tmpdir()
  local env = env_for(dir, nil, { candidates = 2, rounds = 1, meta = 1 })
  for g = 1, 6 do evolve.generation(env, g) end
  local rows = env.st.db:query("SELECT * FROM strategy_versions ORDER BY version")
  t.eq(rows[1].status, "root")
  t.eq(#rows, 6, "one strategy proposal before each generation after the first")
  local tried = 0
  local orig = fs.read(package.searchpath("moonloop.strategies.search_replace", package.path))
  for i = 2, #rows - 1 do
    local r = rows[i]
    if r.status == "kept" or (r.reason or ""):find("did not beat", 1, true) then
      tried = tried + 1
      local used = env.st.db:first("SELECT strategy_version AS s FROM recipe_versions WHERE generation = ? LIMIT 1",
        r.from_generation)
      t.eq(used.s, r.version, "generation " .. r.from_generation .. " ran under the trial strategy")
      t.ok(fs.exists(fs.join(dir, "recipes", ("strategy-s%04d.lua"):format(r.version))), "strategy file written")
      t.eq(edit.check(orig, r.source), true, "only the strategy's region changed")
      t.ok(r.source ~= orig, "the region did change")
    else
      t.ok((r.reason or ""):find("did not apply", 1, true), "a failed proposal says why: " .. tostring(r.reason))
    end
  end
  t.ok(tried >= 2, "trials judged: " .. tried)
  env.st:close()
end)

t.done()

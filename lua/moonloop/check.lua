-- moonloop check RECIPE.lua: does the recipe load, where are its editable regions, does a
-- short self-test on the simulator go through, and what would one iteration cost. The
-- self-test talks to the in-process simulator directly: no network, whatever the config.
local loop = require "moonloop.loop"
local sources = require "moonloop.sources"

local M = {}

M.regions = require("moonloop.edit").regions

-- The OpenAI-style body the simulator expects, built from an llm.chat spec.
local function sim_chat(spec)
  local sim = require "moonloop.sim.provider"
  local messages = {}
  if spec.system then messages[1] = { role = "system", content = spec.system } end
  for _, m in ipairs(spec.messages) do messages[#messages + 1] = m end
  local body = { model = spec.model, messages = messages, seed = spec.seed,
    temperature = spec.temperature }
  local choices = sim.chat(body, { n = 1, model = spec.model, tags = spec.tags })
  local c = choices[1]
  return { text = c.text, usage = c.usage, finish_reason = c.finish_reason }
end

local function count_calls(recipe)
  return 2 + 2 * recipe.samples.weak + 2 * recipe.samples.strong
end

-- Self-test: one item, up to two rounds, on the in-process simulator, then the recipe's
-- own self_test if it has one. Returns {ok=, error=, categories=, calls=, tokens=,
-- recipe_self_test = true | message | nil}.
function M.self_test(recipe, item)
  local tokens, calls, cats = 0, 0, {}
  local test_recipe = setmetatable({ max_rounds = math.min(2, recipe.max_rounds) }, { __index = recipe })
  local ctx = {
    recipe = test_recipe,
    seed_for = function(...) return select("#", ...) end,
    count = function() end,
    on_round = function(_, rec) cats[#cats + 1] = rec.category end,
    chat = function(spec)
      local r = sim_chat(spec)
      calls = calls + 1
      if r.usage then tokens = tokens + (r.usage.input or 0) + (r.usage.output or 0) end
      return r
    end,
  }
  local out = { categories = cats }
  local okrun, res = pcall(loop.run_item, ctx, item)
  out.ok, out.error = okrun, not okrun and tostring(type(res) == "table" and res.message or res) or nil
  if recipe.self_test then
    local ok, err = pcall(recipe.self_test, require("moonloop.roles").hook_ctx(ctx))
    out.recipe_self_test = ok or tostring(type(err) == "table" and err.message or err)
    if not ok then out.ok, out.error = false, out.error or ("recipe self_test: " .. out.recipe_self_test) end
  end
  out.calls, out.tokens = calls, tokens
  return out
end

function M.run(recipe, path, source, recipe_dir)
  local out = {}
  local function say(...) out[#out + 1] = string.format(...) end
  local ok_all = true

  local items = sources.load(recipe, recipe_dir)
  say("recipe %s (%s): loads; %d work items from its sources", recipe.name, path, #items)

  local regions, problems = M.regions(source or "")
  if #regions == 0 and #problems == 0 then
    say("editable regions: none (self-edits will have nothing to change)")
  else
    say("editable regions:")
    for _, r in ipairs(regions) do
      say("  %-20s lines %d-%d (%d bytes)", r.name, r.open, r.close, #r.text)
    end
    for _, p in ipairs(problems) do say("  problem: %s", p); ok_all = false end
  end

  local st = M.self_test(recipe, items[1])
  if not st.ok then
    ok_all = false
    say("self-test on the simulator: FAILED: %s", st.error)
  else
    say("self-test on the simulator: %d round(s) on %s: %s; %d calls, %d tokens", #st.categories,
      items[1].source, table.concat(st.categories, ", "), st.calls, st.tokens)
  end
  if st.recipe_self_test ~= nil then
    say("recipe self_test: %s", st.recipe_self_test == true and "passed" or ("FAILED: " .. tostring(st.recipe_self_test)))
    ok_all = ok_all and st.recipe_self_test == true
  end
  local calls, tokens = st.calls, st.tokens

  -- Cost of one iteration, an upper bound: every item uses every round and every call.
  local per_round = count_calls(recipe)
  local n = recipe.batch and math.min(recipe.batch, #items) or #items
  local max_calls = n * recipe.max_rounds * per_round
  local tokens_per_call = calls > 0 and tokens / calls or 0
  local cost, unpriced = 0, {}
  local share = { challenger = 1, checker = 1, weak = recipe.samples.weak,
    strong = recipe.samples.strong, judge = recipe.samples.weak + recipe.samples.strong }
  for role, k in pairs(share) do
    local m = llm.resolve(recipe.roles[role])
    local calls_role = n * recipe.max_rounds * k
    if m and m.price then
      cost = cost + calls_role * tokens_per_call * (m.price.input + m.price.output) / 2 / 1e6
    else
      unpriced[#unpriced + 1] = role .. " (" .. tostring(recipe.roles[role]) .. ")"
    end
  end
  table.sort(unpriced)
  say("one iteration: %d items x at most %d rounds x %d calls = at most %d calls, about %.1fM tokens",
    n, recipe.max_rounds, per_round, max_calls, max_calls * tokens_per_call / 1e6)
  if #unpriced == 0 then
    say("estimated cost of one iteration: at most $%.2f", cost)
  else
    say("estimated cost: unknown, no price configured for %s", table.concat(unpriced, ", "))
  end
  io.stdout:write(table.concat(out, "\n"), "\n")
  return ok_all
end

return M

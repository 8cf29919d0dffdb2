-- The meta level: the revision strategy is itself under revision. With evolve.meta = N,
-- before every Nth generation the analyst edits the strategy file's editable regions (its
-- instructions to the analyst), reading how often that strategy's children were kept.
-- The edited strategy is validated like a recipe version (regions, frozen text, sandbox
-- load, a propose function) and then drives the next N generations as a trial; it stays
-- only if its children are kept strictly more often than under its parent, otherwise the
-- parent comes back. Strategy versions live in run.db (strategy_versions) and every recipe
-- version records the strategy version that proposed it.
local edit = require "moonloop.edit"
local versions = require "moonloop.versions"

local M = {}

local SCHEMA = [[
CREATE TABLE IF NOT EXISTS strategy_versions(
  version INTEGER PRIMARY KEY, parent INTEGER, name TEXT, source TEXT, status TEXT,
  reason TEXT, rationale TEXT, from_generation INTEGER, created TEXT);
]]

M.INSTRUCTIONS = [[
You are improving the INSTRUCTIONS that a revision strategy gives to an analyst, who edits
a data-generation recipe. The numbers above say how often the analyst's edits were kept.
Propose ONE change to the instructions that should make kept edits more likely. Start
with one paragraph of rationale, then SEARCH/REPLACE blocks addressed to the region:

<<<<<<< SEARCH region_name
exact lines copied from the region
=======
the replacement lines
>>>>>>> REPLACE]]

-- The text of a bundled strategy or a strategy file.
local function strategy_source(name, recipe_dir)
  local path = require("moonloop.evolve").strategy_path(name, recipe_dir)
  local ok, src = pcall(fs.read, path or "")
  if not ok then error(("evolve.meta: cannot read the strategy %s"):format(tostring(path or name)), 0) end
  return src, path
end

-- Children proposed and kept under a strategy version, before generation g.
local function keep_rate(st, v, g)
  local r = st.db:first([[SELECT COUNT(*) AS n, SUM(status = 'kept') AS kept FROM recipe_versions
      WHERE strategy_version = ? AND generation < ?]], v, g)
  local n = r.n or 0
  return n > 0 and (r.kept or 0) / n or 0, n, r.kept or 0
end

local function load(src, path)
  local ok, mod = pcall(versions.load_module, src, path)
  if not ok then return nil, tostring(type(mod) == "table" and mod.message or mod) end
  return mod
end

-- Propose and validate a new trial version of strategy `cur` (a row). Returns the new
-- row's fields or nil, reason.
local function propose(env, g, cur)
  local rate, n, kept = keep_rate(env.st, cur.version, g)
  local lines = {
    ("The strategy %q (version %d) proposed %d recipe edits; %d were kept (%.0f%%)."):format(
      cur.name, cur.version, n, kept, 100 * rate),
  }
  for _, r in ipairs(env.st.db:query([[SELECT reason, COUNT(*) AS n FROM recipe_versions
      WHERE strategy_version = ? AND status = 'rejected' GROUP BY substr(reason, 1, 40)
      ORDER BY n DESC LIMIT 5]], cur.version)) do
    lines[#lines + 1] = ("- %d rejected: %s"):format(r.n, tostring(r.reason):sub(1, 160))
  end
  for _, r in ipairs(edit.regions(cur.source)) do
    lines[#lines + 1] = "REGION: " .. r.name
    lines[#lines + 1] = "BEGIN REGION"
    lines[#lines + 1] = r.text
    lines[#lines + 1] = "END REGION"
  end
  lines[#lines + 1] = M.INSTRUCTIONS
  local last_err
  for attempt = 1, 1 + env.cfg.repair_attempts do
    local msg = table.concat(lines, "\n")
    if last_err then msg = msg .. "\n\nYour previous edit was rejected: " .. last_err end
    local r = env.chat{ model = env.recipe.roles.analyst, system = "You improve the instructions of an automated analyst.",
      messages = { { role = "user", content = msg } }, temperature = 0.7, max_tokens = 2000,
      tags = { role = "analyst", meta = g, attempt = attempt },
      seed = env.seed_for("meta", g, attempt) }
    local src, err = edit.apply(cur.source, r.text, { format = "search_replace" })
    if src then
      local ok, cerr = edit.check(cur.source, src)
      if not ok then
        err = cerr
      else
        local mod, lerr = load(src, cur.path or "strategy.lua")
        if mod then
          return { source = src, rationale = (r.text:match("^%s*(.-)\n%s*\n") or ""):sub(1, 400) }
        end
        err = "the edited strategy does not load: " .. lerr
      end
    end
    last_err = err
  end
  return nil, last_err
end

-- The strategy module generation g must use. Called by evolve.generation.
function M.strategy_for(env, g)
  local st, n = env.st, env.cfg.meta
  st.db:exec(SCHEMA)
  local root = st.db:first("SELECT * FROM strategy_versions WHERE version = 1")
  if not root then
    local src = strategy_source(env.cfg.strategy, env.recipe_dir)
    st.db:run([[INSERT INTO strategy_versions(version, name, source, status, from_generation, created)
        VALUES (1, ?, ?, 'root', 1, ?)]], env.cfg.strategy, src, os.date("!%Y-%m-%dT%H:%M:%SZ"))
    st:set_meta("strategy_current", 1)
  end
  if g > 1 and (g - 1) % n == 0 and not st:get_meta("meta_done:" .. g) then
    local cur = st.db:first("SELECT * FROM strategy_versions WHERE version = ?",
      tonumber(st:get_meta("strategy_current")))
    -- A trial that has run its N generations is judged first.
    if cur.status == "trial" then
      local parent = st.db:first("SELECT * FROM strategy_versions WHERE version = ?", cur.parent)
      local r1 = keep_rate(st, cur.version, g)
      local r0 = keep_rate(st, parent.version, g)
      if r1 > r0 then
        st.db:run("UPDATE strategy_versions SET status = 'kept' WHERE version = ?", cur.version)
        env.say("strategy s%d kept: %.0f%% of its edits kept vs %.0f%% under s%d", cur.version, 100 * r1, 100 * r0, parent.version)
      else
        st.db:run("UPDATE strategy_versions SET status = 'rejected', reason = ? WHERE version = ?",
          ("did not beat its parent: %.0f%% of its edits kept vs %.0f%% under s%d"):format(100 * r1, 100 * r0, parent.version),
          cur.version)
        env.say("strategy s%d rejected: %.0f%% of its edits kept vs %.0f%% under s%d", cur.version, 100 * r1, 100 * r0, parent.version)
        cur = parent
      end
    end
    local nextv = st.db:first("SELECT COALESCE(MAX(version), 0) + 1 AS v FROM strategy_versions").v
    local prop, err = propose(env, g, cur)
    if prop then
      st.db:run([[INSERT INTO strategy_versions(version, parent, name, source, status, rationale,
          from_generation, created) VALUES (?, ?, ?, ?, 'trial', ?, ?, ?)]], nextv, cur.version,
        cur.name, prop.source, prop.rationale, g, os.date("!%Y-%m-%dT%H:%M:%SZ"))
      fs.write(fs.join(env.dir, "recipes", ("strategy-s%04d.lua"):format(nextv)), prop.source)
      env.say("strategy s%d (from s%d) on trial for %d generation(s)", nextv, cur.version, n)
      cur = { version = nextv }
    else
      st.db:run([[INSERT INTO strategy_versions(version, parent, name, source, status, reason,
          from_generation, created) VALUES (?, ?, ?, ?, 'rejected', ?, ?, ?)]], nextv, cur.version,
        cur.name, cur.source, "the edit did not apply: " .. tostring(err), g, os.date("!%Y-%m-%dT%H:%M:%SZ"))
      env.say("strategy s%d (from s%d) rejected: %s", nextv, cur.version, tostring(err))
    end
    st:set_meta("strategy_current", cur.version)
    st:set_meta("meta_done:" .. g, 1)
  end
  local v = tonumber(st:get_meta("strategy_current"))
  local row = st.db:first("SELECT * FROM strategy_versions WHERE version = ?", v)
  local mod
  if v == 1 and not (env.cfg.strategy:find("/", 1, true) or env.cfg.strategy:find("%.lua$")) then
    mod = require("moonloop.strategies." .. env.cfg.strategy)
  else
    local err
    mod, err = load(row.source, fs.join(env.dir, "recipes", ("strategy-s%04d.lua"):format(v)))
    if not mod then error(("strategy s%d does not load: %s"):format(v, err), 0) end
  end
  return mod, v
end

return M

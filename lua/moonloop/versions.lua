-- Recipe versions of a run: loading a version's source (always in the sandbox), listing,
-- showing, diffing, reverting and adding versions. Used by the runner, the evolution, the
-- `moonloop recipe` command and the REPL.
local edit = require "moonloop.edit"
local store = require "moonloop.store"

local M = {}

local function sandbox()
  local ok, sb = pcall(require, "moonloop.sandbox")
  if ok and type(sb) == "table" and sb.load_recipe then return sb end
  return nil
end

-- Load a recipe version from its text. Recipes run in the sandbox; `overrides` are the
-- run's --set key=value strings, applied to every version alike.
function M.load(source, path, overrides)
  local asi = require "moonloop.asi"
  local recipe
  local sb = sandbox()
  if sb then
    local ok, r = pcall(sb.load_recipe, source, path, {})
    if not ok then return nil, tostring(type(r) == "table" and r.message or r) end
    recipe = r
  else
    local chunk, err = load(source, "@" .. path, "t")
    if not chunk then return nil, err end
    local ok, r = pcall(chunk)
    if not ok then return nil, tostring(type(r) == "table" and r.message or r) end
    recipe = r
  end
  if not asi.is(recipe) then return nil, path .. ": the file does not return asi.recipe{...}" end
  for _, kv in ipairs(overrides or {}) do
    local k, v = kv:match("^([%w_.]+)=(.*)$")
    if k then
      local ok, err = pcall(asi.override, recipe, k, v)
      if not ok then return nil, tostring(type(err) == "table" and err.message or err) end
    end
  end
  return recipe
end

-- A strategy file provided by a user (or edited by the agent): loaded like a recipe.
function M.load_module(source, path)
  local sb = sandbox()
  local mod
  if sb and sb.load_module then
    mod = sb.load_module(source, path, {})
  else
    local chunk, err = load(source, "@" .. path, "t")
    if not chunk then error(err, 0) end
    mod = chunk()
  end
  if type(mod) ~= "table" or type(mod.propose) ~= "function" then
    error(path .. ": a strategy file must return a table with a propose(ctx) function", 0)
  end
  mod.name = type(mod.name) == "string" and mod.name or path:match("([^/]+)%.lua$")
  return mod
end

local function deep_equal(a, b, seen)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then
    return type(a) == "function" and type(b) == "function" -- code is compared as text
  end
  seen = seen or {}
  if seen[a] == b then return true end
  seen[a] = b
  for k, v in next, a do
    if not deep_equal(v, rawget(b, k), seen) then return false, k end
  end
  for k in next, b do
    if rawget(a, k) == nil then return false, k end
  end
  return true
end

-- Text inside a region can still reach frozen fields (`x = [[..]], accept = {...},`);
-- so, after loading, every field that no region is named after must be equal.
function M.same_frozen_fields(parent, child, source)
  local editable = {}
  for _, r in ipairs(edit.regions(source)) do editable[r.name] = true end
  for k, v in next, parent do
    if not editable[k] and not deep_equal(v, rawget(child, k)) then
      return nil, ("the edit changes the frozen field %q (only fields named by a region may change)"):format(tostring(k))
    end
  end
  for k in next, child do
    if not editable[k] and rawget(parent, k) == nil then
      return nil, ("the edit adds the field %q outside the regions"):format(tostring(k))
    end
  end
  return true
end

local function open(dir)
  local path = fs.join(dir, "run.db")
  if not fs.exists(path) then error(("%s is not a run directory (no run.db)"):format(dir), 0) end
  return store.open(path)
end

local function decode_scores(s)
  if type(s) ~= "string" then return nil end
  local ok, v = pcall(json.decode, s)
  return ok and v or nil
end

function M.current(st)
  return tonumber(st:get_meta("current_version")) or 1
end

-- Every version of a run, oldest first.
function M.list(dir)
  local st <close> = open(dir)
  local cur = M.current(st)
  local out = {}
  for _, r in ipairs(st:versions()) do
    out[#out + 1] = { version = r.version, parent = r.parent, status = r.status or "root",
      reason = r.reason, rationale = r.rationale, scores = decode_scores(r.scores),
      strategy = r.strategy, iteration = r.iteration, generation = r.generation,
      created = r.created, current = r.version == cur, path = r.path }
  end
  return out
end

local function row(st, v)
  local r = st:version(v)
  if not r then
    local n = st.db:first("SELECT COUNT(*) AS n FROM recipe_versions").n
    error(("no version %s in this run (it has %d: see moonloop recipe log)"):format(tostring(v), n), 0)
  end
  return r
end

function M.source(dir, v)
  local st <close> = open(dir)
  return row(st, v or M.current(st)).source or ""
end

-- Unified diff between two versions; with one version, between it and its parent.
function M.diff(dir, a, b)
  local st <close> = open(dir)
  if b == nil then
    local r = row(st, a)
    if not r.parent then return "", ("v%d is the root version; it has no parent"):format(a) end
    a, b = r.parent, a
  end
  local ra, rb = row(st, a), row(st, b)
  return edit.diff(ra.source or "", rb.source or "", ("v%04d.lua"):format(a), ("v%04d.lua"):format(b))
end

local function write_version(st, dir, v)
  v.version = v.version or st:next_version()
  v.path = fs.join(dir, "recipes", ("v%04d.lua"):format(v.version))
  fs.write(v.path, v.source)
  st:save_version(v)
  return v.version
end

-- Make the exact bytes of version v the current recipe, as a new version.
function M.revert(dir, v)
  local st <close> = open(dir)
  local r = row(st, v)
  local n = write_version(st, dir, { parent = r.version, source = r.source, status = "kept",
    rationale = ("revert to v%d"):format(r.version), edit = ("revert to v%d"):format(r.version),
    strategy = "revert", scores = decode_scores(r.scores) })
  st:set_meta("current_version", n)
  return n
end

-- Add a version written by hand (the REPL's :edit): validated like an agent's edit.
-- Returns the new version number, or nil and why it was refused.
function M.add(dir, source, opts)
  opts = opts or {}
  local st <close> = open(dir)
  local parent = row(st, opts.parent or M.current(st))
  local ok, err = edit.check(parent.source, source)
  if not ok then return nil, err end
  local overrides = {}
  local saved = st:get_meta("overrides")
  if saved then overrides = json.decode(saved) end
  local path = fs.join(dir, "recipes", "pending.lua")
  local recipe, lerr = M.load(source, path, overrides)
  if not recipe then return nil, lerr end
  local precipe = M.load(parent.source, parent.path or path, overrides)
  if precipe then
    local fok, ferr = M.same_frozen_fields(precipe, recipe, source)
    if not fok then return nil, ferr end
  end
  local items = require("moonloop.sources").load(recipe, st:get_meta("recipe_dir") or ".")
  local t = require("moonloop.check").self_test(recipe, items[1])
  if not t.ok then return nil, "self-test on the simulator failed: " .. tostring(t.error) end
  local n = write_version(st, dir, { parent = parent.version, source = source, status = "kept",
    rationale = opts.rationale or "edited by hand", edit = edit.diff(parent.source, source),
    strategy = "manual" })
  st:set_meta("current_version", n)
  return n
end

return M

-- Recipes: asi.recipe{...} checks a recipe table and fills in the defaults of Agentic
-- Self-Instruct. A recipe file returns the result; `moonloop run RECIPE.lua` then drives it
-- (moonloop.runner). Unknown keys are errors, so a typo never silently changes a run.
local accept = require "moonloop.accept"

local M = {}

local RECIPE_MARK = "moonloop.recipe"

local DEFAULTS = {
  roles = { challenger = "strong", checker = "judge", weak = "weak", strong = "strong",
            judge = "judge", analyst = "strong" },
  samples = { weak = 3, strong = 3 },
  temperature = { challenger = 0.8, solver = 1.0 },
  chunk = { size = 4000, overlap = 200 },
  max_rounds = 8,
  repair_attempts = 2,
  concurrency = 16,
  check = true,
  gate_strong = true,
  accept_all = false,
}

-- Self-edits between iterations (levels 2 and 3); see moonloop/evolve.lua.
M.EVOLVE_DEFAULTS = {
  strategy = "search_replace", validation = 4, rounds = 2, candidates = 2, generations = 1,
  temperature = 0.1, repair_attempts = 2, history = 8, failures = 8,
  meta = 0, -- every N generations, revise the strategy itself (0: never)
}

local KNOWN = {
  name = "string", description = "string", sources = "string|table", challenger_prompt = "string",
  refine_prompt = "string", roles = "table", samples = "table", temperature = "table",
  chunk = "table", max_rounds = "number", repair_attempts = "number", concurrency = "number",
  batch = "number", max_items = "number", check = "boolean", gate_strong = "boolean",
  accept_all = "boolean", accept = "table", self_test = "function",
  check_example = "function", verify = "function", evolve = "table",
}

-- A bad recipe is a usage error (exit 2). `field` lets the caller point at the line of the
-- recipe file that sets it (`return asi.recipe{...}` is a tail call, so the recipe's own
-- frame is gone by the time we look).
local function fail(name, msg, field)
  local where = ""
  local f = M.loading and io.open(M.loading, "rb")
  if f then
    local lineno, call_line, field_line = 0, nil, nil
    for line in f:lines() do
      lineno = lineno + 1
      call_line = call_line or (line:find("asi.recipe", 1, true) and lineno)
      if field and not field_line and line:match("^%s*" .. field .. "%s*=") then field_line = lineno end
    end
    f:close()
    if field_line or call_line then where = ("%s:%d: "):format(M.loading, field_line or call_line) end
  end
  error(task.error("recipe", ("%srecipe %s: %s"):format(where, name or "?", msg)), 0)
end

local function merge(defaults, given, name, field)
  local out = {}
  for k, v in pairs(defaults) do out[k] = v end
  for k, v in pairs(given or {}) do
    if defaults[k] == nil then
      local known = {}
      for dk in pairs(defaults) do known[#known + 1] = dk end
      table.sort(known)
      fail(name, ("%s.%s is not known (known: %s)"):format(field, k, table.concat(known, ", ")), k)
    end
    if type(v) ~= type(defaults[k]) then
      fail(name, ("%s.%s must be a %s"):format(field, k, type(defaults[k])), k)
    end
    out[k] = v
  end
  return out
end

function M.is(v)
  return type(v) == "table" and rawget(v, "kind") == RECIPE_MARK
end

function M.recipe(spec)
  if type(spec) ~= "table" then error("asi.recipe expects a table", 2) end
  local name = spec.name
  if type(name) ~= "string" or not name:match("^[%w_.-]+$") then
    fail(tostring(name), "name must be a non-empty string of letters, digits, '-', '_' or '.'")
  end
  for k, v in pairs(spec) do
    local want = KNOWN[k]
    if not want then
      local known = {}
      for kk in pairs(KNOWN) do known[#known + 1] = kk end
      table.sort(known)
      fail(name, ("unknown field %q (fields: %s)"):format(tostring(k), table.concat(known, ", ")), k)
    end
    if not want:find(type(v), 1, true) then
      fail(name, ("field %q must be a %s, got %s"):format(k, want, type(v)), k)
    end
  end
  if not spec.challenger_prompt then fail(name, "challenger_prompt is required") end
  if not spec.sources then fail(name, "sources is required (a glob like \"data/*.txt\" or a list)") end
  local r = { kind = RECIPE_MARK }
  for k, v in pairs(spec) do r[k] = v end
  for _, field in ipairs({ "roles", "samples", "temperature", "chunk" }) do
    r[field] = merge(DEFAULTS[field], spec[field], name, field)
  end
  for _, field in ipairs({ "max_rounds", "repair_attempts", "concurrency", "check", "gate_strong",
    "accept_all" }) do
    if r[field] == nil then r[field] = DEFAULTS[field] end
  end
  if spec.evolve then
    r.evolve = merge(M.EVOLVE_DEFAULTS, spec.evolve, name, "evolve")
    local e = r.evolve
    if e.validation < 1 or e.candidates < 1 or e.rounds < 1 or e.generations < 0
      or e.repair_attempts < 0 or e.temperature < 0 or e.meta < 0 then
      fail(name, "evolve: validation, candidates and rounds must be at least 1; generations, repair_attempts and temperature at least 0", "evolve")
    end
  end
  if r.max_rounds < 1 or r.max_rounds ~= math.floor(r.max_rounds) then
    fail(name, "max_rounds must be a positive integer")
  end
  if r.samples.weak < 1 or r.samples.strong < 1 then fail(name, "samples must be at least 1") end
  local ok, th = pcall(accept.thresholds, spec.accept)
  if not ok then fail(name, tostring(th), tostring(th):match("accept%.([%w_]+)")) end
  r.thresholds = th
  return r
end

-- Apply --set key=value overrides ("max_rounds=4", "samples.weak=2", "accept.gap_min=0.3",
-- "batch=4"). Mistakes are usage errors (exit 2) that name the key.
function M.override(recipe, key, value)
  local function bad(msg) error(task.error("usage", ("--set %s: %s"):format(key, msg)), 0) end
  local path = {}
  for part in key:gmatch("[^.]+") do path[#path + 1] = part end
  local t = recipe
  for i = 1, #path - 1 do
    t = t[path[i] == "accept" and "thresholds" or path[i]]
    if type(t) ~= "table" then bad(path[i] .. " is not a table in the recipe") end
  end
  local last = path[#path]
  local old = t[last]
  local kind = old ~= nil and type(old) or (#path == 1 and KNOWN[last])
  if kind == nil or kind == false or (kind ~= "number" and kind ~= "boolean" and kind ~= "string") then
    bad("no such recipe parameter")
  end
  local v
  if kind == "number" then v = tonumber(value)
  elseif kind == "boolean" then v = (value == "true") or (value ~= "false" and nil)
  else v = value end
  if v == nil then bad(("%q is not a valid %s"):format(value, kind)) end
  t[last] = v
end

return M

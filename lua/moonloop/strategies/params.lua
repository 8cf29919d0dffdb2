-- Revision strategy "params": no model call. Every number written in an editable region
-- (say `temperature = { challenger = 0.8 }`) is scaled by a random factor in [0.8, 1.25],
-- integers stay integers. Cheap exploration of a recipe's numeric knobs; the held-out trial
-- decides whether a change is kept. Same contract as search_replace.lua.
local edit = require "moonloop.edit"

local S = { name = "params", format = "source" }

local function perturb(region_text, rng)
  local changed = 0
  -- numbers that stand alone (not inside identifiers), outside long strings and comments
  local out = region_text:gsub("()(%f[%w_.]%d+%.?%d*%f[^%w_.])", function(_, n)
    local v = tonumber(n)
    if not v then return nil end
    local f = 0.8 + 0.45 * rng()
    changed = changed + 1
    if n:find("%.") then
      return ("%.3g"):format(v * f)
    end
    return tostring(math.max(1, math.floor(v * f + 0.5)))
  end)
  return out, changed
end

function S.propose(ctx)
  local regions = edit.regions(ctx.parent.source)
  local rewrites, n = {}, 0
  for _, r in ipairs(regions) do
    -- prompts are long strings: leave regions that hold one alone
    if not r.text:find("%[%[") then
      local t, k = perturb(r.text, ctx.rng)
      if k > 0 then
        rewrites[#rewrites + 1] = { region = r.name, text = t, line = r.first }
        n = n + k
      end
    end
  end
  if n == 0 then
    return nil, "the params strategy found no number in the editable regions (prompt regions are skipped)"
  end
  local src, err = edit.apply_rewrites(ctx.parent.source, rewrites)
  if not src then return nil, err end
  return { source = src, rationale = ("scaled %d number(s) in the editable regions"):format(n) }
end

return S

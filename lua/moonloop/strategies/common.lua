-- What every analyst prompt carries: the run's statistics, categorised failures with
-- examples, the lineage history (what was tried and how it scored), the editable regions
-- of the parent version, and, on a repair attempt, why the last edit was refused.
local edit = require "moonloop.edit"

local M = {}

local function pct(x) return x and ("%.0f%%"):format(100 * x) or "-" end
local function num(x) return x and ("%.2f"):format(x) or "-" end

-- ctx: { parent = {version=, source=, score=}, stats = {...}, failures = {...},
--        history = {...}, error = "...", attempt = n }
function M.brief(ctx, opts)
  opts = opts or {}
  local out = {}
  local function say(...) out[#out + 1] = string.format(...) end
  local p = ctx.parent
  local s = ctx.stats or {}
  say("You are improving a data-generation recipe. The recipe is a Lua file; only its editable")
  say("regions may change. It is version %d; on held-out validation items it passes %s",
    p.version, pct(p.score and p.score.pass_rate))
  say("(mean weak/strong gap of passing items %s, over %d evaluation(s)).",
    num(p.score and p.score.gap), p.score and p.score.evaluations or 0)
  say("")
  say("STATISTICS of the last batch: %d items, %d accepted, %d rounds.",
    s.items or 0, s.accepted or 0, s.rounds or 0)
  local cats = {}
  for k, v in pairs(s.categories or {}) do cats[#cats + 1] = ("%s %d"):format(k, v) end
  table.sort(cats)
  if #cats > 0 then say("Rounds by outcome: %s.", table.concat(cats, ", ")) end
  if ctx.failures and #ctx.failures > 0 then
    say("")
    say("FAILURES (category, reason, question):")
    for _, f in ipairs(ctx.failures) do
      say("- [%s] %s%s", f.category or "?", tostring(f.reason or ""):sub(1, 200),
        f.question and (" | Q: " .. tostring(f.question):sub(1, 200)) or "")
    end
  end
  if ctx.history and #ctx.history > 0 then
    say("")
    say("HISTORY of earlier edits (newest last):")
    for _, h in ipairs(ctx.history) do
      say("- v%d from v%s: %s%s. %s", h.version, tostring(h.parent), h.status,
        h.reason and (" (" .. h.reason:sub(1, 160) .. ")") or "",
        h.rationale and h.rationale:sub(1, 200) or "")
    end
  end
  say("")
  for _, r in ipairs(edit.regions(p.source)) do
    say("REGION: %s", r.name)
    say("BEGIN REGION")
    out[#out + 1] = r.text
    say("END REGION")
  end
  if ctx.error then
    say("")
    say("Your previous edit (attempt %d) was rejected: %s", (ctx.attempt or 2) - 1, ctx.error)
    say("Fix it and answer again.")
  end
  if opts.instructions then
    say("")
    out[#out + 1] = opts.instructions
  end
  return table.concat(out, "\n")
end

-- Ask the analyst (by role) and return its text.
function M.ask(ctx, system, user)
  local r = ctx.chat{ role = "analyst", system = system, messages = { { role = "user", content = user } },
    temperature = 0.7, max_tokens = 2000 }
  return r.text
end

-- propose(ctx) for a strategy that sends its instructions and the brief to the analyst.
function M.proposer(S)
  return function(ctx)
    local answer = M.ask(ctx, S.system, M.brief(ctx, { instructions = S.instructions }))
    return { answer = answer, rationale = M.rationale(answer) }
  end
end

-- The first paragraph of an answer, as its rationale.
function M.rationale(answer)
  local first = tostring(answer or ""):match("^%s*(.-)\n%s*\n") or tostring(answer or "")
  first = first:gsub("<<<<<<<.*", ""):gsub("BEGIN REGION.*", "")
  return first:sub(1, 600)
end

return M

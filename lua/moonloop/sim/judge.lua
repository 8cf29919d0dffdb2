-- The simulated judge: for each numbered rubric criterion, decides whether the one answer
-- it was given meets it. It never sees a reference answer; a criterion is met when one
-- sentence of the answer holds at least 80% of the criterion's content words. Each
-- verdict then flips with 5% chance (judges are noisy), and 3% of outputs are broken JSON.
local text = require "moonloop.sim.text"

local M = {}

M.MATCH, M.FLIP, M.BROKEN = 0.8, 0.05, 0.03

local LABELS = { "answer", "response", "candidate answer", "solver answer", "model answer",
  "student answer", "<answer>" }

-- The line opening the answer, if the message labels it ("Answer:", "## Response", ...).
local function answer_label(line)
  local bare = line:lower():gsub("^[%s#*_>%-]+", "")
  if #bare > 80 then return nil end
  for _, l in ipairs(LABELS) do
    if bare:sub(1, #l) == l then
      local after = line:match(":%s*(.*)$")
      return after or ""
    end
  end
  return nil
end

-- parse(message) -> criteria {{id =, text =}...}, answer text.
function M.parse(message)
  local lines = text.lines(message)
  local label_at, label_rest
  for i, line in ipairs(lines) do
    local rest = answer_label(line)
    if rest then label_at, label_rest = i, rest end
  end
  local criteria, answer = {}, {}
  for i, line in ipairs(lines) do
    local id, crit = line:match("^%s*(%d+)[.)]%s+(.+)$")
    if (not label_at or i < label_at) and id then
      criteria[#criteria + 1] = { id = tonumber(id), text = crit }
    elseif label_at and i > label_at then
      answer[#answer + 1] = line
    elseif not label_at and not id then
      answer[#answer + 1] = line
    end
  end
  if label_rest and label_rest ~= "" then table.insert(answer, 1, label_rest) end
  return criteria, table.concat(answer, "\n")
end

local function sentence_sets(answer)
  local sets = {}
  for sent in (answer .. "\n"):gmatch("([^%.!?\n]+)") do
    if sent:find("%S") then sets[#sets + 1] = text.word_set(sent) end
  end
  return sets
end

-- met(criterion, sets) -> whether some sentence holds enough of the criterion's words.
local function met(criterion, sets)
  -- Asides in brackets ("(a mistake: ...)", "[5 points]") are about grading, not content.
  local words = text.content_words((criterion:gsub("%b()", ""):gsub("%b[]", "")))
  if #words == 0 then return false end
  for _, set in ipairs(sets) do
    local hits = 0
    for _, w in ipairs(words) do
      if set[w] then hits = hits + 1 end
    end
    if hits >= M.MATCH * #words then return true end
  end
  return false
end

function M.verdicts(req)
  local criteria, answer = M.parse(text.last_user(req.msgs))
  local sets = sentence_sets(answer)
  local out = {}
  for i, c in ipairs(criteria) do
    local ok = met(c.text, sets)
    if req.rng:chance(M.FLIP) then ok = not ok end
    out[i] = { id = c.id, met = ok,
      why = ok and "The answer states this." or "The answer does not state this." }
  end
  return out
end

function M.answer(req)
  local out = text.encode({ verdicts = M.verdicts(req) }, 2)
  local broken = req.flaw_rng:float() < (req.repair and req.repair_rate or M.BROKEN)
  if broken then return out:sub(1, math.floor(#out * (0.3 + 0.5 * req.flaw_rng:float()))) end
  return out
end

return M

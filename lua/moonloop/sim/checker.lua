-- The simulated quality verifier: finds the candidate JSON in its message and fails it
-- for a leaked answer (a reference sentence inside the context; caught 85% of the time),
-- a rubric with fewer than 4 positive criteria (always), or a vague question (90%).
-- Sound candidates still fail 3% of the time, and 2% of outputs are malformed.
local text = require "moonloop.sim.text"
local world = require "moonloop.sim.world"

local M = {}

M.CATCH_LEAK, M.CATCH_VAGUE, M.FALSE_FAIL = 0.85, 0.90, 0.03
M.BROKEN = 0.02
M.MIN_POSITIVE = 4

local json = json -- the runtime's module (a global of the host state)

local function find_candidate(s)
  local objs = text.objects(s, json)
  for _, o in ipairs(objs) do
    if o.question ~= nil then return o end
  end
  return objs[#objs]
end

local function sentences(s)
  local out = {}
  for sent in (s .. " "):gmatch("(.-[%.!?])%s") do out[#out + 1] = text.trim(sent) end
  return out
end

local function leaked(c)
  local ctx = type(c.context) == "string" and c.context or ""
  local ref = type(c.reference_answer) == "string" and c.reference_answer or ""
  for _, sent in ipairs(sentences(ref)) do
    if #sent >= 25 and ctx:find(sent, 1, true) then return true end
  end
  return false
end

local function positives(c)
  local n = 0
  for _, item in ipairs(type(c.rubric) == "table" and c.rubric or {}) do
    local w = type(item) == "table" and tonumber(item.weight)
    if w and w > 0 then n = n + 1 end
  end
  return n
end

-- verdict(req) -> pass (boolean), reason (string).
function M.verdict(req)
  local g = req.rng
  local c = find_candidate(text.last_user(req.msgs))
  if type(c) ~= "table" or type(c.question) ~= "string" then
    return false, "I could not find a candidate with a question in the message."
  end
  local pos = positives(c)
  if pos < M.MIN_POSITIVE then
    return false, ("The rubric has only %d positive criteria; it needs at least %d to cover "
      .. "the answer."):format(pos, M.MIN_POSITIVE)
  end
  if leaked(c) and g:chance(M.CATCH_LEAK) then
    return false, "The context states the key sentence of the reference answer, so the "
      .. "question can be answered by copying it."
  end
  if world.decode(c.question).vague and g:chance(M.CATCH_VAGUE) then
    return false, "The question is vague: it does not pin down what a complete answer must "
      .. "contain."
  end
  if g:chance(M.FALSE_FAIL) then
    return false, "Two rubric criteria overlap, so one point would be rewarded twice."
  end
  return true, "The question is self-contained, the context does not give the answer away, "
    .. "and the rubric covers the reference answer."
end

function M.answer(req)
  local pass, reason = M.verdict(req)
  local out = text.encode({ pass = pass, reason = reason })
  local broken = req.flaw_rng:float() < (req.repair and req.repair_rate or M.BROKEN)
  if broken then
    -- Either prose with no JSON at all, or an object cut off mid-string.
    if req.flaw_rng:chance(0.5) then return (pass and "PASS" or "FAIL") .. ": " .. reason end
    return out:sub(1, #out // 2)
  end
  return out
end

return M

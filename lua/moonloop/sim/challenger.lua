-- The simulated challenger: reads its prompt, the source text and the failure history,
-- and writes a candidate {context, question, reference_answer, question_type, rubric}
-- whose difficulty follows the prompt (see world.lua). About 8% of its outputs are
-- malformed the way real ones are: cut off, without a rubric, or with weights as strings.
local text = require "moonloop.sim.text"
local world = require "moonloop.sim.world"
local vocab = require "moonloop.sim.vocab"

local M = {}

M.BROKEN = { truncated = 0.03, no_rubric = 0.025, string_weights = 0.025 }
M.THIN_RUBRIC = 0.03 -- well-formed but with 3 positive criteria: the checker's to catch

local POSITIVE = { "Explains that the %s.", "States that the %s.", "Identifies that the %s.",
  "Notes that the %s." }
local NEGATIVE = { "Claims that the %s.", "Asserts that the %s." }
local CONTEXT = {
  "The note describes a %s in which the %s and the %s interact.",
  "The %s is built around the %s, and the note discusses how it treats the %s.",
  "In this %s the %s sits between callers and the %s.",
}
local CONTEXT_TAIL = {
  "Measurements in the note cover both light and heavy load.",
  "The authors compare the design against a simpler baseline.",
  "Several parameters are tuned by hand in the reported setup.",
}

local function pick_terms(g, user_text)
  local top = text.topic_terms(text.source(user_text), 12)
  for _, w in ipairs({ "scheduler", "buffer", "replica" }) do
    if #top >= 3 then break end
    top[#top + 1] = w
  end
  -- Favour the most frequent terms without always taking the same three.
  local chosen, seen = {}, {}
  while #chosen < 3 do
    local t = top[1 + math.floor(g:float() ^ 2 * #top)]
    if not seen[t] then
      seen[t] = true
      chosen[#chosen + 1] = t
    end
  end
  return chosen
end

local function question_type(info)
  local p = info.parts
  if p.mechanism then return "mechanism" end
  if p.tradeoff then return "design-tradeoff" end
  if p.derivation then return "derivation" end
  if p.counterfactual then return "counterfactual" end
  if info.vague then return "factual" end
  return "conceptual"
end

local function reference(kp)
  local out = { ("The crux is that the %s, and the %s."):format(kp.points[1], kp.points[2]) }
  for i = 3, #kp.points do out[#out + 1] = ("In addition, the %s."):format(kp.points[i]) end
  return out[1], table.concat(out, " ")
end

local function rubric(kp, thin)
  local r = {}
  local n = thin and 3 or #kp.points
  for i = 1, n do
    r[#r + 1] = { criterion = POSITIVE[(i - 1) % #POSITIVE + 1]:format(kp.points[i]),
      weight = kp.weights[i] }
  end
  for j, m in ipairs(kp.misconceptions) do
    r[#r + 1] = { criterion = NEGATIVE[(j - 1) % #NEGATIVE + 1]:format(m),
      weight = kp.mis_weights[j] }
  end
  return r
end

-- generate(req) -> candidate table (deterministic for the request).
function M.generate(req)
  local g = req.rng
  local prompt = text.joined(req.msgs, { system = true, user = true })
  local counts, kept = world.history(prompt)
  local profile = world.profile(kept)
  local _, user_kept = world.history(text.joined(req.msgs, { user = true }))
  local terms = pick_terms(g, user_kept)
  local d = world.target(profile, counts, g)
  local vague = g:chance(world.vague_chance(profile, counts))
  local question = world.compose(g, d, terms,
    { vague = vague, specific = profile.specific, steps = profile.steps })
  local kp, info = world.keypoints(question)
  local key, answer = reference(kp)
  local system = g:pick(vocab.SYSTEM_NOUNS)
  local context = { g:pick(CONTEXT):format(system, terms[1], terms[2]), g:pick(CONTEXT_TAIL) }
  if g:chance(world.leak_chance(profile, counts)) then context[#context + 1] = key end
  return {
    context = table.concat(context, " "),
    question = question,
    reference_answer = answer,
    question_type = question_type(info),
    rubric = rubric(kp, g:chance(M.THIN_RUBRIC)),
  }
end

local function flaw(req)
  local f = req.flaw_rng:float()
  if req.repair then return f < req.repair_rate and "truncated" or nil end
  for _, k in ipairs({ "truncated", "no_rubric", "string_weights" }) do
    if f < M.BROKEN[k] then return k end
    f = f - M.BROKEN[k]
  end
  return nil
end

function M.answer(req)
  local c = M.generate(req)
  local kind = flaw(req)
  if kind == "no_rubric" then c.rubric = nil end
  if kind == "string_weights" then
    for _, item in ipairs(c.rubric) do item.weight = tostring(item.weight) end
  end
  local body = text.encode(c, 2)
  local out = req.json_mode and body
    or ("Here is a new question grounded in the note.\n\n```json\n" .. body .. "\n```")
  if kind == "truncated" then
    out = out:sub(1, math.floor(#out * (0.4 + 0.4 * req.flaw_rng:float())))
  end
  return out
end

return M

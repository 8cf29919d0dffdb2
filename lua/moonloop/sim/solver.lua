-- The simulated weak and strong solvers. They see only context and question, read the
-- question's difficulty and key points back from its text (world.lua), and cover each
-- key point with the chance their skill curve gives; the answer is prose that states the
-- covered points (and, for a weak solver, sometimes a misconception).
local text = require "moonloop.sim.text"
local world = require "moonloop.sim.world"

local M = {}

local COVER = { "The key point is that the %s.", "Crucially, the %s.", "It follows that the %s.",
  "One consequence is that the %s.", "In this design the %s." }
local MISS = { "The %s probably matters here as well.", "I am less sure how the %s fits in.",
  "The %s also plays some part." }
local MISTAKE = { "Note that the %s.", "It is also true that the %s." }
local OPEN = {
  "Looking at how the %s behaves, the answer comes down to a few points.",
  "The behaviour of the %s explains most of this.",
  "Start from what the %s is for.",
}
local CLOSE = { "Together these account for the behaviour the note reports.",
  "That is the whole picture as far as the source allows.", "" }

-- Key points written in the context are there to copy.
local function leaked_in(context_low, point)
  return context_low:find(point, 1, true) ~= nil
end

-- compose(req, question) -> answer text.
function M.compose(req, question, message)
  local g, role = req.rng, req.role
  local kp, info = world.keypoints(question)
  local low = message:lower()
  local out = { g:pick(OPEN):format(kp.points[1]:match("^%S+")) }
  for i, point in ipairs(kp.points) do
    local p
    if leaked_in(low, point) then
      p = world.LEAK_HIT
    elseif kp.open[i] then
      p = world.OPEN_HIT
    else
      p = world.coverage(role, info.d + kp.jitter[i])
    end
    if g:chance(p) then
      out[#out + 1] = g:pick(COVER):format(point)
    elseif role == "strong" or g:chance(0.3) then
      -- A near miss: the right subject, none of the specifics the rubric asks for.
      out[#out + 1] = g:pick(MISS):format(point:match("^(%S+ %S+)"))
    end
  end
  for _, m in ipairs(kp.misconceptions) do
    if g:chance(world.misconception_chance(role, info.d)) then
      out[#out + 1] = g:pick(MISTAKE):format(m)
    end
  end
  out[#out + 1] = g:pick(CLOSE)
  return text.trim(table.concat(out, " "))
end

function M.answer(req)
  local message = text.last_user(req.msgs)
  local question = world.find_question(message)
  if not question then
    -- Not a simulator question: its words still give it key points (and it reads as easy).
    question = world.normalize(message:match("[^\n]*%?") or message)
  end
  return M.compose(req, question, message)
end

return M

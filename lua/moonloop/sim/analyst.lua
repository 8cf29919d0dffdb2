-- The simulated analyst: reads run statistics and one editable recipe region and
-- proposes SEARCH/REPLACE edits to it. Each block is helpful (adds a difficulty phrase
-- the region lacks; 50%), harmful (drops one, or asks for simple questions; 30%) or
-- malformed (SEARCH text that is not in the region, or no separator; 20%).
local edit = require "moonloop.edit"
local text = require "moonloop.sim.text"

local M = {}

M.KINDS = { { "helpful", 0.5 }, { "harmful", 0.3 }, { "malformed", 0.2 } }
M.TWO_BLOCKS = 0.35

-- One sentence per phrase of world.PHRASES that raises difficulty.
M.HELPFUL = {
  { "specific mechanism", "Ask about the specific mechanism behind a result, not the result." },
  { "paper-specific", "Prefer paper-specific details that general knowledge cannot supply." },
  { "design trade-off", "Make the solver weigh a design trade-off the authors made." },
  { "particular detail", "Hinge the answer on a particular detail of the source." },
  { "multi-step", "The question should need multi-step reasoning." },
  { "step-by-step derivation", "Require a step-by-step derivation of the key quantity." },
  { "chain of reasoning", "A good answer should follow a chain of reasoning across sections." },
  { "derive", "Ask the solver to derive a consequence the note only implies." },
  { "must not reveal", "The context must not reveal the answer." },
  { "do not leak", "Do not leak the reference answer into the context." },
  { "without giving away the answer", "Set up the context without giving away the answer." },
}
M.SIMPLIFY = "Keep the question simple and direct."

local function parse(message)
  local name = message:match("REGION:%s*([%w_%.%-]+)")
  local region, inside = {}, false
  for _, line in ipairs(text.lines(message)) do
    local t = text.trim(line)
    if t == "BEGIN REGION" then
      inside = true
    elseif t == "END REGION" then
      break -- the first region is the one we edit
    elseif inside then
      region[#region + 1] = line
    end
  end
  return name, table.concat(region, "\n"), region
end

local function block(name, old, new)
  return ("<<<<<<< SEARCH %s\n%s\n=======\n%s\n>>>>>>> REPLACE"):format(name, old, new)
end

local function last_line(lines)
  for i = #lines, 1, -1 do
    if lines[i]:find("%S") then return lines[i] end
  end
  return nil
end

-- The anchor line plus a new sentence, kept inside a long string that the anchor closes
-- ("...alone.]]," becomes "...alone.\nNew sentence.]],"), as a careful model would write it.
local function append(anchor, sentence)
  local at = anchor:find("]]", 1, true)
  if at then return anchor:sub(1, at - 1) .. "\n" .. sentence .. anchor:sub(at) end
  return anchor .. "\n" .. sentence
end

local function helpful(g, name, region, lines)
  local low, missing = region:lower(), {}
  for _, h in ipairs(M.HELPFUL) do
    if not low:find(h[1], 1, true) then missing[#missing + 1] = h end
  end
  local add = g:pick(#missing > 0 and missing or M.HELPFUL)
  local anchor = last_line(lines)
  return block(name, anchor, append(anchor, add[2])),
    ("adds \"%s\", which the prompt does not ask for yet"):format(add[1])
end

-- Drop the sentence holding a difficulty phrase, or failing that ask for simplicity.
local function harmful(g, name, lines)
  local candidates = {}
  for _, line in ipairs(lines) do
    for _, h in ipairs(M.HELPFUL) do
      if line:lower():find(h[1], 1, true) then candidates[#candidates + 1] = { line, h[1] } end
    end
  end
  if #candidates > 0 and g:chance(0.6) then
    local c = g:pick(candidates)
    local kept = {}
    for sent in c[1]:gmatch("[^%.!?]+[%.!?]*") do
      sent = text.trim(sent)
      if sent ~= "" and not sent:lower():find(c[2], 1, true) then kept[#kept + 1] = sent end
    end
    return block(name, c[1], table.concat(kept, " ")),
      ("removes the demand for \"%s\" to widen the range of questions"):format(c[2])
  end
  local anchor = last_line(lines)
  return block(name, anchor, append(anchor, M.SIMPLIFY)),
    "asks for simpler questions so fewer fail the quality check"
end

local function malformed(g, name, region, lines)
  local anchor = last_line(lines)
  local add = g:pick(M.HELPFUL)[2]
  if g:chance(0.5) then
    local wrong = anchor:gsub("question", "query", 1)
    if wrong == anchor or region:find(wrong, 1, true) then
      wrong = "Write one question about the paper and its main result."
    end
    return block(name, wrong, append(wrong, add)), "tightens the wording of the task"
  end
  return ("<<<<<<< SEARCH %s\n%s\n%s\n>>>>>>> REPLACE"):format(name, anchor, add),
    "restates the task more precisely"
end

local function kind(g)
  local f = g:float()
  for _, k in ipairs(M.KINDS) do
    if f < k[2] then return k[1] end
    f = f - k[2]
  end
  return M.KINDS[#M.KINDS][1]
end

local function rationale(message)
  local low = message:lower()
  local easy = low:match("too easy%D-(%d+)")
  if easy then
    return ("Most failures point one way: %s rounds were marked too easy, so the weak "
      .. "solver is not being stretched."):format(easy)
  end
  return "The statistics suggest the questions can be made more discriminating."
end

function M.answer(req)
  local g = req.rng
  local message = text.last_user(req.msgs)
  local name, region, lines = parse(message)
  if not name or not last_line(lines) then
    return "I could not find an editable region (REGION: name, then BEGIN REGION ... "
      .. "END REGION), so I propose no edit."
  end
  local blocks, why = {}, {}
  for _ = 1, g:chance(M.TWO_BLOCKS) and 2 or 1 do
    local k, b, w = kind(g), nil, nil
    if k == "helpful" then
      b, w = helpful(g, name, region, lines)
    elseif k == "harmful" then
      b, w = harmful(g, name, lines)
    else
      b, w = malformed(g, name, region, lines)
    end
    blocks[#blocks + 1], why[#why + 1] = b, w
  end
  local head = rationale(message) .. " The edit " .. table.concat(why, "; another ") .. ".\n\n"
  if message:find("FORMAT: rewrite", 1, true) then
    -- Asked for the whole region: apply our own blocks to it. A malformed block becomes a
    -- rewrite that is never closed.
    local body = region
    for _, b in ipairs(blocks) do
      local parsed = edit.parse_blocks(b)
      local blk = parsed[1]
      local at = blk and body:find(blk.search, 1, true)
      if not at then
        return head .. "BEGIN REGION " .. name .. "\n" .. body .. "\n"
      end
      body = body:sub(1, at - 1) .. blk.replace .. body:sub(at + #blk.search)
    end
    return head .. "BEGIN REGION " .. name .. "\n" .. body .. "\nEND REGION"
  end
  return head .. table.concat(blocks, "\n\n")
end

return M

-- Rubrics: weighted criteria written by the challenger, judged one by one, scored here.
-- The score lives in the trusted library, out of reach of recipes and agent edits:
--   score = clamp((sum of met positive weights - sum of |met negative weights|)
--                 / sum of positive weights, 0, 1)
local M = {}

-- Normalise a rubric from model output. Weights given as strings ("5", "+3", "-2") are
-- coerced; anything else unusable is an error that says which criterion and why.
-- Returns { {criterion = string, weight = number}, ... } or nil, message.
function M.parse(raw, opts)
  opts = opts or {}
  local min_positive = opts.min_positive or 1
  if type(raw) ~= "table" or #raw == 0 then
    return nil, "the rubric is missing or not a list of criteria"
  end
  local out, positive = {}, 0
  for i, c in ipairs(raw) do
    if type(c) ~= "table" then
      return nil, ("rubric item %d is not an object"):format(i)
    end
    local text = c.criterion or c.text or c.description
    if type(text) ~= "string" or text:match("^%s*$") then
      return nil, ("rubric item %d has no criterion text"):format(i)
    end
    local w = c.weight
    if type(w) == "string" then w = tonumber((w:gsub("^%s*%+", ""))) end
    if type(w) ~= "number" or w ~= w or w == 0 or math.abs(w) > 100 then
      return nil, ("rubric item %d (%q) has no usable weight (got %s)"):format(i, text:sub(1, 40),
        tostring(c.weight))
    end
    if w > 0 then positive = positive + 1 end
    out[#out + 1] = { criterion = text, weight = w }
  end
  if positive < min_positive then
    return nil, ("the rubric has %d positive criteria; at least %d are needed"):format(positive,
      min_positive)
  end
  return out
end

function M.total_positive(rubric)
  local total = 0
  for _, c in ipairs(rubric) do
    if c.weight > 0 then total = total + c.weight end
  end
  return total
end

-- met: list of booleans, one per criterion (true = the judge says the criterion is met;
-- for a negative criterion, met means the penalised mistake is present).
function M.score(rubric, met)
  local total = M.total_positive(rubric)
  if total <= 0 then return 0 end
  local sum = 0
  for i, c in ipairs(rubric) do
    if met[i] then sum = sum + c.weight end -- negative weights subtract
  end
  local s = sum / total
  if s < 0 then s = 0 elseif s > 1 then s = 1 end
  return s
end

-- The numbered criteria as the judge sees them (weights are not shown: the judge decides
-- met / not met; the weighting is ours).
function M.render(rubric)
  local lines = {}
  for i, c in ipairs(rubric) do
    local kind = c.weight > 0 and "" or " (a mistake: met means the answer makes it)"
    lines[#lines + 1] = ("%d. %s%s"):format(i, c.criterion, kind)
  end
  return table.concat(lines, "\n")
end

return M

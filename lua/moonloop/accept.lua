-- The acceptance policy: weak fails, strong succeeds, by a clear margin. Thresholds are
-- recipe data (accept = {...}); the defaults are the deployed prompt of the Autodata paper.
local M = {}

M.defaults = {
  weak_mean_max = 0.65,   -- the weak solver's mean score must not exceed this
  weak_best_max = 0.75,   -- nor any single weak attempt
  weak_no_zero = true,    -- a weak attempt at 0 suggests a broken or unanswerable question
  strong_mean_min = 0.60, -- the strong solver must do well...
  strong_mean_max = 0.95, -- ...but not trivially (strictly below this)
  strong_no_zero = true,  -- a strong attempt at 0 is suspicious
  gap_min = 0.20,         -- strong mean - weak mean
}

-- Scores are averages of floats: 0.95 * 3 / 3 is 0.9499999..., so every comparison with a
-- threshold treats values within EPS of it as equal to it.
local EPS = 1e-9

local function stats(scores)
  local n, sum, best, zero = 0, 0, -math.huge, false
  for _, s in ipairs(scores) do
    n = n + 1
    sum = sum + s
    if s > best then best = s end
    if s == 0 then zero = true end
  end
  if n == 0 then return nil end
  return { n = n, mean = sum / n, best = best, zero = zero }
end
M.stats = stats

-- Merge a recipe's accept table over the defaults, refusing unknown keys.
function M.thresholds(accept)
  local th = {}
  for k, v in pairs(M.defaults) do th[k] = v end
  for k, v in pairs(accept or {}) do
    if M.defaults[k] == nil then
      error(("accept.%s is not a known threshold (known: weak_mean_max, weak_best_max, "
        .. "weak_no_zero, strong_mean_min, strong_mean_max, strong_no_zero, gap_min)"):format(k), 0)
    end
    if type(v) ~= type(M.defaults[k]) then
      error(("accept.%s must be a %s"):format(k, type(M.defaults[k])), 0)
    end
    if type(v) == "number" and (v ~= v or v == math.huge or v == -math.huge) then
      -- NaN would make every comparison false, and no example would ever pass
      error(("accept.%s must be a finite number, got %s"):format(k, tostring(v)), 0)
    end
    th[k] = v
  end
  return th
end

-- Does the weak side fail as it should? Returns ok, category, reason.
function M.weak(th, weak_scores)
  local w = stats(weak_scores)
  if not w then return false, "error", "no weak answer could be scored" end
  if th.weak_no_zero and w.zero then
    return false, "failed_quality",
      ("a weak answer scored 0 (mean %.2f): the question may be unanswerable from its context"):format(w.mean)
  end
  if w.mean > th.weak_mean_max + EPS then
    return false, "too_easy", ("weak mean %.2f > %.2f"):format(w.mean, th.weak_mean_max)
  end
  if w.best > th.weak_best_max + EPS then
    return false, "too_easy", ("best weak answer %.2f > %.2f"):format(w.best, th.weak_best_max)
  end
  return true
end

-- The full verdict once both sides are scored. Returns accepted, category, reason.
function M.verdict(th, weak_scores, strong_scores)
  local ok, category, reason = M.weak(th, weak_scores)
  if not ok then return false, category, reason end
  local w, s = stats(weak_scores), stats(strong_scores)
  if not s then return false, "error", "no strong answer could be scored" end
  local gap = s.mean - w.mean
  if th.strong_no_zero and s.zero then
    return false, "failed_on_strong", ("a strong answer scored 0 (strong mean %.2f)"):format(s.mean)
  end
  if s.mean < th.strong_mean_min - EPS then
    return false, "failed_on_strong", ("strong mean %.2f < %.2f (weak %.2f, gap %.2f)"):format(
      s.mean, th.strong_mean_min, w.mean, gap)
  end
  if s.mean >= th.strong_mean_max - EPS then
    return false, "failed_on_strong", ("strong mean %.2f >= %.2f: trivial for the strong model"):format(
      s.mean, th.strong_mean_max)
  end
  if gap < th.gap_min - EPS then
    return false, "failed_on_strong", ("gap %.2f < %.2f (weak %.2f, strong %.2f)"):format(gap,
      th.gap_min, w.mean, s.mean)
  end
  return true, "accepted", ("weak %.2f, strong %.2f, gap %.2f"):format(w.mean, s.mean, gap)
end

return M

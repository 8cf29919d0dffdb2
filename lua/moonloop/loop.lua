-- The rounds of one work item (Agentic Self-Instruct, level 1): challenge, check, weak
-- solvers and judge, then, only if the weak side fails as it should, strong solvers and
-- judge, then the acceptance policy. A failed round is categorised and the whole history
-- goes to the next round's challenger. Stops at acceptance or after max_rounds.
local accept = require "moonloop.accept"
local roles = require "moonloop.roles"

local M = {}

local function summary_of(results)
  local out = {}
  for i, r in ipairs(results) do
    out[i] = { score = r.score, error = r.error, answer = r.answer }
  end
  return out
end

-- Run one item to its end. ctx: {recipe=, chat=, seed_for=, count=, on_round=}.
-- Returns {status = "accepted"|"exhausted", rounds = n, example = ex, weak=, strong=}.
function M.run_item(ctx, item)
  local recipe = ctx.recipe
  local th = recipe.thresholds
  local history = {}
  for round = 1, recipe.max_rounds do
    local rec = { item = item.id, round = round }
    local ex, why = roles.challenge(ctx, item, history, round)
    if not ex then
      rec.category, rec.reason = "failed_quality", "the challenger's output was unusable: " .. why
      history[#history + 1] = { category = rec.category, reason = rec.reason }
      ctx.on_round(item, rec)
      goto continue
    end
    rec.example = ex
    if recipe.check_example or recipe.check then
      -- A recipe may check examples itself (by running code, say) instead of asking a model.
      local qv = recipe.check_example and recipe.check_example(roles.hook_ctx(ctx), item, ex)
        or roles.check(ctx, item, ex, round)
      rec.checker = qv
      if not qv.pass then
        rec.category, rec.reason = "failed_quality", "quality check: " .. qv.reason
        history[#history + 1] = { category = rec.category, reason = qv.reason,
          question = ex.question, question_type = ex.question_type }
        ctx.on_round(item, rec)
        goto continue
      end
    end
    do
      local weak, wscores = roles.solve_and_judge(ctx, "weak", item, ex, round)
      rec.weak = summary_of(weak)
      rec.weak_mean = accept.stats(wscores) and accept.stats(wscores).mean
      local ok, category, reason = accept.weak(th, wscores)
      -- Strong solvers run only when the weak side fails as it should, unless the recipe
      -- measures every question (the single-pass baselines).
      if ok or not recipe.gate_strong then
        local strong, sscores = roles.solve_and_judge(ctx, "strong", item, ex, round)
        rec.strong = summary_of(strong)
        local s = accept.stats(sscores)
        rec.strong_mean = s and s.mean
        if rec.weak_mean and rec.strong_mean then rec.gap = rec.strong_mean - rec.weak_mean end
        if recipe.accept_all then
          ok, category, reason = rec.weak_mean ~= nil and rec.strong_mean ~= nil, "accepted",
            "single pass: every checked question is kept"
          if not ok then category, reason = "error", "no answer could be scored" end
        else
          ok, category, reason = accept.verdict(th, wscores, sscores)
        end
      end
      rec.category, rec.reason = category, reason
      if ok then
        rec.accepted = true
        ctx.on_round(item, rec)
        return { status = "accepted", rounds = round, example = ex, record = rec }
      end
      if category ~= "error" then
        history[#history + 1] = { category = category, reason = reason, question = ex.question,
          question_type = ex.question_type }
      end
      ctx.on_round(item, rec)
    end
    ::continue::
  end
  return { status = "exhausted", rounds = recipe.max_rounds }
end

return M

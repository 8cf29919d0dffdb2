-- The roles of a round: challenger, checker (quality verifier), solvers and judge.
-- The recipe supplies the challenger's instructions; the output formats, the checker,
-- solver and judge instructions and all parsing live here, frozen, out of reach of edits.
-- Every call goes through ctx.chat (the run's journaled llm.chat) with a derived seed.
local rubric = require "moonloop.rubric"

local M = {}

M.CHALLENGER_FORMAT = [[
You write one evaluation example grounded in a source document: a self-contained context,
a question about it, a complete reference answer, and a rubric a grader can apply without
ever seeing the reference answer.

Return one JSON object, in a ```json fence, with these fields:
  "context": what a solver needs to read before answering (it must not give the answer away),
  "question": the question,
  "reference_answer": a complete, correct answer,
  "question_type": a short label for the kind of question,
  "rubric": a list of {"criterion": "...", "weight": N}: 7 to 10 positive criteria that a
            good answer meets (weights 1 to 10) and 2 to 4 negative criteria describing
            mistakes (weights -1 to -10).]]

M.REFINE_DEFAULT = [[
Earlier attempts on this source failed for the reasons below. Write an entirely new
question from a different angle that needs deeper reasoning; do not rephrase any of them.]]

M.CHECKER_SYSTEM = [[
You check a candidate evaluation example against its source document. Fail it when the
context gives the answer away, when the question is vague or cannot be answered from the
context and general knowledge, when the reference answer is wrong, or when the rubric does
not cover the reference answer (fewer than 4 positive criteria). Otherwise pass it.
Return {"pass": true or false, "reason": "..."} in a ```json fence.]]

M.SOLVER_SYSTEM = [[
Answer the question using the context. Be complete and precise.]]

M.JUDGE_SYSTEM = [[
You grade one answer against a rubric. For each numbered criterion, decide whether the
answer meets it; for a criterion that describes a mistake, decide whether the answer makes
that mistake. Return {"verdicts": [{"id": 1, "met": true, "why": "..."}, ...]} with exactly
one verdict per criterion, in a ```json fence.]]

local HEADINGS = {
  too_easy = "TOO EASY (the weak model solved it):",
  failed_on_strong = "FAILED ON STRONG (the strong model failed too, or the gap was too small):",
  failed_quality = "FAILED QUALITY CHECK:",
}
local ORDER = { "too_easy", "failed_on_strong", "failed_quality" }

-- The categorised failure history of an item, as the challenger reads it. Only non-empty
-- categories appear; every earlier failure is listed (the challenger must see them all).
function M.history_block(recipe, history)
  if #history == 0 then return nil end
  local parts = { recipe.refine_prompt or M.REFINE_DEFAULT }
  for _, cat in ipairs(ORDER) do
    local lines = {}
    for _, h in ipairs(history) do
      if h.category == cat then
        lines[#lines + 1] = ("- [%s] %s (%s)"):format(h.question_type or "?",
          (h.question or "(no question)"):gsub("%s+", " "):sub(1, 400), h.reason or "")
      end
    end
    if #lines > 0 then
      parts[#parts + 1] = HEADINGS[cat] .. "\n" .. table.concat(lines, "\n")
    end
  end
  return table.concat(parts, "\n\n")
end

-- Ask for JSON, validate it with check(value) -> value | nil, why; on failure, tell the
-- model what was wrong and ask again (bounded). Returns value, or nil and the last reason.
local function chat_json(ctx, spec, check, attempts)
  local messages = spec.messages
  local last
  for attempt = 0, attempts do
    spec.messages = messages
    spec.seed = ctx.seed_for(spec.tags.role, spec.tags.item, spec.tags.round,
      spec.tags.sample or 0, attempt)
    local r = ctx.chat(spec)
    local ok, value = pcall(json.extract, r.text)
    local why
    if ok then
      value, why = check(value)
      if value ~= nil then return value, r end
    else
      why = tostring(value):gsub("^json%.extract: ", "")
    end
    last = why
    ctx.count("repairs", spec.tags.role)
    messages = { table.unpack(messages) }
    messages[#messages + 1] = { role = "assistant", content = r.text }
    messages[#messages + 1] = { role = "user", content = ("That output is not valid: %s. "
      .. "Return only the JSON object, in a ```json fence."):format(why) }
  end
  return nil, last
end

local function str(v) return type(v) == "string" and v:match("%S") ~= nil end

-- What a recipe's own functions (check_example, verify, self_test) are given: the recipe,
-- the seed function and a chat that takes roles only. Never the runner's context, whose
-- raw chat reaches any model and whose on_round writes the round records.
function M.hook_ctx(ctx)
  local h = ctx.hook
  if not h or h.recipe ~= ctx.recipe then
    h = { recipe = ctx.recipe, seed_for = ctx.seed_for,
          chat = require("moonloop.sandbox").guard_chat(ctx.chat) }
    ctx.hook = h
  end
  return h
end

-- Validate a challenger example; string weights and similar slips are repaired here.
function M.validate_example(v, min_positive)
  if type(v) ~= "table" then return nil, "expected a JSON object" end
  for _, f in ipairs({ "context", "question", "reference_answer" }) do
    if not str(v[f]) then return nil, ("the field %q is missing or empty"):format(f) end
  end
  local rb, why = rubric.parse(v.rubric, { min_positive = min_positive or 1 })
  if not rb then return nil, why end
  local ex = {}
  for k, val in pairs(v) do ex[k] = val end -- recipe-specific fields (tests, ...) come along
  ex.rubric = rb
  ex.question_type = type(v.question_type) == "string" and v.question_type or "unspecified"
  return ex
end

function M.challenge(ctx, item, history, round)
  local recipe = ctx.recipe
  local parts = { recipe.challenger_prompt, "SOURCE (" .. item.source .. "):\n" .. item.text }
  local block = M.history_block(recipe, history)
  if block then parts[#parts + 1] = block end
  return chat_json(ctx, {
    model = recipe.roles.challenger,
    system = M.CHALLENGER_FORMAT,
    messages = { { role = "user", content = table.concat(parts, "\n\n") } },
    temperature = recipe.temperature.challenger,
    tags = { role = "challenger", item = item.id, round = round },
  }, function(v) return M.validate_example(v, 1) end, recipe.repair_attempts)
end

function M.check(ctx, item, ex, round)
  local recipe = ctx.recipe
  local candidate = json.encode({
    context = ex.context, question = ex.question, reference_answer = ex.reference_answer,
    question_type = ex.question_type, rubric = ex.rubric,
  }, { pretty = true, sort_keys = true })
  local v, why = chat_json(ctx, {
    model = recipe.roles.checker,
    system = M.CHECKER_SYSTEM,
    messages = { { role = "user", content = "SOURCE (" .. item.source .. "):\n" .. item.text
      .. "\n\nCANDIDATE:\n" .. candidate } },
    temperature = 0,
    tags = { role = "checker", item = item.id, round = round },
  }, function(v)
    if type(v) ~= "table" or type(v.pass) ~= "boolean" then
      return nil, 'expected {"pass": true or false, "reason": "..."}'
    end
    return { pass = v.pass, reason = type(v.reason) == "string" and v.reason or "" }
  end, recipe.repair_attempts)
  if not v then return { pass = false, reason = "the checker's verdict was unusable: " .. why } end
  return v
end

-- One solver answer and its judged score. Returns {answer=, met=, score=} or {error=}.
local function solve_one(ctx, which, item, ex, round, sample)
  local recipe = ctx.recipe
  local solver = ctx.chat({
    model = recipe.roles[which],
    system = M.SOLVER_SYSTEM,
    messages = { { role = "user", content = "CONTEXT:\n" .. ex.context .. "\n\nQUESTION:\n"
      .. ex.question } },
    temperature = recipe.temperature.solver,
    seed = ctx.seed_for(which, item.id, round, sample, 0),
    tags = { role = which, item = item.id, round = round, sample = sample },
  })
  if recipe.verify then -- scored by running the answer, not by a judge
    local score, detail = recipe.verify(M.hook_ctx(ctx), ex, solver.text)
    return { answer = solver.text, score = score, detail = detail }
  end
  local n = #ex.rubric
  local verdicts, why = chat_json(ctx, {
    model = recipe.roles.judge,
    system = M.JUDGE_SYSTEM,
    messages = { { role = "user", content = "QUESTION:\n" .. ex.question .. "\n\nRUBRIC:\n"
      .. rubric.render(ex.rubric) .. "\n\nANSWER:\n" .. solver.text } },
    temperature = 0,
    tags = { role = "judge", item = item.id, round = round, sample = sample, of = which },
  }, function(v)
    local list = type(v) == "table" and v.verdicts
    if type(list) ~= "table" then return nil, 'expected {"verdicts": [...]}' end
    local met, seen = {}, 0
    for _, e in ipairs(list) do
      local id = math.tointeger(tonumber(e.id))
      if id and id >= 1 and id <= n and type(e.met) == "boolean" and met[id] == nil then
        met[id] = e.met
        seen = seen + 1
      end
    end
    if seen ~= n then
      return nil, ("expected one verdict for each of the %d criteria, got %d usable"):format(n, seen)
    end
    return met
  end, recipe.repair_attempts)
  if not verdicts then return { answer = solver.text, error = why } end
  return { answer = solver.text, met = verdicts, score = rubric.score(ex.rubric, verdicts) }
end

-- All samples of one side, concurrently. Returns the list of results and the scores.
function M.solve_and_judge(ctx, which, item, ex, round)
  local samples = {}
  for s = 1, ctx.recipe.samples[which] do samples[s] = s end
  local results = task.map(samples, function(s)
    return solve_one(ctx, which, item, ex, round, s)
  end)
  local scores = {}
  for _, r in ipairs(results) do
    if r.score then scores[#scores + 1] = r.score end
  end
  return results, scores
end

return M

-- The loop driver's logic with a scripted fake model: acceptance-policy edges, rubric
-- scoring, the failure-history prompt, the weak-gated strong stage and JSON repair.
package.path = os.getenv("MOONLOOP_LUA_DIR") .. "/?.lua;" .. package.path
local t = dofile("lib/t.lua")
local accept = require "moonloop.accept"
local rubric = require "moonloop.rubric"
local roles = require "moonloop.roles"
local loop = require "moonloop.loop"
local asi = require "moonloop.asi"

local th = accept.thresholds()

t.test("the paper's defaults are the thresholds", function()
  t.eq(th.weak_mean_max, 0.65); t.eq(th.weak_best_max, 0.75); t.eq(th.strong_mean_min, 0.60)
  t.eq(th.strong_mean_max, 0.95); t.eq(th.gap_min, 0.20); t.eq(th.weak_no_zero, true)
end)

t.test("a clear weak-fail strong-pass example is accepted", function()
  local ok, cat = accept.verdict(th, { 0.4, 0.5, 0.45 }, { 0.8, 0.75, 0.85 })
  t.eq(ok, true); t.eq(cat, "accepted")
end)

t.test("weak mean exactly at the limit still passes, just above is too easy", function()
  t.eq((accept.weak(th, { 0.65, 0.65, 0.65 })), true)
  local ok, cat = accept.weak(th, { 0.66, 0.66, 0.66 })
  t.eq(ok, false); t.eq(cat, "too_easy")
end)

t.test("one weak attempt above the best-attempt cap is too easy", function()
  local ok, cat, why = accept.weak(th, { 0.2, 0.3, 0.8 })
  t.eq(ok, false); t.eq(cat, "too_easy"); t.ok(why:find("best weak"), why)
end)

t.test("a weak attempt at zero fails the quality category, not too easy", function()
  local ok, cat = accept.weak(th, { 0.0, 0.4, 0.5 })
  t.eq(ok, false); t.eq(cat, "failed_quality")
end)

t.test("strong mean at 0.95 is rejected as trivial (strictly below is required)", function()
  local ok, cat, why = accept.verdict(th, { 0.4, 0.4, 0.4 }, { 0.95, 0.95, 0.95 })
  t.eq(ok, false); t.eq(cat, "failed_on_strong"); t.ok(why:find("trivial"), why)
end)

t.test("strong below the minimum fails on strong", function()
  local ok, cat = accept.verdict(th, { 0.3, 0.3, 0.3 }, { 0.55, 0.6, 0.5 })
  t.eq(ok, false); t.eq(cat, "failed_on_strong")
end)

t.test("a gap under 0.20 fails on strong even when both sides pass", function()
  local ok, cat, why = accept.verdict(th, { 0.6, 0.6, 0.6 }, { 0.7, 0.75, 0.7 })
  t.eq(ok, false); t.eq(cat, "failed_on_strong"); t.ok(why:find("gap"), why)
end)

t.test("unknown or mistyped thresholds are refused", function()
  t.raises(function() accept.thresholds({ gap_mni = 0.3 }) end, "not a known threshold")
  t.raises(function() accept.thresholds({ gap_min = "0.3" }) end, "must be a number")
end)

t.test("rubric score: positive met over positive total, negatives subtract, clamped", function()
  local rb = assert(rubric.parse({ { criterion = "a", weight = 6 }, { criterion = "b", weight = 4 },
    { criterion = "mistake", weight = -5 } }))
  t.eq(rubric.score(rb, { true, false, false }), 0.6)
  t.eq(rubric.score(rb, { true, true, true }), 0.5)
  t.eq(rubric.score(rb, { false, false, true }), 0)
  t.eq(rubric.score(rb, { true, true, false }), 1)
end)

t.test("rubric weights given as strings are coerced; junk is refused with the item", function()
  local rb = assert(rubric.parse({ { criterion = "a", weight = "5" }, { criterion = "b", weight = "-2" } }))
  t.eq(rb[1].weight, 5); t.eq(rb[2].weight, -2)
  local _, why = rubric.parse({ { criterion = "a", weight = "five" } })
  t.ok(why:find("rubric item 1"), why)
  local _, why2 = rubric.parse({})
  t.ok(why2:find("missing"), why2)
  local _, why3 = rubric.parse({ { criterion = "only a mistake", weight = -3 } })
  t.ok(why3:find("positive"), why3)
end)

t.test("the history block lists every failure under its category heading", function()
  local block = roles.history_block({}, {
    { category = "too_easy", question = "Q1?", question_type = "recall", reason = "weak mean 0.81 > 0.65" },
    { category = "failed_quality", question = "Q2?", question_type = "why", reason = "context leaks" },
    { category = "too_easy", question = "Q3?", question_type = "how", reason = "best weak 0.9" },
  })
  t.ok(block:find("different angle"), "asks for a different angle")
  t.ok(block:find("TOO EASY"), "too easy heading")
  t.ok(not block:find("FAILED ON STRONG"), "empty categories are left out")
  local easy_at, q1, q3, quality_at = block:find("TOO EASY"), block:find("Q1?", 1, true),
    block:find("Q3?", 1, true), block:find("FAILED QUALITY CHECK")
  t.ok(easy_at < q1 and q1 < q3 and q3 < quality_at, "grouped by category, in order")
  t.ok(block:find("context leaks", 1, true), "reasons are included")
  t.eq(roles.history_block({}, {}), nil)
end)

-- A scripted model: role -> function(spec, n) returning the text; records every call.
local function fake_ctx(script, recipe_over)
  local spec = {
    name = "fake", sources = "x", challenger_prompt = "Write a hard question.",
    samples = { weak = 3, strong = 3 }, max_rounds = 3,
  }
  for k, v in pairs(recipe_over or {}) do spec[k] = v end
  local calls, counts = {}, {}
  local ctx = {
    recipe = asi.recipe(spec),
    seed_for = function() return 1 end,
    count = function() end,
    rounds = {},
  }
  ctx.on_round = function(_, rec) ctx.rounds[#ctx.rounds + 1] = rec end
  ctx.chat = function(s)
    local role = s.tags.role
    counts[role] = (counts[role] or 0) + 1
    calls[#calls + 1] = s
    return { text = script[role](s, counts[role]) }
  end
  return ctx, calls, counts
end

local function example(q)
  return "```json\n" .. json.encode({
    context = "ctx", question = q, reference_answer = "ref", question_type = "t",
    rubric = { { criterion = "c1", weight = 5 }, { criterion = "c2", weight = 5 },
               { criterion = "m", weight = -3 } },
  }) .. "\n```"
end

-- met pattern per sample: weak answers meet c1 only (0.5); strong meet both (1.0) unless told.
local function judge_for(weak_met, strong_met)
  return function(s)
    local is_weak = s.messages[1].content:find("ANSWER:\nweak", 1, true)
    local met = is_weak and weak_met or strong_met
    return json.encode({ verdicts = { { id = 1, met = met[1] }, { id = 2, met = met[2] },
      { id = 3, met = met[3] } } })
  end
end

local item = { id = 1, source = "note.txt", text = "some source text" }

t.test("no strong call is made when the weak side already fails its criteria", function()
  local ctx, _, counts = fake_ctx({
    challenger = function() return example("Easy?") end,
    checker = function() return '{"pass": true, "reason": "fine"}' end,
    weak = function() return "weak answer" end,
    strong = function() error("the strong solver must not be called") end,
    judge = judge_for({ true, true, false }, { true, true, false }), -- weak scores 1.0: too easy
  })
  local out = loop.run_item(ctx, item)
  t.eq(out.status, "exhausted")
  t.eq(counts.strong, nil)
  t.eq(counts.weak, 9) -- 3 rounds x 3 samples
  t.eq(ctx.rounds[1].category, "too_easy")
end)

t.test("an example that splits weak and strong is accepted in the first round", function()
  local ctx, _, counts = fake_ctx({
    challenger = function() return example("Hard?") end,
    checker = function() return '{"pass": true}' end,
    weak = function() return "weak answer" end,
    strong = function() return "strong answer" end,
    judge = judge_for({ true, false, false }, { true, true, false }), -- weak 0.5, strong 1.0? too high
  }, { accept = { strong_mean_max = 1.01 } })
  local out = loop.run_item(ctx, item)
  t.eq(out.status, "accepted"); t.eq(out.rounds, 1)
  t.eq(counts.strong, 3); t.eq(counts.judge, 6)
  t.eq(out.record.weak_mean, 0.5); t.eq(out.record.strong_mean, 1)
end)

t.test("the second round's challenger receives the categorised history", function()
  local ctx, calls = fake_ctx({
    challenger = function(_, n) return example(n == 1 and "First easy question?" or "Second?") end,
    checker = function(_, n) return n == 2 and '{"pass": false, "reason": "leaks the answer"}' or '{"pass": true}' end,
    weak = function() return "weak answer" end,
    strong = function() return "strong answer" end,
    judge = judge_for({ true, true, false }, { true, true, false }),
  }, { max_rounds = 3 })
  loop.run_item(ctx, item)
  local prompts = {}
  for _, c in ipairs(calls) do
    if c.tags.role == "challenger" then prompts[#prompts + 1] = c.messages[#c.messages].content end
  end
  t.eq(#prompts, 3)
  t.ok(not prompts[1]:find("TOO EASY"), "round 1 has no history")
  t.ok(prompts[2]:find("TOO EASY", 1, true) and prompts[2]:find("First easy question?", 1, true), "round 2 sees round 1")
  t.ok(prompts[3]:find("FAILED QUALITY CHECK", 1, true) and prompts[3]:find("leaks the answer", 1, true), "round 3 sees the QV failure")
  t.ok(prompts[3]:find("First easy question?", 1, true), "and still every earlier failure")
  t.ok(prompts[1]:find("some source text", 1, true), "the source is in the prompt")
end)

t.test("a malformed challenger answer is repaired with a message saying what was wrong", function()
  local ctx, calls = fake_ctx({
    challenger = function(_, n)
      if n == 1 then return '{"context": "c", "question": "q", "reference_answer": "r"' end -- cut off
      if n == 2 then return '{"context": "c", "question": "q", "reference_answer": "r"}' end -- no rubric
      return example("Repaired?")
    end,
    checker = function() return '{"pass": false, "reason": "stop here"}' end,
    weak = function() return "" end, strong = function() return "" end, judge = function() return "" end,
  }, { max_rounds = 1 })
  loop.run_item(ctx, item)
  local ch = {}
  for _, c in ipairs(calls) do if c.tags.role == "challenger" then ch[#ch + 1] = c end end
  t.eq(#ch, 3)
  local repair = ch[3].messages[#ch[3].messages].content
  t.ok(repair:find("rubric is missing", 1, true), repair)
  t.eq(ctx.rounds[1].example.question, "Repaired?")
end)

t.test("a challenger that never produces usable JSON fails the round, not the item", function()
  local ctx = fake_ctx({
    challenger = function() return "I cannot do that." end,
    checker = function() error("not reached") end,
    weak = function() error("not reached") end, strong = function() error("not reached") end,
    judge = function() error("not reached") end,
  }, { max_rounds = 2, repair_attempts = 1 })
  local out = loop.run_item(ctx, item)
  t.eq(out.status, "exhausted")
  t.eq(#ctx.rounds, 2)
  t.ok(ctx.rounds[1].reason:find("unusable"), ctx.rounds[1].reason)
end)

t.test("single-pass recipes measure both sides and keep every checked question", function()
  local ctx, _, counts = fake_ctx({
    challenger = function() return example("Plain?") end,
    checker = function() return '{"pass": true}' end,
    weak = function() return "weak answer" end, strong = function() return "strong answer" end,
    judge = judge_for({ true, true, false }, { true, true, false }),
  }, { max_rounds = 1, gate_strong = false, accept_all = true })
  local out = loop.run_item(ctx, item)
  t.eq(out.status, "accepted"); t.eq(counts.strong, 3)
  t.eq(out.record.weak_mean, 1); t.eq(out.record.gap, 0)
end)

t.test("asi.recipe refuses unknown fields and bad thresholds with the recipe's name", function()
  t.raises(function() asi.recipe({ name = "r", sources = "x", challenger_prompt = "p", max_round = 3 }) end,
    "recipe r: unknown field \"max_round\"")
  t.raises(function() asi.recipe({ name = "r", sources = "x", challenger_prompt = "p", accept = { gap = 1 } }) end,
    "accept.gap is not a known threshold")
  t.raises(function() asi.recipe({ name = "r", sources = "x" }) end, "challenger_prompt is required")
  t.raises(function() asi.recipe({ name = "r", sources = "x", challenger_prompt = "p", samples = { weak = "3" } }) end,
    "samples.weak must be a number")
end)

t.test("--set overrides nested recipe parameters and refuses unknown ones", function()
  local r = asi.recipe({ name = "r", sources = "x", challenger_prompt = "p" })
  asi.override(r, "max_rounds", "4"); t.eq(r.max_rounds, 4)
  asi.override(r, "samples.weak", "2"); t.eq(r.samples.weak, 2)
  asi.override(r, "accept.gap_min", "0.3"); t.eq(r.thresholds.gap_min, 0.3)
  t.raises(function() asi.override(r, "max_rnds", "4") end, "no such recipe parameter")
  t.raises(function() asi.override(r, "max_rounds", "many") end, "not a valid number")
end)

t.done()

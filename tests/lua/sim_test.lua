-- The simulator (moonloop.sim): determinism, the protocol of every role, the intended
-- malformation rates, the difficulty model, the solvers' skill curves, the judge, the
-- analyst's edits, and the two rows of the paper it is calibrated to reproduce.
local t = dofile("lib/t.lua")
local sim = require "moonloop.sim"
local world = require "moonloop.sim.world"
local cal = require "moonloop.sim.calibrate"
local provider = require "moonloop.sim.provider"

local NOTE = cal.NOTES[1]

local function chat(role, content, seed, extra)
  local body = { model = "sim", messages = { { role = "user", content = content } }, seed = seed }
  for k, v in pairs(extra or {}) do body[k] = v end
  return sim.chat(body, 0, role).text
end

local function challenger_text(prompt, seed, history, note)
  local user = prompt .. "\n\nSOURCE (note.txt):\n" .. (note or NOTE)
  if history then user = user .. "\n\n" .. history end
  return sim.chat({ messages = { { role = "system", content = cal.SYSTEM },
    { role = "user", content = user } }, seed = seed }, 0, "challenger").text
end

local function candidate(prompt, seed, history, note)
  local ok, c = pcall(json.extract, challenger_text(prompt, seed, history, note))
  if ok and type(c) == "table" and type(c.question) == "string" and type(c.rubric) == "table" then
    return c
  end
  return nil
end

local function mean_difficulty(prompt, history, n)
  local sum, k = 0, 0
  for seed = 1, n or 300 do
    local c = candidate(prompt, seed, history)
    if c then sum, k = sum + world.decode(c.question).d, k + 1 end
  end
  return sum / k
end

local function history(n_easy, n_strong)
  local out = {}
  if n_easy > 0 then
    out[#out + 1] = "TOO EASY (the weak model solved it):"
    for i = 1, n_easy do
      out[#out + 1] = ("- [conceptual] question %d (weak 0.8%d)"):format(i, i)
    end
  end
  if n_strong > 0 then
    out[#out + 1] = "FAILED ON STRONG (the strong model failed too):"
    for i = 1, n_strong do
      out[#out + 1] = ("- [derivation] question %d (strong 0.4%d)"):format(i, i)
    end
  end
  return table.concat(out, "\n")
end

local function judge_message(c, answer, reference)
  local lines = {}
  for i, item in ipairs(c.rubric) do lines[i] = i .. ". " .. item.criterion end
  local ref = reference and ("REFERENCE ANSWER:\n" .. c.reference_answer .. "\n\n") or ""
  return "QUESTION:\n" .. c.question .. "\n\nRUBRIC:\n" .. table.concat(lines, "\n") .. "\n\n"
    .. ref .. "ANSWER:\n" .. answer
end

-- Score of one judged answer, or nil when the judge's output is one of its malformed 3%.
local function judged(c, answer, seed, reference)
  local ok, v = pcall(json.extract, chat("judge", judge_message(c, answer, reference), seed))
  if not ok or type(v) ~= "table" or type(v.verdicts) ~= "table" then return nil end
  return cal.score(c.rubric, v.verdicts), v.verdicts
end

-- Mean of f(seed) over seeds 1..n, skipping nils.
local function mean_of(n, f)
  local sum, k = 0, 0
  for seed = 1, n do
    local x = f(seed)
    if x then sum, k = sum + x, k + 1 end
  end
  return sum / k
end

-- A candidate that is well-formed and sound (no leak, not vague, full rubric).
local function sound_candidate(prompt, from_seed)
  for seed = from_seed, from_seed + 200 do
    local c = candidate(prompt, seed)
    if c and #c.rubric >= 9 and not c.context:find(c.reference_answer:match("^[^.]+"), 1, true)
      and not world.decode(c.question).vague then
      local ok = true
      for _, item in ipairs(c.rubric) do ok = ok and math.type(item.weight) == "integer" end
      if ok then return c end
    end
  end
  error("no sound candidate found")
end

-- ---- Determinism --------------------------------------------------------------------

t.test("the same request gives the same text, for every role", function()
  local c = sound_candidate(cal.PROMPTS.asi, 1)
  local reqs = {
    { "challenger", cal.PROMPTS.asi .. "\n\nSOURCE:\n" .. NOTE },
    { "checker", "SOURCE:\n" .. NOTE .. "\n\nCANDIDATE:\n"
      .. json.encode(c, { sort_keys = true }) },
    { "weak", "CONTEXT:\n" .. c.context .. "\n\nQUESTION:\n" .. c.question },
    { "strong", "CONTEXT:\n" .. c.context .. "\n\nQUESTION:\n" .. c.question },
    { "judge", judge_message(c, "The crux is unclear.") },
    { "analyst", "REGION: challenger_prompt\nBEGIN REGION\nWrite a question.\nEND REGION" },
  }
  for _, r in ipairs(reqs) do
    t.eq(chat(r[1], r[2], 7), chat(r[1], r[2], 7), r[1])
  end
end)

t.test("a different seed or choice index gives a different sample", function()
  local q = sound_candidate(cal.PROMPTS.asi, 1).question
  local msg = "CONTEXT:\nnone\n\nQUESTION:\n" .. q
  t.ok(chat("weak", msg, 1) ~= chat("weak", msg, 2), "seeds 1 and 2 answered alike")
  local body = { messages = { { role = "user", content = msg } }, seed = 1 }
  t.ok(sim.chat(body, 0, "weak").text ~= sim.chat(body, 1, "weak").text, "choices 0 and 1 alike")
  t.ok(challenger_text(cal.PROMPTS.asi, 1) ~= challenger_text(cal.PROMPTS.asi, 2), "challenger")
end)

t.test("only role, messages, seed and choice index decide the answer", function()
  local msg = "CONTEXT:\nnone\n\nQUESTION:\n" .. sound_candidate(cal.PROMPTS.asi, 1).question
  local a = chat("strong", msg, 3)
  t.eq(chat("strong", msg, 3, { temperature = 1.3, model = "other", top_p = 0.5 }), a)
  t.ok(chat("weak", msg, 3) ~= a, "the weak role answered like the strong one")
end)

t.test("the provider answers each choice by tags.role and streams the same text", function()
  local body = { messages = { { role = "user", content = "CONTEXT:\nx\n\nQUESTION:\n"
    .. sound_candidate(cal.PROMPTS.asi, 1).question } }, seed = 4 }
  local pieces = {}
  local out = provider.chat(body, { n = 2, tags = { role = "weak" },
    stream = function(d, i) pieces[i] = (pieces[i] or "") .. d end })
  t.eq(#out, 2)
  t.eq(out[1].text, sim.chat(body, 0, "weak").text)
  t.eq(out[2].text, sim.chat(body, 1, "weak").text)
  t.eq(pieces[1], out[1].text)
  t.ok(out[1].usage.input > 0 and out[1].usage.output > 0, "usage")
end)

t.test("unknown roles and requests without a role get the mock server's default answer", function()
  local default = require "moonloop.mock.answer"
  local body = { messages = { { role = "user", content = "Write a haiku about caches." } } }
  t.eq(sim.chat(body, 0, "poet").text, default.chat(body, 0).text)
  t.eq(sim.chat(body, 0, nil).text, default.chat(body, 0).text)
  t.ok(sim.chat(body, 0, nil).text:find("Write a haiku about caches", 1, true), "echoes the ask")
end)

t.test("max_tokens cuts the answer off with finish_reason length", function()
  local body = { messages = { { role = "user", content = cal.PROMPTS.asi .. "\n\n" .. NOTE } },
    max_tokens = 20 }
  local a = sim.chat(body, 0, "challenger")
  t.eq(a.finish_reason, "length")
  t.eq(#a.text, 80)
end)

-- ---- Protocol and malformations ------------------------------------------------------

-- Classify a challenger output: ok, truncated (no candidate object; json.extract may still
-- find a complete rubric item inside the cut-off text), no_rubric, string_weights.
local function challenger_kind(text)
  local ok, c = pcall(json.extract, text)
  if not ok or type(c) ~= "table" or c.question == nil then return "truncated" end
  if c.rubric == nil then return "no_rubric" end
  for _, item in ipairs(c.rubric) do
    if type(item.weight) == "string" then return "string_weights" end
  end
  return "ok", c
end

t.test("challenger output is a candidate with 7-10 positive and 2-4 negative criteria", function()
  local checked = 0
  for seed = 1, 200 do
    local kind, c = challenger_kind(challenger_text(cal.PROMPTS.asi, seed))
    if kind == "ok" then
      for _, f in ipairs({ "context", "question", "reference_answer", "question_type" }) do
        t.eq(type(c[f]), "string", f)
      end
      local pos, neg = 0, 0
      for _, item in ipairs(c.rubric) do
        t.eq(type(item.criterion), "string", "criterion")
        t.eq(math.type(item.weight), "integer", "weight")
        if item.weight > 0 then
          t.ok(item.weight <= 10, "positive weight above 10"); pos = pos + 1
        else
          t.ok(item.weight >= -10, "negative weight below -10"); neg = neg + 1
        end
      end
      t.ok(pos == 3 or (pos >= 7 and pos <= 10), "positive criteria: " .. pos)
      t.ok(neg >= 2 and neg <= 4, "negative criteria: " .. neg)
      checked = checked + 1
    end
  end
  t.ok(checked > 170, "well-formed outputs: " .. checked)
end)

t.test("about 8% of challenger outputs are malformed, in all three intended ways", function()
  local kinds, n = {}, 2000
  for seed = 1, n do
    local k = challenger_kind(challenger_text(cal.PROMPTS.cot, seed))
    kinds[k] = (kinds[k] or 0) + 1
  end
  local bad = n - kinds.ok
  print(("     malformed %.1f%%: truncated %d, no rubric %d, string weights %d of %d"):format(
    100 * bad / n, kinds.truncated or 0, kinds.no_rubric or 0, kinds.string_weights or 0, n))
  t.ok(bad / n > 0.05 and bad / n < 0.11, "malformed share " .. bad / n)
  for _, k in ipairs({ "truncated", "no_rubric", "string_weights" }) do
    t.ok((kinds[k] or 0) > 20, k .. " is rare: " .. tostring(kinds[k]))
  end
end)

t.test("a repair turn usually comes back well-formed", function()
  local fixed, tried = 0, 0
  for seed = 1, 3000 do
    local first = challenger_text(cal.PROMPTS.cot, seed)
    if challenger_kind(first) == "truncated" then
      tried = tried + 1
      local user = cal.PROMPTS.cot .. "\n\nSOURCE (note.txt):\n" .. NOTE
      local again = sim.chat({ seed = seed, messages = {
        { role = "system", content = cal.SYSTEM }, { role = "user", content = user },
        { role = "assistant", content = first },
        { role = "user", content = "That output is not valid: truncated. Return only the JSON." },
      } }, 0, "challenger").text
      if challenger_kind(again) == "ok" then fixed = fixed + 1 end
      -- Same seed: the repaired candidate is the one that was cut off.
      t.eq(again:sub(1, 40), first:sub(1, 40), "repair replays the candidate")
    end
  end
  t.ok(tried > 50, "truncated outputs: " .. tried)
  t.ok(fixed / tried > 0.93, ("repaired %d of %d"):format(fixed, tried))
end)

t.test("about 2% of checker outputs and 3% of judge outputs are malformed", function()
  local c = sound_candidate(cal.PROMPTS.asi, 1)
  local cmsg = "SOURCE:\n" .. NOTE .. "\n\nCANDIDATE:\n" .. json.encode(c, { sort_keys = true })
  local jmsg = judge_message(c, "The crux is that nothing matters.")
  local bad_c, bad_j, n = 0, 0, 2000
  for seed = 1, n do
    local ok, v = pcall(json.extract, chat("checker", cmsg, seed))
    if not (ok and type(v) == "table" and type(v.pass) == "boolean"
      and type(v.reason) == "string") then
      bad_c = bad_c + 1
    end
    ok, v = pcall(json.extract, chat("judge", jmsg, seed))
    if not (ok and type(v) == "table" and type(v.verdicts) == "table"
      and #v.verdicts == #c.rubric) then
      bad_j = bad_j + 1
    end
  end
  print(("     checker malformed %.1f%%, judge malformed %.1f%%"):format(100 * bad_c / n,
    100 * bad_j / n))
  t.ok(bad_c / n > 0.008 and bad_c / n < 0.035, "checker share " .. bad_c / n)
  t.ok(bad_j / n > 0.015 and bad_j / n < 0.05, "judge share " .. bad_j / n)
end)

t.test("the judge returns one verdict per numbered criterion, with its id", function()
  local c = sound_candidate(cal.PROMPTS.asi, 1)
  local _, verdicts = judged(c, "Some answer.", 3)
  t.eq(#verdicts, #c.rubric)
  for i, v in ipairs(verdicts) do
    t.eq(v.id, i); t.eq(type(v.met), "boolean"); t.eq(type(v.why), "string")
  end
end)

-- ---- Checker -------------------------------------------------------------------------

local function check(c, seed)
  local v = json.extract(chat("checker", "SOURCE:\n" .. NOTE .. "\n\nCANDIDATE:\n"
    .. json.encode(c, { sort_keys = true }), seed))
  return v.pass, v.reason
end

-- Share of seeds (out of n) whose verdict fails c; malformed verdicts are skipped.
local function fail_rate(c, n)
  local fails, seen = 0, 0
  for seed = 1, n do
    local ok, pass = pcall(check, c, seed)
    if ok then
      seen = seen + 1
      if not pass then fails = fails + 1 end
    end
  end
  return fails / seen
end

t.test("the checker passes sound candidates almost always", function()
  t.ok(fail_rate(sound_candidate(cal.PROMPTS.asi, 1), 300) < 0.07, "sound candidate failed")
end)

t.test("the checker always fails a rubric with fewer than 4 positive criteria", function()
  local c = sound_candidate(cal.PROMPTS.asi, 1)
  local thin = {}
  for _, item in ipairs(c.rubric) do
    if item.weight < 0 or #thin < 3 then thin[#thin + 1] = item end
  end
  c.rubric = thin
  t.eq(fail_rate(c, 100), 1.0)
  local pass, reason = check(c, 1)
  t.eq(pass, false)
  t.ok(reason:find("only 3 positive"), reason)
end)

t.test("the checker catches most leaked contexts", function()
  local c = sound_candidate(cal.PROMPTS.asi, 1)
  c.context = c.context .. " " .. c.reference_answer:match("^[^.]+%.")
  local rate = fail_rate(c, 300)
  t.ok(rate > 0.75 and rate < 0.95, "leak caught at " .. rate)
end)

t.test("the checker fails most vague questions", function()
  local c = sound_candidate(cal.PROMPTS.asi, 1)
  c.question = "According to the note, what does the compaction do?"
  t.ok(world.decode(c.question).vague, "not vague")
  t.ok(fail_rate(c, 300) > 0.8, "vague question passed too often")
end)

t.test("leaks are rarer when the prompt asks to avoid them", function()
  local function leaks(prompt)
    local n = 0
    for seed = 1, 600 do
      local c = candidate(prompt, seed)
      if c and c.context:find(c.reference_answer:match("^[^.]+"), 1, true) then n = n + 1 end
    end
    return n
  end
  local open, guarded = leaks(cal.PROMPTS.cot), leaks(cal.PROMPTS.cot .. " Do not leak the answer.")
  t.ok(open > 60 and guarded < 40 and guarded < open / 2, ("leaks %d vs %d"):format(open, guarded))
end)

-- ---- Difficulty ------------------------------------------------------------------------

t.test("difficulty rises with each feature phrase of the prompt", function()
  -- Three TOO EASY entries lift the target off zero, so no phrase is lost to the clamp.
  local plain = "Write one question about the source, with a reference answer and a rubric."
  local base = mean_difficulty(plain, history(3, 0), 200)
  for _, ph in ipairs(world.PHRASES) do
    if ph[2] > 0 then
      local prompt = plain .. " The question should use " .. ph[1] .. "."
      local d = mean_difficulty(prompt, history(3, 0), 200)
      t.ok(d > base + ph[2] / 3, ("%q: %.3f vs %.3f"):format(ph[1], d, base))
    end
  end
  local simple = mean_difficulty(cal.PROMPTS.asi .. " Keep the question simple.", nil, 200)
  t.ok(simple < mean_difficulty(cal.PROMPTS.asi, nil, 200) - 0.05, "keep it simple")
end)

t.test("phrases add up: the ASI prompt asks for harder questions than the CoT prompt", function()
  local cot, asi = mean_difficulty(cal.PROMPTS.cot), mean_difficulty(cal.PROMPTS.asi)
  t.ok(asi > cot + 0.15, ("asi %.3f, cot %.3f"):format(asi, cot))
end)

t.test("each TOO EASY entry raises difficulty; FAILED ON STRONG lowers it a little", function()
  local prev = mean_difficulty(cal.PROMPTS.asi, nil)
  for n = 2, 6, 2 do
    local d = mean_difficulty(cal.PROMPTS.asi, history(n, 0))
    t.ok(d > prev + 0.05, ("%d TOO EASY: %.3f after %.3f"):format(n, d, prev))
    prev = d
  end
  local easy = mean_difficulty(cal.PROMPTS.asi, history(4, 0))
  local both = mean_difficulty(cal.PROMPTS.asi, history(4, 3))
  t.ok(both < easy - 0.03 and both > easy - 0.2, ("%.3f vs %.3f"):format(both, easy))
end)

t.test("history entries are counted, and their text is not read as prompt vocabulary", function()
  local block = "TOO EASY (the weak model solved it):\n- [x] derive the specific mechanism "
    .. "(weak 0.9)\n\n* FAILED ON STRONG:\n1. a multi-step derivation (weak 0.2, strong 0.3)\n"
    .. "FAILED QUALITY CHECK:\n- [x] leaked (reason: the context gives it away)\n\nNow write it."
  local counts, kept = world.history("Ask a question.\n\n" .. block)
  t.eq(counts.too_easy, 1); t.eq(counts.failed_strong, 1); t.eq(counts.failed_check, 1)
  t.eq(world.profile(kept).weight, 0)
  t.ok(kept:find("Now write it.", 1, true), "the text after the block is kept")
end)

t.test("a question's difficulty is read back from its text alone", function()
  local g = require("moonloop.sim.rng").new(1)
  for _, d in ipairs({ 0.1, 0.3, 0.5, 0.7 }) do
    local q = world.compose(g, d, { "compaction", "tombstones", "memtable" }, {})
    local got = world.decode(q).d
    t.ok(math.abs(got - d) <= 0.06, ("asked %.2f, question says %.2f: %s"):format(d, got, q))
    t.eq(world.decode("Padding. " .. q .. "\n").d, got)
  end
end)

t.test("different sources give different questions, grounded in their terms", function()
  local seen = {}
  for i, note in ipairs(cal.NOTES) do
    local c
    for seed = 1, 5 do c = c or candidate(cal.PROMPTS.asi, seed, nil, note) end
    t.ok(not seen[c.question], "same question for two notes")
    seen[c.question] = true
    local terms = require("moonloop.sim.text").topic_terms(note, 12)
    local named = false
    for _, term in ipairs(terms) do named = named or c.question:find(term, 1, true) ~= nil end
    t.ok(named, "no topic term of note " .. i .. " in: " .. c.question)
  end
end)

-- ---- Solvers and judge -----------------------------------------------------------------

t.test("the skill curves: weak falls steeply with difficulty, strong slowly", function()
  local function near(x, want) return math.abs(x - want) < 0.05 end
  t.ok(near(world.coverage("weak", 0.2), 0.8), "weak at 0.2: " .. world.coverage("weak", 0.2))
  t.ok(near(world.coverage("strong", 0.2), 0.9), "strong at 0.2")
  t.ok(near(world.coverage("weak", 0.7), 0.35), "weak at 0.7: " .. world.coverage("weak", 0.7))
  t.ok(near(world.coverage("strong", 0.7), 0.75), "strong at 0.7")
end)

-- Mean judged score of a role over questions written at difficulty d.
local function mean_score(role, d, n)
  local g = require("moonloop.sim.rng").new(d)
  local sum, k = 0, 0
  for i = 1, n do
    local q = world.compose(g, d, { "compaction", "tombstones", "memtable" }, { specific = true })
    local kp = world.keypoints(q)
    local rubric = {}
    for k, p in ipairs(kp.points) do
      rubric[k] = { criterion = "States that the " .. p .. ".", weight = kp.weights[k] }
    end
    for k, m in ipairs(kp.misconceptions) do
      rubric[#rubric + 1] = { criterion = "Claims that the " .. m .. ".",
        weight = kp.mis_weights[k] }
    end
    local c = { question = q, rubric = rubric }
    local answer = chat(role, "CONTEXT:\nA storage engine.\n\nQUESTION:\n" .. q, i)
    local s = judged(c, answer, i)
    if s then sum, k = sum + s, k + 1 end
  end
  return sum / k
end

t.test("judged scores fall with difficulty, the weak solver's faster", function()
  local we, se = mean_score("weak", 0.2, 150), mean_score("strong", 0.2, 150)
  local wh, sh = mean_score("weak", 0.7, 150), mean_score("strong", 0.7, 150)
  print(("     d=0.2: weak %.2f strong %.2f; d=0.7: weak %.2f strong %.2f"):format(we, se, wh, sh))
  t.ok(we > wh + 0.25, "weak does not fall enough")
  t.ok(se > sh and se - sh < (we - wh) / 2, "strong falls too fast")
  t.ok(sh > wh + 0.25, "no gap on hard questions")
end)

t.test("a key point written in the context is copied by both solvers", function()
  local c = sound_candidate(cal.PROMPTS.asi, 40)
  local leak = c.reference_answer:match("^[^.]+%.")
  local function score(role, context)
    return mean_of(60, function(seed)
      local answer = chat(role, "CONTEXT:\n" .. context .. "\n\nQUESTION:\n" .. c.question, seed)
      return judged(c, answer, seed)
    end)
  end
  for _, role in ipairs({ "weak", "strong" }) do
    local with, without = score(role, c.context .. " " .. leak), score(role, c.context)
    t.ok(with > without + 0.03,
      ("%s: %.2f with the leak, %.2f without"):format(role, with, without))
  end
end)

t.test("the judge credits key points stated in the answer", function()
  local c = sound_candidate(cal.PROMPTS.asi, 1)
  local s = mean_of(20, function(seed) return judged(c, c.reference_answer, seed) end)
  t.ok(s > 0.75, "reference answer scored " .. s)
end)

t.test("the judge ignores a reference answer placed in its message", function()
  local c = sound_candidate(cal.PROMPTS.asi, 1)
  local s = mean_of(50, function(seed)
    return judged(c, "I am not sure; it depends on the workload.", seed, true)
  end)
  t.ok(s < 0.15, "an empty answer scored " .. s .. " next to a reference")
end)

t.test("a stated misconception triggers its negative criterion", function()
  local c = sound_candidate(cal.PROMPTS.asi, 1)
  local neg
  for i, item in ipairs(c.rubric) do if item.weight < 0 then neg = neg or i end end
  local claim = c.rubric[neg].criterion:gsub("^%a+ that ", "Note that ")
  local share = mean_of(40, function(seed)
    local _, v = judged(c, c.reference_answer .. " " .. claim, seed)
    return v and (v[neg].met and 1 or 0)
  end)
  t.ok(share > 0.85, "misconception found in " .. share .. " of cases")
end)

-- ---- Analyst ------------------------------------------------------------------------

local REGION = "Write a question about the source.\nAsk about the specific mechanism behind "
  .. "a result. The question should need multi-step reasoning.\nThe context must not reveal "
  .. "the answer."

-- Classify one edit block against the region by what it does to the prompt's difficulty.
local function edit_kind(block, region)
  local old, new = block:match("^<<<<<<< SEARCH [%w_]+\n(.-)\n=======\n(.-)\n>>>>>>> REPLACE$")
  if not old then return "malformed" end
  local s, e = region:find(old, 1, true)
  if not s then return "malformed" end
  local edited = region:sub(1, s - 1) .. new .. region:sub(e + 1)
  local before, after = world.profile(region).weight, world.profile(edited).weight
  if after > before + 1e-9 then return "helpful" end
  if after < before - 1e-9 then return "harmful" end
  return "neutral"
end

t.test("analyst edits come in all three kinds: helpful, harmful and malformed", function()
  local kinds = {}
  for seed = 1, 300 do
    local out = chat("analyst", "Rounds: 40, too easy: 25, failed on strong: 10.\n"
      .. "REGION: challenger_prompt\nBEGIN REGION\n" .. REGION .. "\nEND REGION", seed)
    t.ok(out:find("^%S"), "a rationale comes first")
    for b in out:gmatch("<<<<<<< SEARCH.->>>>>>> REPLACE") do
      local k = edit_kind(b, REGION)
      kinds[k] = (kinds[k] or 0) + 1
    end
  end
  print(("     helpful %d, harmful %d, malformed %d, neutral %d"):format(kinds.helpful or 0,
    kinds.harmful or 0, kinds.malformed or 0, kinds.neutral or 0))
  t.ok((kinds.helpful or 0) > (kinds.harmful or 0), "helpful should be the most common")
  t.ok((kinds.harmful or 0) > 30 and (kinds.malformed or 0) > 20, "all kinds occur")
  t.ok((kinds.neutral or 0) == 0, "edits that change nothing")
end)

t.test("the analyst proposes nothing without a region", function()
  local out = chat("analyst", "Rounds: 40, too easy: 25.", 1)
  t.ok(not out:find("SEARCH", 1, true), out)
end)

-- ---- The paper's two rows -------------------------------------------------------------

t.test("calibration: CoT single pass ~ paper row 1, ASI loop with history ~ row 2", function()
  local t0 = os.clock()
  cal.calls = 0
  local cot = cal.single_pass({ style = "cot", items = 240 })
  local asi = cal.loop({ style = "asi", items = 120, max_rounds = 12 })
  local dt = os.clock() - t0
  print(("     CoT single pass (%d questions): weak %.3f strong %.3f gap %.3f"):format(cot.n,
    cot.weak, cot.strong, cot.gap))
  print(("     ASI loop (%d/%d accepted, %.2f rounds): weak %.3f strong %.3f gap %.3f"):format(
    asi.accepted, asi.items, asi.rounds, asi.weak, asi.strong, asi.gap))
  print(("     %d simulated calls in %.2f s CPU (%.0f per second)"):format(cal.calls, dt,
    cal.calls / dt))
  t.ok(cot.weak > 0.60 and cot.weak < 0.72, "CoT weak")
  t.ok(cot.strong > 0.63 and cot.strong < 0.76, "CoT strong")
  t.ok(cot.gap > 0.0 and cot.gap < 0.07, "CoT gap")
  t.ok(asi.weak > 0.38 and asi.weak < 0.52, "ASI weak")
  t.ok(asi.strong > 0.70 and asi.strong < 0.85, "ASI strong")
  t.ok(asi.gap > 0.24 and asi.gap < 0.40, "ASI gap")
  t.ok(asi.rounds > 2.5 and asi.rounds < 7, "ASI rounds")
end)

t.done()

-- The simulated world's rules: how a challenger prompt and its failure history set the
-- difficulty of the next question, how that difficulty is written into the question
-- text, and how solvers of different skill cover the question's key points.
--
-- PROMPT VOCABULARY (for recipe authors). The challenger reads its system and user
-- messages (minus the failure-history entries) in lowercase and adds the weight of every
-- phrase it finds; each distinct phrase counts once however often it appears:
--
--   source-specific detail            multi-step reasoning
--     "specific mechanism"     +0.05     "multi-step"                 +0.05
--     "paper-specific"         +0.04     "step-by-step derivation"    +0.04
--     "source-specific"        +0.04     "chain of reasoning"         +0.04
--     "design trade-off"       +0.05     "derive"                     +0.03
--     "particular detail"      +0.03       (also matches "derived", "derives")
--   leak avoidance                     other
--     "must not reveal"        +0.02     "think step by step"         +0.02
--     "do not leak"            +0.02     "keep the question simple"   -0.12
--     "without giving away the answer" +0.02
--
--   target = phrase weights + 0.05 per TOO EASY entry (at most +0.30)
--            - 0.03 per FAILED ON STRONG entry (at most -0.15) + noise (sd 0.05),
--            clamped to [0, 0.92]
--
-- History is read from lines that start (after any #, * or -) with TOO EASY, FAILED ON
-- STRONG or FAILED QUALITY CHECK; each following list item ("- ...", "1. ...") or line
-- with a score counts as one entry, until a line that is neither.
--
-- Any source-specific phrase also makes the challenger anchor the question in the
-- note's particulars (fewer open-ended rubric points) and ask for mechanisms and
-- trade-offs first; a multi-step phrase makes it ask for derivations first; a leak
-- phrase cuts the chance that the context gives the answer away from 15% to 4%. Without
-- a source-specific phrase 8% of questions are vague (2% with one). Each FAILED QUALITY
-- CHECK entry cuts the leak chance by 40% and the vague chance by half.
--
-- QUESTION ENCODING. A question is an opener, a main ask and follow-up sentences; each
-- feature below adds its value to the question's difficulty d = 0.05 + sum, and some make
-- the rubric less open-ended (see COMPONENTS). Solvers read d back from the text, so a
-- question replayed from a journal is as hard as when it was written.
local rng = require "moonloop.sim.rng"
local text = require "moonloop.sim.text"
local vocab = require "moonloop.sim.vocab"

local M = {}

M.PHRASES = {
  { "specific mechanism", 0.05, "specific" },
  { "paper-specific", 0.04, "specific" },
  { "source-specific", 0.04, "specific" },
  { "design trade-off", 0.05, "specific" },
  { "particular detail", 0.03, "specific" },
  { "multi-step", 0.05, "steps" },
  { "step-by-step derivation", 0.04, "steps" },
  { "chain of reasoning", 0.04, "steps" },
  { "derive", 0.03, "steps" },
  { "must not reveal", 0.02, "leak" },
  { "do not leak", 0.02, "leak" },
  { "without giving away the answer", 0.02, "leak" },
  { "think step by step", 0.02, "cot" },
  { "keep the question simple", -0.12, "simple" },
}

M.PROMPT_BASE = 0.0
M.TOO_EASY_STEP, M.TOO_EASY_MAX = 0.05, 0.30
M.STRONG_FAIL_STEP, M.STRONG_FAIL_MAX = 0.03, 0.15
M.TARGET_NOISE = 0.05
M.LEAK_P, M.LEAK_P_GUARDED = 0.15, 0.04
M.VAGUE_P, M.VAGUE_P_SPECIFIC = 0.08, 0.02

-- ---- Reading the challenger prompt ------------------------------------------------

local HEADINGS = {
  { "TOO EASY", "too_easy" },
  { "FAILED ON STRONG", "failed_strong" },
  { "FAILED QUALITY CHECK", "failed_check" },
}

local function heading_of(line)
  local bare = line:gsub("^[%s#*_%-=>]+", "")
  for _, h in ipairs(HEADINGS) do
    if bare:sub(1, #h[1]) == h[1] then return h[2] end
  end
  return nil
end

-- An entry of a history section: a list item, an indented line, or a line with a score.
local function is_entry(line)
  return line:match("^%s*[-*+]") or line:match("^%s*%d+[.)]") or line:match("^%s*%[")
    or line:match("^%s+%S") or line:match("%d%.%d") or line:match("^%s*\226\128\162")
end

-- history(s) -> counts { too_easy =, failed_strong =, failed_check = }, and s without the
-- headings and entries (old questions must not count as prompt vocabulary).
function M.history(s)
  local counts = { too_easy = 0, failed_strong = 0, failed_check = 0 }
  local kept, section = {}, nil
  for _, line in ipairs(text.lines(s)) do
    local h = heading_of(line)
    if h then
      section = h
    elseif section and line:match("^%s*$") then
      kept[#kept + 1] = line
    elseif section and is_entry(line) then
      counts[section] = counts[section] + 1
    else
      section = nil
      kept[#kept + 1] = line
    end
  end
  return counts, table.concat(kept, "\n")
end

-- profile(s) -> { weight = sum of phrase weights, found = {phrase...}, specific =,
-- steps =, leak =, cot =, simple = } for prompt text s (history already removed).
function M.profile(s)
  local low = s:lower()
  local p = { weight = 0, found = {} }
  for _, ph in ipairs(M.PHRASES) do
    if low:find(ph[1], 1, true) then
      p.weight = p.weight + ph[2]
      p.found[#p.found + 1] = ph[1]
      p[ph[3]] = true
    end
  end
  return p
end

-- The difficulty the challenger aims at for this request.
function M.target(profile, counts, g)
  local d = M.PROMPT_BASE + profile.weight
  d = d + math.min(M.TOO_EASY_MAX, M.TOO_EASY_STEP * counts.too_easy)
  d = d - math.min(M.STRONG_FAIL_MAX, M.STRONG_FAIL_STEP * counts.failed_strong)
  d = d + M.TARGET_NOISE * g:normal()
  return math.max(0.0, math.min(0.92, d))
end

function M.leak_chance(profile, counts)
  return (profile.leak and M.LEAK_P_GUARDED or M.LEAK_P) * 0.6 ^ counts.failed_check
end

function M.vague_chance(profile, counts)
  return (profile.specific and M.VAGUE_P_SPECIFIC or M.VAGUE_P) * 0.5 ^ counts.failed_check
end

-- ---- Questions ----------------------------------------------------------------------

M.QUESTION_BASE = 0.05
M.OPEN_BASE, M.OPEN_MIN = 0.45, 0.05

-- Question features: marker (lowercase, found in the question), difficulty value and
-- change of open-endedness. `main` asks the question; `extra` is a follow-up sentence.
-- %s slots take topic terms. The derivation's value is per step.
M.COMPONENTS = {
  { name = "mechanism", value = 0.15, open = -0.15, marker = "specific mechanism by which",
    main = "what is the specific mechanism by which the %s affects the %s?",
    extra = "Name the specific mechanism by which the %s affects the %s." },
  { name = "tradeoff", value = 0.12, open = -0.10, marker = "design trade-off between",
    main = "what design trade-off between the %s and the %s does it make?",
    extra = "Weigh the design trade-off between the %s and the %s." },
  { name = "derivation", value = 0.05, open = -0.05, marker = "-step derivation",
    extra = "Give a %d-step derivation of the resulting behaviour." },
  { name = "constraint", value = 0.06, open = 0, marker = "is held fixed",
    extra = "Assume the %s is held fixed." },
  { name = "counterfactual", value = 0.08, open = 0, marker = "what would change if",
    extra = "Say what would change if the %s were removed." },
  { name = "quantify", value = 0.05, open = 0, marker = "estimate how much",
    extra = "Estimate how much the %s contributes to the outcome." },
  { name = "naive", value = 0.07, open = 0, marker = "naive alternative fails",
    extra = "Explain why the naive alternative fails." },
  { name = "anchor", value = 0.04, open = -0.15, marker = "particular values the note gives",
    extra = "Cite the particular values the note gives for the %s." },
}
local BY_NAME = {}
for _, c in ipairs(M.COMPONENTS) do BY_NAME[c.name] = c end

local PLAIN_MAIN = "how does the %s relate to the %s, and what follows for the %s?"
local VAGUE_MAIN = "what does the %s do?"

-- Words of the templates themselves; what is left in a question are its topic terms.
local TEMPLATE_WORDS = {}
do
  local all = { PLAIN_MAIN, VAGUE_MAIN, table.concat(vocab.OPENERS, " ") }
  for _, c in ipairs(M.COMPONENTS) do all[#all + 1] = (c.main or "") .. " " .. (c.extra or "") end
  for _, w in ipairs(text.words(table.concat(all, " "))) do TEMPLATE_WORDS[w] = true end
end

-- Normalised question: one line, single spaces (so wrapping or padding by a driver does
-- not change which key points it has).
function M.normalize(q)
  return text.trim((q:gsub("%s+", " ")))
end

-- decode(question) -> { d =, open =, vague =, parts = {name = count} }.
function M.decode(question)
  local low = question:lower()
  local d, open, parts, any = M.QUESTION_BASE, M.OPEN_BASE, {}, false
  for _, c in ipairs(M.COMPONENTS) do
    local n = 0
    if c.name == "derivation" then
      local steps = low:match("(%d+)%-step derivation")
      n = steps and tonumber(steps) or 0
    else
      local i = 1
      while true do
        local s, e = low:find(c.marker, i, true)
        if not s then break end
        n, i = n + 1, e + 1
      end
    end
    if n > 0 then
      parts[c.name] = n
      d = d + c.value * n
      open = open + c.open
      any = true
    end
  end
  local vague = not any and #text.words(question) < 12
  return { d = math.min(1.0, d), open = math.max(M.OPEN_MIN, open), vague = vague, parts = parts }
end

-- The components a challenger adds to reach difficulty d: preferred ones first.
local function choose_components(g, d, prefer)
  local first, rest = {}, {}
  for _, c in ipairs(M.COMPONENTS) do
    local list = prefer[c.name] and first or rest
    list[#list + 1] = c.name
    if c.name == "constraint" then list[#list + 1] = c.name end -- may appear twice
  end
  local order = g:shuffled(first)
  for _, name in ipairs(g:shuffled(rest)) do order[#order + 1] = name end
  local remaining, chosen = d - M.QUESTION_BASE, {}
  for _, name in ipairs(order) do
    local c = BY_NAME[name]
    if name == "derivation" then
      local steps = math.min(5, math.floor((remaining + 0.02) / c.value))
      if steps >= 2 then
        chosen[#chosen + 1] = { c = c, steps = steps }
        remaining = remaining - c.value * steps
      end
    elseif c.value <= remaining + 0.02 then
      chosen[#chosen + 1] = { c = c }
      remaining = remaining - c.value
    end
  end
  return chosen
end

-- compose(g, d, terms, opts) -> question text. opts: vague =, specific =, steps =.
function M.compose(g, d, terms, opts)
  local function term() return g:pick(terms) end
  local opener = g:pick(vocab.OPENERS)
  if opts.vague then return opener .. " " .. VAGUE_MAIN:format(terms[1]) end
  local prefer = {}
  if opts.specific then prefer.mechanism, prefer.tradeoff, prefer.anchor = true, true, true end
  if opts.steps then prefer.derivation, prefer.naive = true, true end
  local chosen = choose_components(g, d, prefer)
  local main
  for i, ch in ipairs(chosen) do
    if ch.c.main then
      main = ch.c.main:format(terms[1], terms[2] or term())
      table.remove(chosen, i)
      break
    end
  end
  main = main or PLAIN_MAIN:format(terms[1], terms[2] or term(), terms[3] or term())
  local out = { opener .. " " .. main }
  for _, ch in ipairs(chosen) do
    local c = ch.c
    if ch.steps then
      out[#out + 1] = c.extra:format(ch.steps)
    elseif c.name == "tradeoff" or c.name == "mechanism" then
      out[#out + 1] = c.extra:format(term(), term())
    else
      out[#out + 1] = c.extra:format(term())
    end
  end
  return table.concat(out, " ")
end

-- find_question(s) -> the question inside a message: from an opener to the end of its
-- line (trailing quotes dropped); nil when no line holds one.
function M.find_question(s)
  local best
  for _, opener in ipairs(vocab.OPENERS) do
    local at = s:find(opener, 1, true)
    if at and (not best or at < best) then best = at end
  end
  if not best then return nil end
  local line = s:sub(best):match("^[^\n]*")
  return M.normalize((line:gsub("[\"'`]+%s*$", "")))
end

-- Topic terms a question names: its words that are not template words.
local function question_terms(q)
  local out, seen = {}, {}
  for _, w in ipairs(text.words(q)) do
    if #w >= 4 and w:match("^%a[%a%-]*$") and not TEMPLATE_WORDS[w] and not vocab.STOP[w]
      and not seen[w] then
      seen[w] = true
      out[#out + 1] = w
    end
  end
  if #out == 0 then out[1] = "system" end
  return out
end

-- ---- Key points --------------------------------------------------------------------

-- keypoints(question) -> { points = {...}, open = {bool...}, jitter = {...},
-- weights = {...}, misconceptions = {...}, mis_weights = {...} }. A pure function of
-- the normalised question, so the challenger, the solvers and any later replay agree.
function M.keypoints(question)
  local q = M.normalize(question)
  local info = M.decode(q)
  local g = rng.new(rng.hash("keypoints", q))
  local terms = question_terms(q)
  local kp = { points = {}, open = {}, jitter = {}, weights = {}, misconceptions = {},
    mis_weights = {} }
  local n = g:int(7, 10)
  local nouns = g:sample(vocab.KP_NOUNS, n)
  for i = 1, n do
    local term = terms[(i - 1) % #terms + 1]
    kp.points[i] = ("%s %s %s %s"):format(term, nouns[i], g:pick(vocab.KP_VERBS),
      g:pick(vocab.KP_OBJECTS))
    kp.open[i] = g:float() < info.open
    kp.jitter[i] = (g:float() - 0.5) * 0.16
    kp.weights[i] = g:int(1, 10)
  end
  local m = g:int(2, 4)
  local mnouns = g:sample(vocab.MIS_NOUNS, m)
  for j = 1, m do
    local claim = g:pick(vocab.MIS_CLAIMS):format(g:pick(vocab.KP_OBJECTS))
    kp.misconceptions[j] = ("%s %s %s"):format(g:pick(terms), mnouns[j], claim)
    kp.mis_weights[j] = -g:int(2, 8)
  end
  return kp, info
end

-- ---- Solvers ------------------------------------------------------------------------

-- Chance that a solver covers a (closed) key point of difficulty d: c * exp(-(d/tau)^k).
-- Weak falls steeply, strong slowly; both start near the same ceiling on easy questions.
M.SKILL = {
  weak = { c = 0.93, tau = 0.70, k = 1.55, mis = { 0.04, 0.20 } },
  strong = { c = 0.93, tau = 1.70, k = 1.80, mis = { 0.01, 0.04 } },
}
-- An open key point is one angle among several the question allows: any solver picks
-- the same one as the reference with this chance, whatever its skill.
M.OPEN_HIT = 0.50
-- A key point written in the context (a leak) is copied by any solver.
M.LEAK_HIT = 0.95

function M.coverage(role, d)
  local s = M.SKILL[role] or M.SKILL.weak
  return s.c * math.exp(-((math.max(0, d) / s.tau) ^ s.k))
end

-- Chance that a solver states a given misconception at difficulty d.
function M.misconception_chance(role, d)
  local m = (M.SKILL[role] or M.SKILL.weak).mis
  return m[1] + m[2] * d
end

return M

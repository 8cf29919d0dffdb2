-- A tiny stand-in for the loop driver, used to calibrate the simulator and by its tests:
-- challenger -> checker -> 3 weak + judge -> 3 strong + judge, with failure history fed
-- back, run straight against moonloop.sim (no scheduler, no HTTP). It measures what the
-- simulator reproduces: the CoT Self-Instruct and Agentic Self-Instruct rows of the paper.
local sim = require "moonloop.sim"

local M = {}

local json = json -- the runtime's module (a global of the host state)

M.NOTES = {
  [[Log-structured merge trees buffer writes in a memtable and flush them as sorted runs.
Compaction merges runs level by level; the compaction policy decides how much write
amplification the tree pays for read latency. Tombstones mark deletions and are only
dropped when compaction reaches the last level, so tombstones can pile up under a delete-heavy
workload. Bloom filters on each run let point reads skip most runs.]],
  [[Raft elects a leader with randomized election timeouts. The leader appends entries to
its log and replicates them; an entry commits once a majority of followers store it. Leader
leases let the leader serve reads without a round trip, but leases depend on bounded clock
drift. Snapshots truncate the log so that a lagging follower can catch up by installing the
snapshot instead of replaying every entry.]],
  [[Gradient checkpointing trades compute for memory: activations are stored only at
checkpoint layers and recomputed during the backward pass. The checkpoint spacing decides
peak activation memory; recomputation adds roughly one extra forward pass. With pipeline
parallelism, microbatches keep stages busy, and the bubble shrinks as the number of
microbatches grows relative to the number of stages.]],
  [[TCP congestion control keeps a congestion window that grows additively and shrinks
multiplicatively on loss. Slow start doubles the window each round trip until a threshold.
Bufferbloat appears when deep router queues hide loss, so the window grows while queueing
delay climbs. Pacing spreads packets over the round trip and reduces bursts that overflow
shallow queues.]],
  [[A work-stealing scheduler gives each worker a deque of tasks. Workers push and pop at
the bottom of their own deque; idle workers steal from the top of a random victim. Stealing
keeps all cores busy while the common path stays free of contention. Continuation stealing
preserves the serial order of execution and bounds stack usage, while child stealing is
simpler to implement in a library.]],
  [[Content-addressed storage names every chunk by the hash of its bytes, so identical
chunks are stored once. Chunking with a rolling hash finds boundaries from content, which
keeps deduplication stable when bytes are inserted. Garbage collection must find chunks no
manifest references; reference counting is fast but fragile under crashes, while
mark-and-sweep needs a pause or a careful concurrent design.]],
}

M.SYSTEM = "Return one JSON object with the fields context, question, reference_answer, "
  .. "question_type and rubric, a list of {criterion, weight}: 7-10 positive criteria "
  .. "weighted 1 to 10 and 2-4 negative ones weighted -1 to -10."

M.PROMPTS = {
  -- CoT Self-Instruct: one pass, reasoning first, no push for difficulty.
  cot = "Read the technical note below and think step by step before writing the question. "
    .. "Then write one challenging question about it, with a reference answer and a "
    .. "grading rubric.",
  -- Agentic Self-Instruct: the features the paper's accepted questions ended up with.
  asi = "Write a research question that separates strong models from weak ones. Ask about "
    .. "the specific mechanism behind a result or a design trade-off, using paper-specific "
    .. "details. The question should need multi-step reasoning: the solver has to derive "
    .. "the answer. The context must not reveal the answer. Think step by step before "
    .. "writing the question.",
}

-- Fig. 7 of the paper (the deployed prompt), without the "no zeros" clause.
M.ACCEPT = { weak_mean_max = 0.65, weak_best_max = 0.75, strong_mean_min = 0.60,
  strong_mean_max = 0.95, gap_min = 0.20 }

local function call(role, messages, seed)
  local a = sim.chat({ model = "sim", messages = messages, seed = seed }, 0, role)
  M.calls = (M.calls or 0) + 1
  return a.text
end

-- Send, and on output that does not parse, one repair turn (as the driver does).
local function call_json(role, messages, seed, valid)
  local out = call(role, messages, seed)
  local ok, v = pcall(json.extract, out)
  if ok and valid(v) then return v end
  local again = table.move(messages, 1, #messages, 1, {})
  again[#again + 1] = { role = "assistant", content = out }
  again[#again + 1] = { role = "user", content = "That output is not valid. Return only the JSON." }
  ok, v = pcall(json.extract, call(role, again, seed))
  if ok and valid(v) then return v end
  return nil
end

local function valid_candidate(c)
  if type(c) ~= "table" or type(c.question) ~= "string" or type(c.rubric) ~= "table" then
    return false
  end
  for _, item in ipairs(c.rubric) do
    if type(item) ~= "table" or math.type(item.weight) ~= "integer" then return false end
  end
  return true
end

local function history_block(h)
  local out = { "Earlier attempts on this source; write an entirely new question from a "
    .. "different angle that needs deeper reasoning." }
  for _, sec in ipairs({ { "TOO EASY", h.too_easy }, { "FAILED ON STRONG", h.failed_strong },
    { "FAILED QUALITY CHECK", h.failed_check } }) do
    if #sec[2] > 0 then
      out[#out + 1] = sec[1]
      for _, line in ipairs(sec[2]) do out[#out + 1] = "- " .. line end
    end
  end
  return table.concat(out, "\n")
end

local function challenger_messages(style, note, h)
  local user = M.PROMPTS[style] .. "\n\nSOURCE:\n" .. note
  if h and (#h.too_easy + #h.failed_strong + #h.failed_check) > 0 then
    user = user .. "\n\n" .. history_block(h)
  end
  return { { role = "system", content = M.SYSTEM }, { role = "user", content = user } }
end

-- score(rubric, verdicts): clamp((positive met - |negative| met) / positive total, 0, 1).
function M.score(rubric, verdicts)
  local met, pos, got = {}, 0, 0
  for _, v in ipairs(verdicts) do met[v.id] = v.met == true end
  for i, item in ipairs(rubric) do
    local w = item.weight
    if w > 0 then pos = pos + w end
    if met[i] then got = got + w end
  end
  if pos == 0 then return 0 end
  return math.max(0, math.min(1, got / pos))
end

local function solve(role, c, seed, k)
  local numbered = {}
  for i, item in ipairs(c.rubric) do numbered[i] = ("%d. %s"):format(i, item.criterion) end
  local scores, sum, best = {}, 0, 0
  for s = 1, k do
    local answer = call(role, { { role = "user", content = "Context:\n" .. c.context
      .. "\n\nQuestion:\n" .. c.question } }, seed * 10 + s)
    local judged = call_json("judge", { { role = "user", content = "Question:\n" .. c.question
      .. "\n\nRubric criteria:\n" .. table.concat(numbered, "\n") .. "\n\nAnswer:\n" .. answer } },
      seed * 10 + s, function(v) return type(v) == "table" and type(v.verdicts) == "table" end)
    scores[s] = judged and M.score(c.rubric, judged.verdicts) or 0
    sum, best = sum + scores[s], math.max(best, scores[s])
  end
  return sum / k, best
end

-- round(style, note, history, seed) -> { status = "accepted" | "too_easy" |
-- "failed_strong" | "failed_check" | "broken", weak =, strong =, candidate = }.
function M.round(style, note, h, seed)
  local c = call_json("challenger", challenger_messages(style, note, h), seed, valid_candidate)
  if not c then return { status = "broken" } end
  local qv = call_json("checker", { { role = "user", content = "SOURCE:\n" .. note
    .. "\n\nCANDIDATE:\n" .. json.encode(c, { sort_keys = true }) } }, seed,
    function(v) return type(v) == "table" and type(v.pass) == "boolean" end)
  if not (qv and qv.pass) then
    return { status = "failed_check", candidate = c, reason = qv and qv.reason or "unreadable" }
  end
  local r = { candidate = c }
  r.weak, r.weak_best = solve("weak", c, seed, 3)
  r.strong = select(1, solve("strong", c, seed, 3))
  local a = M.ACCEPT
  if r.weak > a.weak_mean_max or r.weak_best > a.weak_best_max then
    r.status = "too_easy"
  elseif r.strong < a.strong_mean_min or r.strong >= a.strong_mean_max
    or r.strong - r.weak < a.gap_min then
    r.status = "failed_strong"
  else
    r.status = "accepted"
  end
  return r
end

local function remember(h, r)
  local q = r.candidate and r.candidate.question or "(unreadable)"
  local t = r.candidate and r.candidate.question_type or "?"
  if r.status == "too_easy" then
    h.too_easy[#h.too_easy + 1] = ("[%s] %s (weak %.2f)"):format(t, q, r.weak)
  elseif r.status == "failed_strong" then
    h.failed_strong[#h.failed_strong + 1] = ("[%s] %s (weak %.2f, strong %.2f, gap %.2f)")
      :format(t, q, r.weak, r.strong, r.strong - r.weak)
  else
    h.failed_check[#h.failed_check + 1] = ("[%s] %s (reason: %s)"):format(t, q,
      r.reason or r.status)
  end
end

-- single_pass{ style =, items = } -> mean weak and strong over the questions that pass
-- the checker (CoT Self-Instruct: one round, no acceptance filter).
function M.single_pass(opts)
  local n, weak, strong = 0, 0, 0
  for i = 1, opts.items do
    local note = M.NOTES[(i - 1) % #M.NOTES + 1]
    local r = M.round(opts.style, note, nil, (opts.seed or 1) * 100003 + i)
    if r.weak then
      n, weak, strong = n + 1, weak + r.weak, strong + r.strong
    end
  end
  return { n = n, weak = weak / n, strong = strong / n, gap = (strong - weak) / n }
end

-- loop{ style =, items =, max_rounds = } -> means over accepted items, with rounds used.
function M.loop(opts)
  local acc, weak, strong, rounds, statuses = 0, 0, 0, 0, {}
  for i = 1, opts.items do
    local h = { too_easy = {}, failed_strong = {}, failed_check = {} }
    local note = M.NOTES[(i - 1) % #M.NOTES + 1]
    for round = 1, opts.max_rounds or 10 do
      local r = M.round(opts.style, note, h, ((opts.seed or 1) * 100003 + i) * 64 + round)
      statuses[r.status] = (statuses[r.status] or 0) + 1
      if r.status == "accepted" then
        acc, weak, strong, rounds = acc + 1, weak + r.weak, strong + r.strong, rounds + round
        break
      end
      remember(h, r)
    end
  end
  return { accepted = acc, items = opts.items, weak = weak / acc, strong = strong / acc,
    gap = (strong - weak) / acc, rounds = rounds / acc, statuses = statuses }
end

return M

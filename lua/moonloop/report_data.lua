-- The run report's data: everything the page and the text summary show, read from run.db
-- in one read transaction (read-only, so it works on a live run; WAL readers never block
-- the writer), plus the helpers both renderings share. It copes with older stores that
-- lack the recipe-evolution columns, and with runs that have not started yet.
local chart = require "moonloop.chart"

local M = {}

local MAX_BUCKETS = 40        -- iterations or time bins drawn; more are grouped
local MAX_VERSIONS_CHART = 60 -- recipe versions in the per-version charts
local MAX_TREE_NODES = 150    -- versions drawn in the lineage tree
local SAMPLE_ACCEPTED = 4
local SAMPLE_REJECTED = 2     -- per failure category
local TEXT_CUT = 1500         -- characters of an example's question, context, answer

local CATEGORY_ORDER = { "accepted", "too_easy", "failed_on_strong", "failed_quality", "error" }
local CATEGORY_COLOR = { accepted = "#59a14f", too_easy = "#edc948", failed_on_strong = "#e15759",
  failed_quality = "#b07aa1", error = "#4b5563" }
local CATEGORY_NAME = { accepted = "accepted", too_easy = "too easy",
  failed_on_strong = "failed on strong", failed_quality = "failed quality check", error = "error" }
local ROLE_ORDER = { "challenger", "checker", "weak", "strong", "judge" }
local ROLE_COLOR = { challenger = "#b07aa1", checker = "#9c755f", weak = "#f28e2b",
  strong = "#4e79a7", judge = "#76b7b2" }
local STATUS_COLOR = { root = "#6b7280", kept = "#3d8b37", rejected = "#d1453b" }
local STATUS_FILL = { root = "#f3f4f6", kept = "#e8f5e4", rejected = "#fdecea" }
local SCORE_COLOR = { weak = "#f28e2b", strong = "#4e79a7", gap = "#59a14f", rate = "#7c5cbf" }

-- ---------------------------------------------------------------------------------------
-- Reading run.db

local function ordered(keys, preferred)
  local out, seen = {}, {}
  for _, k in ipairs(preferred) do
    if keys[k] then out[#out + 1] = k; seen[k] = true end
  end
  local rest = {}
  for k in pairs(keys) do if not seen[k] then rest[#rest + 1] = k end end
  table.sort(rest)
  for _, k in ipairs(rest) do out[#out + 1] = k end
  return out
end

local function open_db(dir)
  if type(dir) ~= "string" or dir == "" then return nil, "no run directory given" end
  if not fs.exists(dir) then return nil, dir .. ": no such directory" end
  local path = fs.join(dir, "run.db")
  if not fs.exists(path) then
    return nil, dir .. " is not a run directory (it has no run.db)"
  end
  local ok, db = pcall(sqlite.open, path, { readonly = true, busy_timeout_ms = 5000 })
  if not ok then return nil, ("%s: cannot open: %s"):format(path, tostring(db)) end
  local tok, tables = pcall(db.query, db, "SELECT name FROM sqlite_master WHERE type = 'table'")
  if not tok then
    db:close()
    return nil, ("%s: cannot read: %s"):format(path, tostring(tables))
  end
  local names = {}
  for _, r in ipairs(tables) do names[r.name] = true end
  for _, need in ipairs({ "items", "rounds", "examples", "journal" }) do
    if not names[need] then
      db:close()
      return nil, ("%s is not a moonloop run store (it has no %s table)"):format(path, need)
    end
  end
  return db, names
end

function M.check(dir)
  local db, why = open_db(dir)
  if not db then return nil, why end
  db:close()
  return true
end

local function columns(db, tbl)
  local set = {}
  for _, r in ipairs(db:query("PRAGMA table_info(" .. tbl .. ")")) do set[r.name] = true end
  return set
end

local function decode(s)
  if type(s) ~= "string" or s == "" then return nil end
  local ok, v = pcall(json.decode, s)
  if ok and type(v) == "table" then return v end
  return nil
end

local function num(v) return type(v) == "number" and v or tonumber(v) end

-- Percentile by nearest rank of a sorted list.
local function pct(sorted, p)
  local n = #sorted
  if n == 0 then return nil end
  local k = math.max(1, math.min(n, math.ceil(p / 100 * n)))
  return sorted[k]
end

local function time_bin_width(span, want)
  for _, w in ipairs({ 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800,
      21600, 43200, 86400 }) do
    if span / w <= want then return w end
  end
  return math.ceil(span / want / 86400) * 86400
end

local function read_versions(db, present)
  if not present.recipe_versions then return {} end
  local cols = columns(db, "recipe_versions")
  local want = { "version", "parent", "path", "rationale", "scores", "created", "edit", "status",
    "reason", "strategy", "iteration", "generation" }
  local sel = {}
  for _, c in ipairs(want) do sel[#sel + 1] = cols[c] and c or ("NULL AS " .. c) end
  local rows = db:query("SELECT " .. table.concat(sel, ", ") .. " FROM recipe_versions ORDER BY version")
  local byv = {}
  for _, r in ipairs(rows) do
    r.scores = decode(r.scores) or {}
    r.version = math.tointeger(num(r.version)) or r.version
    byv[r.version] = r
  end
  -- A parent must be an earlier version that exists, so the lineage is always a forest.
  for _, r in ipairs(rows) do
    local p = math.tointeger(num(r.parent))
    if not (p and byv[p] and p < r.version) then p = nil end
    r.parent = p
    if not r.status or r.status == "" then r.status = p and "kept" or "root" end
  end
  return rows
end

-- Everything the report shows, read in one read transaction (a consistent snapshot even
-- while a run writes; WAL readers never block the writer).
local function collect(dir)
  local db, present = open_db(dir)
  if not db then error("report: " .. present, 0) end
  local ok, data = pcall(function()
    db:exec("BEGIN")
    local d = { dir = dir, generated = os.date("!%Y-%m-%dT%H:%M:%SZ") }
    d.meta = {}
    if present.meta then
      for _, r in ipairs(db:query("SELECT key, value FROM meta")) do d.meta[r.key] = r.value end
    end
    local icols = columns(db, "items")
    local rcols = columns(db, "rounds")
    local ecols = columns(db, "examples")
    local iv = icols.recipe_version and "recipe_version" or "NULL"
    local rv = rcols.recipe_version and "recipe_version" or "NULL"
    local ev = ecols.recipe_version and "recipe_version" or "NULL"

    d.totals = db:first([[SELECT COUNT(*) AS items, COALESCE(SUM(status = 'accepted'), 0) AS accepted,
        COALESCE(SUM(status = 'exhausted'), 0) AS exhausted, COALESCE(SUM(status = 'error'), 0) AS errors,
        COALESCE(SUM(status NOT IN ('accepted', 'exhausted', 'error')), 0) AS pending,
        COUNT(DISTINCT iteration) AS iterations FROM items]])
    local ex = db:first([[SELECT COUNT(*) AS n, AVG(weak_mean) AS weak, AVG(strong_mean) AS strong,
        AVG(gap) AS gap, AVG(round) AS rounds FROM examples]])
    d.totals.examples, d.totals.weak, d.totals.strong = ex.n, ex.weak, ex.strong
    d.totals.gap, d.totals.rounds_per_example = ex.gap, ex.rounds
    d.categories = {}
    local nrounds = 0
    for _, r in ipairs(db:query("SELECT COALESCE(category, 'error') AS category, COUNT(*) AS n FROM rounds GROUP BY 1")) do
      d.categories[r.category] = r.n
      nrounds = nrounds + r.n
    end
    d.totals.rounds = nrounds
    local j = db:first([[SELECT COUNT(*) AS calls, COALESCE(SUM(input_tokens), 0) AS input,
        COALESCE(SUM(output_tokens), 0) AS output, SUM(cost_usd) AS cost,
        COALESCE(SUM(cost_usd IS NULL), 0) AS unpriced, MIN(created) AS first, MAX(created) AS last,
        CAST(strftime('%s', MIN(created)) AS INTEGER) AS t0,
        CAST(strftime('%s', MAX(created)) AS INTEGER) AS t1 FROM journal]])
    d.journal = j
    local c0 = d.meta.created and db:first("SELECT CAST(strftime('%s', ?) AS INTEGER) AS t", d.meta.created)
    d.started = c0 and c0.t or j.t0
    d.elapsed = (d.started and j.t1) and math.max(0, j.t1 - d.started) or nil

    d.roles = db:query([[SELECT COALESCE(role, '?') AS role, COUNT(*) AS calls,
        COALESCE(SUM(input_tokens), 0) AS input, COALESCE(SUM(output_tokens), 0) AS output,
        SUM(cost_usd) AS cost, COALESCE(SUM(cost_usd IS NULL), 0) AS unpriced
        FROM journal GROUP BY 1]])
    table.sort(d.roles, function(a, b)
      local ia, ib = 99, 99
      for i, r in ipairs(ROLE_ORDER) do
        if r == a.role then ia = i end
        if r == b.role then ib = i end
      end
      if ia ~= ib then return ia < ib end
      return a.role < b.role
    end)

    -- Per iteration: items, examples (as sums, so groups of iterations average right),
    -- round categories, and the journal's calls, tokens and cost by role.
    local iters, by_it = {}, {}
    local function it(n)
      n = math.tointeger(num(n)) or 0
      if not by_it[n] then
        by_it[n] = { iteration = n, items = 0, accepted = 0, exhausted = 0, errors = 0, pending = 0,
          ex = 0, weak_sum = 0, weak_n = 0, strong_sum = 0, strong_n = 0, gap_sum = 0, gap_n = 0,
          rounds_sum = 0, cats = {}, calls = 0, input = 0, output = 0, cost = 0, unpriced = 0,
          roles = {}, vmin = nil, vmax = nil }
        iters[#iters + 1] = by_it[n]
      end
      return by_it[n]
    end
    for _, r in ipairs(db:query(([[SELECT iteration, COUNT(*) AS n, COALESCE(SUM(status = 'accepted'), 0) AS acc,
        COALESCE(SUM(status = 'exhausted'), 0) AS exh, COALESCE(SUM(status = 'error'), 0) AS err,
        COALESCE(SUM(status NOT IN ('accepted', 'exhausted', 'error')), 0) AS pend,
        MIN(%s) AS vmin, MAX(%s) AS vmax FROM items GROUP BY iteration]]):format(iv, iv))) do
      local t = it(r.iteration)
      t.items, t.accepted, t.exhausted, t.errors, t.pending = r.n, r.acc, r.exh, r.err, r.pend
      t.vmin, t.vmax = r.vmin, r.vmax
    end
    for _, r in ipairs(db:query([[SELECT i.iteration AS iteration, COUNT(*) AS n,
        TOTAL(e.weak_mean) AS ws, COUNT(e.weak_mean) AS wn, TOTAL(e.strong_mean) AS ss,
        COUNT(e.strong_mean) AS sn, TOTAL(e.gap) AS gs, COUNT(e.gap) AS gn, TOTAL(e.round) AS rs
        FROM examples e JOIN items i ON i.id = e.item_id GROUP BY i.iteration]])) do
      local t = it(r.iteration)
      t.ex, t.weak_sum, t.weak_n, t.strong_sum, t.strong_n = r.n, r.ws, r.wn, r.ss, r.sn
      t.gap_sum, t.gap_n, t.rounds_sum = r.gs, r.gn, r.rs
    end
    for _, r in ipairs(db:query([[SELECT i.iteration AS iteration, COALESCE(r.category, 'error') AS category,
        COUNT(*) AS n FROM rounds r JOIN items i ON i.id = r.item_id GROUP BY 1, 2]])) do
      local t = it(r.iteration)
      t.cats[r.category] = (t.cats[r.category] or 0) + r.n
    end
    for _, r in ipairs(db:query([[SELECT i.iteration AS iteration, COALESCE(j.role, '?') AS role,
        COUNT(*) AS calls, COALESCE(SUM(j.input_tokens), 0) AS input,
        COALESCE(SUM(j.output_tokens), 0) AS output, TOTAL(j.cost_usd) AS cost,
        COALESCE(SUM(j.cost_usd IS NULL), 0) AS unpriced
        FROM journal j JOIN items i ON i.id = j.item_id GROUP BY 1, 2]])) do
      local t = it(r.iteration)
      t.calls, t.input, t.output = t.calls + r.calls, t.input + r.input, t.output + r.output
      t.cost, t.unpriced = t.cost + r.cost, t.unpriced + r.unpriced
      t.roles[r.role] = { calls = r.calls, tokens = r.input + r.output, cost = r.cost,
        unpriced = r.unpriced }
    end
    table.sort(iters, function(a, b) return a.iteration < b.iteration end)
    d.iterations = iters

    -- Recipe versions: the lineage, each version's own evaluation (scores), and what the
    -- items it produced measured.
    d.versions = read_versions(db, present)
    local vstats = {}
    local function vs(v)
      v = math.tointeger(num(v))
      if not v then return nil end
      vstats[v] = vstats[v] or { items = 0, accepted = 0, finished = 0, ex = 0, cats = {}, rounds = 0 }
      return vstats[v]
    end
    for _, r in ipairs(db:query(([[SELECT %s AS v, COUNT(*) AS n, COALESCE(SUM(status = 'accepted'), 0) AS acc,
        COALESCE(SUM(status IN ('accepted', 'exhausted', 'error')), 0) AS fin FROM items GROUP BY 1]]):format(iv))) do
      local s = vs(r.v)
      if s then s.items, s.accepted, s.finished = r.n, r.acc, r.fin end
    end
    for _, r in ipairs(db:query(([[SELECT %s AS v, COUNT(*) AS n, AVG(weak_mean) AS weak,
        AVG(strong_mean) AS strong, AVG(gap) AS gap FROM examples GROUP BY 1]]):format(ev))) do
      local s = vs(r.v)
      if s then s.ex, s.weak, s.strong, s.gap = r.n, r.weak, r.strong, r.gap end
    end
    for _, r in ipairs(db:query(([[SELECT %s AS v, COALESCE(category, 'error') AS category, COUNT(*) AS n
        FROM rounds GROUP BY 1, 2]]):format(rv))) do
      local s = vs(r.v)
      if s then
        s.cats[r.category] = r.n
        s.rounds = s.rounds + r.n
      end
    end
    d.vstats = vstats
    local known = {}
    for _, v in ipairs(d.versions) do known[v.version] = true end
    for v in pairs(vstats) do -- versions that made items but have no row (older stores)
      if not known[v] then
        d.versions[#d.versions + 1] = { version = v, status = v == 1 and "root" or "kept", scores = {} }
      end
    end
    table.sort(d.versions, function(a, b) return a.version < b.version end)

    -- Tokens and cost over time: bins of wall-clock time, or of request order when the
    -- whole run took only a few seconds (the simulator).
    d.timeline = { bins = {}, nbins = 0 }
    if j.calls > 0 then
      local span = (j.t0 and j.t1) and (j.t1 - j.t0) or 0
      local rows
      if span >= 5 then
        local w = time_bin_width(span, 60)
        d.timeline.kind, d.timeline.width, d.timeline.span = "time", w, span
        d.timeline.nbins = span // w + 1
        rows = db:query([[SELECT COALESCE(role, '?') AS role,
            (CAST(strftime('%s', created) AS INTEGER) - ?) / ? AS bin, COUNT(*) AS calls,
            COALESCE(SUM(input_tokens), 0) + COALESCE(SUM(output_tokens), 0) AS tokens,
            TOTAL(cost_usd) AS cost FROM journal WHERE created IS NOT NULL GROUP BY 1, 2]], j.t0, w)
      else
        local rr = db:first("SELECT MIN(rowid) AS lo, MAX(rowid) AS hi FROM journal")
        local n = rr.hi - rr.lo + 1
        local nb = math.min(30, n)
        d.timeline.kind, d.timeline.width = "order", n / nb
        d.timeline.nbins, d.timeline.requests = nb, n
        rows = db:query([[SELECT COALESCE(role, '?') AS role, ((rowid - ?) * ?) / ? AS bin,
            COUNT(*) AS calls, COALESCE(SUM(input_tokens), 0) + COALESCE(SUM(output_tokens), 0) AS tokens,
            TOTAL(cost_usd) AS cost FROM journal GROUP BY 1, 2]], rr.lo, nb, n)
      end
      d.timeline.bins = rows
    end

    -- Latency per model (the journal holds each answer's provider and model).
    local lat = {}
    for _, r in ipairs(db:query([[SELECT COALESCE(role, '?') AS role,
        json_extract(response, '$.provider') AS provider, json_extract(response, '$.model') AS model,
        latency_ms FROM journal WHERE latency_ms IS NOT NULL AND json_valid(response)]])) do
      local key = (r.provider and r.model) and (r.provider .. "/" .. r.model) or (r.model or "?")
      local m = lat[key]
      if not m then
        m = { model = key, values = {}, roles = {} }
        lat[key] = m
      end
      m.values[#m.values + 1] = r.latency_ms
      m.roles[r.role] = true
    end
    d.latency = {}
    for _, m in pairs(lat) do
      table.sort(m.values)
      m.n = #m.values
      m.p50, m.p90, m.p99 = pct(m.values, 50), pct(m.values, 90), pct(m.values, 99)
      m.max = m.values[#m.values]
      local sum = 0
      for _, v in ipairs(m.values) do sum = sum + v end
      m.mean = sum / m.n
      local rl = {}
      for r in pairs(m.roles) do rl[#rl + 1] = r end
      table.sort(rl)
      m.role_list = rl
      d.latency[#d.latency + 1] = m
    end
    table.sort(d.latency, function(a, b) return a.n > b.n or (a.n == b.n and a.model < b.model) end)

    d.samples = M._samples(db, rv)
    db:exec("COMMIT")
    return d
  end)
  if not ok then pcall(db.exec, db, "ROLLBACK") end
  db:close()
  if not ok then error(data, 0) end
  return data
end

-- A few accepted examples (spread over the range of gaps) and the latest rejected rounds
-- of each category, with their rubric and the judge's verdict per criterion and sample.
function M._samples(db, rv)
  local picks = {}
  local acc = db:query("SELECT item_id, round FROM examples ORDER BY gap, item_id")
  if #acc > 0 then
    local want = math.min(SAMPLE_ACCEPTED, #acc)
    local seen = {}
    for k = want, 1, -1 do -- highest gap first, then down to the lowest
      local i = want == 1 and #acc or math.floor(1 + (k - 1) * (#acc - 1) / (want - 1) + 0.5)
      if not seen[i] then
        seen[i] = true
        picks[#picks + 1] = { item = acc[i].item_id, round = acc[i].round, accepted = true }
      end
    end
  end
  for _, cat in ipairs({ "too_easy", "failed_on_strong", "failed_quality", "error" }) do
    for _, r in ipairs(db:query([[SELECT item_id, round FROM rounds WHERE accepted = 0 AND category = ?
        ORDER BY item_id DESC, round DESC LIMIT ?]], cat, SAMPLE_REJECTED)) do
      picks[#picks + 1] = { item = r.item_id, round = r.round, accepted = false }
    end
  end
  if #picks == 0 then return {} end
  local ids, seen_id = {}, {}
  for _, p in ipairs(picks) do
    local rr = db:first(([[SELECT r.category AS category, r.reason AS reason, r.weak_mean AS weak_mean,
        r.strong_mean AS strong_mean, r.gap AS gap, r.record AS record, %s AS version,
        i.source AS source, i.iteration AS iteration FROM rounds r LEFT JOIN items i ON i.id = r.item_id
        WHERE r.item_id = ? AND r.round = ?]]):format(rv == "NULL" and "NULL" or "r.recipe_version"),
      p.item, p.round)
    if rr then
      for k, v in pairs(rr) do p[k] = v end
      p.rec = decode(rr.record) or {}
      p.record = nil
    end
    if not seen_id[p.item] then
      seen_id[p.item] = true
      ids[#ids + 1] = p.item
    end
  end
  -- The judge's verdicts: the last usable answer per (side, sample) of each picked round.
  local marks = {}
  local holes = {}
  for i = 1, #ids do holes[i] = "?" end
  local rows = db:query(([[SELECT item_id, round, json_extract(request, '$.tags.of') AS side,
      json_extract(request, '$.tags.sample') AS sample, json_extract(response, '$.text') AS text
      FROM journal WHERE role = 'judge' AND item_id IN (%s) AND json_valid(request)
      AND json_valid(response) ORDER BY rowid]]):format(table.concat(holes, ",")), table.unpack(ids))
  for _, p in ipairs(picks) do
    local rubric = p.rec and p.rec.example and p.rec.example.rubric
    if type(rubric) == "table" then
      p.verdicts = { weak = {}, strong = {} }
      for _, r in ipairs(rows) do
        if r.item_id == p.item and r.round == p.round and (r.side == "weak" or r.side == "strong")
            and type(r.text) == "string" then
          local ok, v = pcall(json.extract, r.text)
          local list = ok and type(v) == "table" and v.verdicts
          if type(list) == "table" then
            local met, seen = {}, 0
            for _, e in ipairs(list) do
              local id = math.tointeger(tonumber(e.id))
              if id and id >= 1 and id <= #rubric and type(e.met) == "boolean" and met[id] == nil then
                met[id] = e.met
                seen = seen + 1
              end
            end
            if seen == #rubric then p.verdicts[r.side][tonumber(r.sample) or 1] = met end
          end
        end
      end
    end
  end
  return picks
end

-- ---------------------------------------------------------------------------------------
-- Shared helpers for both renderings

local function f2(v) return type(v) == "number" and ("%.2f"):format(v) or "-" end
local function pcnt(a, b) return (b and b > 0) and ("%.1f%%"):format(100 * a / b) or "-" end
local function int(v)
  v = math.tointeger(num(v) and math.floor(num(v) + 0.5)) or 0
  local s = tostring(v)
  local out = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return (out:gsub("^(%-?),", "%1"))
end
local function usd(v, unpriced)
  if (unpriced or 0) > 0 or type(v) ~= "number" then return nil end
  if v < 0.01 and v > 0 then return ("$%.4f"):format(v) end
  return ("$%.2f"):format(v)
end
local function ms(v)
  if type(v) ~= "number" then return "-" end
  return v < 10 and ("%.2f"):format(v) or ("%.0f"):format(v)
end
local function duration(s)
  if not s then return "-" end
  if s < 120 then return ("%d s"):format(s) end
  if s < 7200 then return ("%d min %d s"):format(s // 60, s % 60) end
  return ("%d h %d min"):format(s // 3600, (s % 3600) // 60)
end

-- Iterations grouped into at most `max` buckets; sums add, means are re-weighted.
local function bucketize(iters, max)
  local n = #iters
  local size = math.max(1, math.ceil(n / max))
  local out = {}
  for s = 1, n, size do
    local b = { first = iters[s].iteration, last = iters[math.min(n, s + size - 1)].iteration,
      items = 0, accepted = 0, exhausted = 0, errors = 0, pending = 0, ex = 0, weak_sum = 0,
      weak_n = 0, strong_sum = 0, strong_n = 0, gap_sum = 0, gap_n = 0, rounds_sum = 0, cats = {},
      calls = 0, input = 0, output = 0, cost = 0, unpriced = 0, roles = {}, versions = {} }
    for k = s, math.min(n, s + size - 1) do
      local t = iters[k]
      for _, f in ipairs({ "items", "accepted", "exhausted", "errors", "pending", "ex", "weak_sum",
          "weak_n", "strong_sum", "strong_n", "gap_sum", "gap_n", "rounds_sum", "calls", "input",
          "output", "cost", "unpriced" }) do
        b[f] = b[f] + (t[f] or 0)
      end
      for c, v in pairs(t.cats) do b.cats[c] = (b.cats[c] or 0) + v end
      for r, v in pairs(t.roles) do
        local e = b.roles[r] or { calls = 0, tokens = 0, cost = 0, unpriced = 0 }
        e.calls, e.tokens = e.calls + v.calls, e.tokens + v.tokens
        e.cost, e.unpriced = e.cost + v.cost, e.unpriced + v.unpriced
        b.roles[r] = e
      end
      if t.vmin then b.vmin = math.min(b.vmin or t.vmin, t.vmin) end
      if t.vmax then b.vmax = math.max(b.vmax or t.vmax, t.vmax) end
    end
    b.label = b.first == b.last and tostring(b.first) or (b.first .. "-" .. b.last)
    local finished = b.accepted + b.exhausted + b.errors
    b.finished = finished
    b.rate = finished > 0 and b.accepted / finished or nil
    b.weak = b.weak_n > 0 and b.weak_sum / b.weak_n or nil
    b.strong = b.strong_n > 0 and b.strong_sum / b.strong_n or nil
    b.gap = b.gap_n > 0 and b.gap_sum / b.gap_n or nil
    b.vlabel = b.vmin and (b.vmin == b.vmax and ("v" .. b.vmin) or ("v" .. b.vmin .. "-v" .. b.vmax)) or "-"
    out[#out + 1] = b
  end
  return out, size
end

local function all_categories(d)
  local keys = {}
  for c in pairs(d.categories) do keys[c] = true end
  return ordered(keys, CATEGORY_ORDER)
end

local function version_label(v) return "v" .. tostring(v.version) end

-- The version measured numbers or, failing that, its own evaluation.
local function version_numbers(d, v)
  local s = d.vstats[v.version]
  local sc = v.scores or {}
  local out = { eval = next(sc) ~= nil }
  out.rate = num(sc.pass_rate)
  out.weak, out.strong, out.gap = num(sc.weak), num(sc.strong), num(sc.gap)
  out.eval_items = num(sc.items)
  if s then
    out.m_rate = s.finished > 0 and s.accepted / s.finished or nil
    out.m_weak, out.m_strong, out.m_gap = s.weak, s.strong, s.gap
    out.items, out.accepted, out.finished = s.items, s.accepted, s.finished
  end
  if out.rate == nil then out.rate = out.m_rate end
  if out.weak == nil then out.weak, out.strong, out.gap = out.m_weak, out.m_strong, out.m_gap end
  return out
end

local function current_version(d)
  local cur
  for _, v in ipairs(d.versions) do
    if v.status == "root" or v.status == "kept" then cur = v end
  end
  return cur
end

local function run_name(d)
  return d.meta.recipe or "run"
end

local function status_line(d)
  local t = d.totals
  local done = t.accepted + t.exhausted + t.errors
  if t.items == 0 then return "no work items yet" end
  if t.pending == 0 then return ("finished: all %d items done"):format(t.items) end
  return ("%d of %d items done, %d not finished (still running, or stopped: resume with moonloop run --resume %s)")
    :format(done, t.items, t.pending, d.dir)
end

local function clean(s, max)
  s = chart.valid_utf8(tostring(s or "")):gsub("[%z\1-\31\127]", " "):gsub("%s+", " ")
  if max and (utf8.len(s) or #s) > max then
    s = s:sub(1, utf8.offset(s, max) - 1) .. "..."
  end
  return s
end

-- Shared with moonloop.report (text) and moonloop.report_html (the page).
M.collect = collect
M.MAX_BUCKETS, M.MAX_VERSIONS_CHART, M.MAX_TREE_NODES = MAX_BUCKETS, MAX_VERSIONS_CHART, MAX_TREE_NODES
M.TEXT_CUT = TEXT_CUT
M.CATEGORY_ORDER, M.CATEGORY_COLOR, M.CATEGORY_NAME = CATEGORY_ORDER, CATEGORY_COLOR, CATEGORY_NAME
M.ROLE_ORDER, M.ROLE_COLOR = ROLE_ORDER, ROLE_COLOR
M.STATUS_COLOR, M.STATUS_FILL, M.SCORE_COLOR = STATUS_COLOR, STATUS_FILL, SCORE_COLOR
M.ordered, M.num, M.clean = ordered, num, clean
M.f2, M.pcnt, M.int, M.usd, M.ms, M.duration = f2, pcnt, int, usd, ms, duration
M.bucketize, M.all_categories = bucketize, all_categories
M.version_label, M.version_numbers, M.current_version = version_label, version_numbers, current_version
M.run_name, M.status_line = run_name, status_line

return M

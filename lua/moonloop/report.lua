-- The run report: `moonloop report DIR` and the end of a run write DIR/report.html; the
-- same numbers as a text summary for terminals. Reading run.db is moonloop.report_data,
-- the page is moonloop.report_html.
--   report.write(dir)   -> path of dir/report.html (written atomically), and the summary
--   report.text(dir)    -> the full text summary
--   report.summary(dir) -> a few lines for the end of `moonloop report`
--   report.html(dir)    -> the page, as a string
--   report.check(dir)   -> true, or nil and why dir is not a readable run directory
local html = require "moonloop.report_html"
local D = require "moonloop.report_data"

local MAX_BUCKETS = D.MAX_BUCKETS
local clean, f2, pcnt, usd, ms, duration = D.clean, D.f2, D.pcnt, D.usd, D.ms, D.duration
local bucketize, all_categories = D.bucketize, D.all_categories
local version_label, version_numbers, current_version = D.version_label, D.version_numbers, D.current_version
local run_name, status_line = D.run_name, D.status_line
local collect = D.collect

local M = {}

M.check = D.check

local function text_table(headers, rows, left)
  local widths = {}
  for i, h in ipairs(headers) do widths[i] = utf8.len(h) or #h end
  for _, r in ipairs(rows) do
    for i, c in ipairs(r) do widths[i] = math.max(widths[i] or 0, utf8.len(c) or #c) end
  end
  local lines = {}
  local function line(cells)
    local out = {}
    for i, c in ipairs(cells) do
      local pad = (" "):rep(widths[i] - (utf8.len(c) or #c))
      out[i] = (left and left[i]) and (c .. pad) or (pad .. c)
    end
    lines[#lines + 1] = "  " .. table.concat(out, "  "):gsub("%s+$", "")
  end
  line(headers)
  for _, r in ipairs(rows) do line(r) end
  return table.concat(lines, "\n")
end

-- The lineage as text. The line of kept versions stays at the left margin (a long
-- evolution does not march off the screen); other children hang off it as trees.
local function lineage_text(d)
  local kids, roots = {}, {}
  for _, v in ipairs(d.versions) do
    if v.parent then
      kids[v.parent] = kids[v.parent] or {}
      table.insert(kids[v.parent], v)
    else
      roots[#roots + 1] = v
    end
  end
  local lines = {}
  local cur = current_version(d)
  local function describe(v, from)
    local n = version_numbers(d, v)
    local bits = { ("v%d %s%s%s"):format(v.version, v.status or "?", from and (" (from v%d)"):format(from) or "",
      (cur and cur.version == v.version) and ", current" or "") }
    if n.rate then bits[#bits + 1] = ("pass %.0f%%"):format(100 * n.rate) end
    if n.gap then bits[#bits + 1] = ("gap %.2f"):format(n.gap) end
    if v.strategy then bits[#bits + 1] = clean(v.strategy, 30) end
    if v.iteration then bits[#bits + 1] = "iteration " .. tostring(v.iteration) end
    local why = v.status == "rejected" and v.reason or v.rationale
    if why and why ~= "" then bits[#bits + 1] = "- " .. clean(why, 70) end
    return table.concat(bits, "  ")
  end
  local function branch(v, prefix, last)
    lines[#lines + 1] = "  " .. prefix .. (last and "└─ " or "├─ ") .. describe(v)
    local list = kids[v.version] or {}
    for i, k in ipairs(list) do branch(k, prefix .. (last and "   " or "│  "), i == #list) end
  end
  local function main_line(v, from)
    lines[#lines + 1] = "  " .. describe(v, from)
    local list = kids[v.version] or {}
    local main, others = nil, {}
    for _, k in ipairs(list) do
      if k.status ~= "rejected" and main == nil then main = k else others[#others + 1] = k end
    end
    for i, k in ipairs(others) do branch(k, "", i == #others and main == nil) end
    if main then return main_line(main, v.version) end
  end
  for _, r in ipairs(roots) do main_line(r) end
  return table.concat(lines, "\n")
end

local function text_of(d, short)
  local out = {}
  local function say(fmt, ...) out[#out + 1] = select("#", ...) > 0 and fmt:format(...) or fmt end
  local t, j = d.totals, d.journal
  say("moonloop report: %s, %s", clean(run_name(d)), d.dir)
  say("status: %s", status_line(d))
  local finished = t.accepted + t.exhausted + t.errors
  say("items: %d; accepted %d (%s of the %d finished), exhausted %d, failed %d, not finished %d",
    t.items, t.accepted, pcnt(t.accepted, finished), finished, t.exhausted, t.errors, t.pending)
  say("accepted examples: weak %s, strong %s, gap %s, %s rounds per example", f2(t.weak),
    f2(t.strong), f2(t.gap), t.rounds_per_example and ("%.1f"):format(t.rounds_per_example) or "-")
  local cats = {}
  for _, c in ipairs(all_categories(d)) do cats[#cats + 1] = ("%s %d"):format(c, d.categories[c]) end
  say("rounds: %d (%s)", t.rounds, #cats > 0 and table.concat(cats, ", ") or "none yet")
  say("LLM calls: %d; tokens %d in, %d out; cost %s; %s", j.calls, j.input, j.output,
    usd(j.cost, j.unpriced) or (j.calls > 0 and "unknown (no price configured for some models)" or "-"),
    d.elapsed and ("elapsed " .. duration(d.elapsed)) or "no request yet")
  local cur = current_version(d)
  if #d.versions > 0 then
    local kept, rejected = 0, 0
    for _, v in ipairs(d.versions) do
      if v.status == "kept" then kept = kept + 1 elseif v.status == "rejected" then rejected = rejected + 1 end
    end
    say("recipe versions: %d (%d kept, %d rejected); current %s", #d.versions, kept, rejected,
      cur and version_label(cur) or "-")
  end
  if short then return table.concat(out, "\n") end

  local buckets, size = bucketize(d.iterations, MAX_BUCKETS)
  if #buckets > 0 then
    say("")
    say("Per iteration%s", size > 1 and (" (groups of %d)"):format(size) or "")
    local rows = {}
    for _, b in ipairs(buckets) do
      rows[#rows + 1] = { b.label, tostring(b.items), tostring(b.finished), tostring(b.accepted),
        b.rate and ("%.1f%%"):format(100 * b.rate) or "-", f2(b.weak), f2(b.strong), f2(b.gap),
        tostring((function() local n = 0 for _, v in pairs(b.cats) do n = n + v end return n end)()),
        tostring(b.calls), tostring(b.input + b.output), usd(b.cost, b.unpriced) or "-", b.vlabel }
    end
    say(text_table({ "iteration", "items", "done", "accepted", "rate", "weak", "strong", "gap",
      "rounds", "calls", "tokens", "cost", "version" }, rows, { true }))
  end

  if #d.versions > 0 then
    say("")
    say("Per recipe version (pass and scores: the version's evaluation where it has one, else measured)")
    local rows = {}
    for _, v in ipairs(d.versions) do
      local n = version_numbers(d, v)
      rows[#rows + 1] = { version_label(v), v.status or "-", v.parent and ("v" .. v.parent) or "-",
        tostring(n.items or 0), tostring(n.accepted or 0),
        n.m_rate and ("%.1f%%"):format(100 * n.m_rate) or "-",
        n.rate and ("%.1f%%"):format(100 * n.rate) or "-", f2(n.weak), f2(n.strong), f2(n.gap) }
    end
    say(text_table({ "version", "status", "parent", "items", "accepted", "measured", "pass", "weak",
      "strong", "gap" }, rows, { true, true, true }))
    say("")
    say("Lineage")
    say(lineage_text(d))
  end

  if #d.roles > 0 then
    say("")
    say("By role")
    local rows = {}
    for _, r in ipairs(d.roles) do
      rows[#rows + 1] = { r.role, tostring(r.calls), tostring(r.input), tostring(r.output),
        tostring(r.input + r.output), usd(r.cost, r.unpriced) or "unknown" }
    end
    say(text_table({ "role", "calls", "input", "output", "tokens", "cost" }, rows, { true }))
  end

  if #d.latency > 0 then
    say("")
    say("Latency by model (ms)")
    local rows = {}
    for _, m in ipairs(d.latency) do
      rows[#rows + 1] = { clean(m.model, 48), tostring(m.n), ms(m.mean), ms(m.p50), ms(m.p90),
        ms(m.p99), ms(m.max), table.concat(m.role_list, ",") }
    end
    say(text_table({ "model", "calls", "mean", "p50", "p90", "p99", "max", "roles" }, rows,
      { true, false, false, false, false, false, false, true }))
  end

  if #buckets > 0 and t.rounds > 0 then
    say("")
    say("Round outcomes per iteration")
    local cs = all_categories(d)
    local rows = {}
    for _, b in ipairs(buckets) do
      local r = { b.label }
      for _, c in ipairs(cs) do r[#r + 1] = tostring(b.cats[c] or 0) end
      rows[#rows + 1] = r
    end
    local h = { "iteration" }
    for _, c in ipairs(cs) do h[#h + 1] = c end
    say(text_table(h, rows, { true }))
  end

  say("")
  say("files: %s, %s, %s", fs.join(d.dir, "dataset.jsonl"), fs.join(d.dir, "rejected.jsonl"),
    fs.join(d.dir, "run.db"))
  return table.concat(out, "\n")
end

function M.text(dir)
  return text_of(collect(dir), false)
end

function M.summary(dir)
  return text_of(collect(dir), true)
end

function M.html(dir)
  return html.render(collect(dir))
end

-- Write dir/report.html (atomically: a temporary file renamed over it). Returns its path
-- and the short summary of the same snapshot.
function M.write(dir)
  local d = collect(dir)
  local path = fs.join(dir, "report.html")
  fs.write(path, html.render(d))
  return path, text_of(d, true)
end

return M

-- The run report as one HTML page: inline SVG charts (moonloop.chart) and CSS, no script,
-- nothing fetched from the network. Every piece of run data is escaped on the way in:
-- example text is model output and may hold markup, quotes or broken UTF-8.
local chart = require "moonloop.chart"
local D = require "moonloop.report_data"

local esc = chart.esc
local MAX_BUCKETS, MAX_VERSIONS_CHART, MAX_TREE_NODES = D.MAX_BUCKETS, D.MAX_VERSIONS_CHART, D.MAX_TREE_NODES
local TEXT_CUT = D.TEXT_CUT
local CATEGORY_COLOR, CATEGORY_NAME = D.CATEGORY_COLOR, D.CATEGORY_NAME
local ROLE_ORDER, ROLE_COLOR = D.ROLE_ORDER, D.ROLE_COLOR
local STATUS_COLOR, STATUS_FILL, SCORE_COLOR = D.STATUS_COLOR, D.STATUS_FILL, D.SCORE_COLOR
local ordered, num, clean = D.ordered, D.num, D.clean
local f2, pcnt, int, usd, ms, duration = D.f2, D.pcnt, D.int, D.usd, D.ms, D.duration
local bucketize, all_categories = D.bucketize, D.all_categories
local version_label, version_numbers, current_version = D.version_label, D.version_numbers, D.current_version
local run_name, status_line = D.run_name, D.status_line

local M = {}

local CSS = [[
*{box-sizing:border-box}
body{margin:0;background:#f4f5f7;color:#1f2937;font:14px/1.5 "DejaVu Sans",system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:1340px;margin:0 auto;padding:20px 24px 40px}
h1{font-size:22px;margin:0 0 2px}
h2{font-size:17px;margin:0 0 10px}
h3{font-size:14px;margin:14px 0 6px}
.sub{color:#6b7280;font-size:13px}
.status{margin:8px 0 0;font-size:13px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(148px,1fr));gap:10px;margin:16px 0}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:9px 14px}
.card .v{font-size:21px;font-weight:600;white-space:nowrap}
.card .k{font-size:12px;color:#6b7280}
section{background:#fff;border:1px solid #e5e7eb;border-radius:10px;padding:16px 20px;margin:16px 0}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:10px 24px;align-items:start}
.chart{width:100%;max-width:680px;height:auto;display:block}
.wide .chart{max-width:100%}
.note{color:#6b7280;font-size:13px;margin:4px 0 8px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{padding:3px 10px;border-bottom:1px solid #eef0f3;text-align:right;white-space:nowrap}
th{font-weight:600;color:#374151;background:#f9fafb}
td.l,th.l{text-align:left}
td.w{white-space:normal;max-width:520px}
details{margin:8px 0}
summary{cursor:pointer;color:#2563eb;font-size:13px}
.c-title{font-size:14px;font-weight:600;fill:#1f2937}
.c-tick{font-size:11px;fill:#4b5563}
.c-label{font-size:12px;fill:#374151}
.c-legend{font-size:12px;fill:#374151}
.c-value{font-size:10.5px;fill:#374151}
.c-marker{font-size:11px;fill:#111827;font-weight:600}
.c-note{font-size:13px;fill:#6b7280}
.c-grid{stroke:#e5e7eb;stroke-width:1}
.c-axis{stroke:#9ca3af;stroke-width:1}
.t-title{font-size:13px;font-weight:600;fill:#111827}
.t-line{font-size:11.5px;fill:#374151}
.badge{display:inline-block;padding:1px 9px;border-radius:10px;font-size:12px;color:#fff;font-weight:600}
.ex{border:1px solid #e5e7eb;border-radius:8px;padding:10px 14px;margin:10px 0}
.ex .meta{font-size:12.5px;color:#4b5563;margin:2px 0 6px}
.ex .q{white-space:pre-wrap;word-break:break-word;margin:6px 0}
.ex pre{white-space:pre-wrap;word-break:break-word;background:#f9fafb;border:1px solid #eef0f3;border-radius:6px;padding:8px;margin:4px 0;font:12.5px/1.45 "DejaVu Sans Mono",ui-monospace,monospace}
.dots{letter-spacing:1px;font-size:13px}
.met{color:#3d8b37}.miss{color:#c7ccd3}.bad{color:#d1453b}
.legend-inline span{margin-right:14px;font-size:12.5px;color:#374151}
.sw{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;vertical-align:-1px}
footer{color:#9ca3af;font-size:12px;margin-top:20px}
]]

local function roles_in(d)
  local keys = {}
  for _, r in ipairs(d.roles) do keys[r.role] = true end
  return ordered(keys, ROLE_ORDER)
end

local function role_color(role, i)
  return ROLE_COLOR[role] or chart.palette[(i % #chart.palette) + 1]
end

local function card(value, key)
  return ('<div class="card"><div class="v">%s</div><div class="k">%s</div></div>'):format(
    esc(value), esc(key))
end

local function html_table(headers, rows, left)
  local out = { "<table><tr>" }
  for i, h in ipairs(headers) do
    out[#out + 1] = ('<th%s>%s</th>'):format((left and left[i]) and ' class="l"' or "", esc(h))
  end
  out[#out + 1] = "</tr>"
  for _, r in ipairs(rows) do
    out[#out + 1] = "<tr>"
    for i, c in ipairs(r) do
      local cls = (left and left[i]) and ((left[i] == "w") and ' class="l w"' or ' class="l"') or ""
      out[#out + 1] = ("<td%s>%s</td>"):format(cls, esc(c))
    end
    out[#out + 1] = "</tr>"
  end
  out[#out + 1] = "</table>"
  return table.concat(out)
end

local function section_overview(d)
  local t, j = d.totals, d.journal
  local finished = t.accepted + t.exhausted + t.errors
  local cards = {
    card(("%d / %d"):format(t.accepted, finished), "accepted / finished items"),
    card(pcnt(t.accepted, finished), "acceptance rate"),
    card(f2(t.weak), "weak score (accepted)"),
    card(f2(t.strong), "strong score (accepted)"),
    card(f2(t.gap), "gap strong − weak"),
    card(t.rounds_per_example and ("%.1f"):format(t.rounds_per_example) or "-", "rounds per example"),
    card(int(j.calls), "LLM calls"),
    card(int(j.input + j.output), "tokens (in + out)"),
    card(usd(j.cost, j.unpriced) or "unknown", "cost (USD)"),
    card(duration(d.elapsed), "elapsed"),
  }
  return table.concat(cards)
end

local function section_scores(d)
  local out = { '<section id="scores"><h2>Acceptance and scores</h2>' }
  local buckets, size = bucketize(d.iterations, MAX_BUCKETS)
  local cats, rate, weak, strong, gap = {}, {}, {}, {}, {}
  for i, b in ipairs(buckets) do
    cats[i], rate[i] = b.label, b.rate
    weak[i], strong[i], gap[i] = b.weak, b.strong, b.gap
  end
  local xl = size > 1 and ("iteration (groups of %d)"):format(size) or "iteration"
  out[#out + 1] = '<div class="grid">'
  out[#out + 1] = chart.bars({ title = "Acceptance rate per iteration", categories = cats,
    series = { { name = "accepted share of finished items", values = rate, color = SCORE_COLOR.rate } },
    y_label = "accepted items (%)", y_unit = "%", y_hi = 1, y_fixed = true, x_label = xl,
    x_name = "iteration", labels = true, empty = "no finished items yet" })
  out[#out + 1] = chart.line({ title = "Scores of accepted examples per iteration", categories = cats,
    series = { { name = "strong", values = strong, color = SCORE_COLOR.strong },
      { name = "weak", values = weak, color = SCORE_COLOR.weak },
      { name = "gap (strong − weak)", values = gap, color = SCORE_COLOR.gap, dash = true } },
    y_label = "mean rubric score (0–1)", y_hi = 1, y_fixed = true, x_label = xl, x_name = "iteration",
    value_fmt = function(v) return ("%.2f"):format(v) end, empty = "no accepted example yet" })
  out[#out + 1] = "</div>"

  -- Per recipe version.
  local vs = d.versions
  if #vs > 1 then
    local shown = vs
    if #vs > MAX_VERSIONS_CHART then
      shown = {}
      for i = #vs - MAX_VERSIONS_CHART + 1, #vs do shown[#shown + 1] = vs[i] end
    end
    local vc, vrate, vcol, vweak, vstrong, vgap = {}, {}, {}, {}, {}, {}
    local any_eval = false
    for i, v in ipairs(shown) do
      local n = version_numbers(d, v)
      any_eval = any_eval or n.eval
      vc[i] = version_label(v)
      vrate[i] = n.rate
      vcol[i] = STATUS_COLOR[v.status] or "#edc948"
      vweak[i], vstrong[i], vgap[i] = n.weak, n.strong, n.gap
    end
    local legend = {}
    for _, s in ipairs({ "root", "kept", "rejected" }) do
      legend[#legend + 1] = { name = s, color = STATUS_COLOR[s] }
    end
    local wide = #shown > 14
    out[#out + 1] = ('<div class="grid%s">'):format(wide and " wide" or "")
    local w = wide and math.min(1280, 300 + 24 * #shown) or 640
    out[#out + 1] = chart.bars({ title = "Pass rate per recipe version", categories = vc,
      series = { { name = "pass rate", values = vrate } }, bar_colors = vcol, legend = legend,
      y_label = "pass rate (%)", y_unit = "%", y_hi = 1, y_fixed = true, x_label = "recipe version",
      x_name = "version", labels = true, width = w })
    out[#out + 1] = chart.bars({ title = "Scores per recipe version", categories = vc,
      series = { { name = "weak", values = vweak, color = SCORE_COLOR.weak },
        { name = "strong", values = vstrong, color = SCORE_COLOR.strong },
        { name = "gap", values = vgap, color = SCORE_COLOR.gap } },
      y_label = "mean rubric score (0–1)", y_hi = 1, y_fixed = true, x_label = "recipe version",
      x_name = "version", width = w, value_fmt = function(v) return ("%.2f"):format(v) end })
    out[#out + 1] = "</div>"
    out[#out + 1] = ('<p class="note">%s%s</p>'):format(
      any_eval and "Pass rate and scores come from each version's own evaluation; a version without one shows what its items measured. "
        or "Measured on the items each version produced. ",
      #vs > #shown and ("The latest %d of %d versions are shown."):format(#shown, #vs) or "")
  else
    out[#out + 1] = ('<p class="note">One recipe version (%s) so far: per-version charts appear once the recipe evolves.</p>')
      :format(vs[1] and version_label(vs[1]) or "v1")
  end

  local rows = {}
  for _, b in ipairs(buckets) do
    rows[#rows + 1] = { b.label, tostring(b.items), tostring(b.finished), tostring(b.accepted),
      b.rate and ("%.1f%%"):format(100 * b.rate) or "-", f2(b.weak), f2(b.strong), f2(b.gap),
      b.ex > 0 and ("%.1f"):format(b.rounds_sum / b.ex) or "-", b.vlabel }
  end
  if #rows > 0 then
    out[#out + 1] = "<details><summary>Numbers per iteration</summary>"
    out[#out + 1] = html_table({ "iteration", "items", "finished", "accepted", "rate", "weak",
      "strong", "gap", "rounds / example", "version" }, rows, { true })
    out[#out + 1] = "</details>"
  end
  out[#out + 1] = "</section>"
  return table.concat(out)
end

local function section_lineage(d)
  local vs = d.versions
  local out = { '<section id="lineage"><h2>Recipe lineage</h2>' }
  if #vs == 0 then
    out[#out + 1] = '<p class="note">No recipe version recorded yet.</p></section>'
    return table.concat(out)
  end
  local shown, dropped = vs, 0
  if #vs > MAX_TREE_NODES then
    -- Keep every root and kept version (and their ancestors), then the latest rejected.
    local keep, byv = {}, {}
    for _, v in ipairs(vs) do byv[v.version] = v end
    local count = 0
    for _, v in ipairs(vs) do
      if v.status ~= "rejected" then
        local x = v
        while x and not keep[x.version] do
          keep[x.version] = true
          count = count + 1
          x = x.parent and byv[x.parent]
        end
      end
    end
    for i = #vs, 1, -1 do
      if count >= MAX_TREE_NODES then break end
      local v = vs[i]
      if not keep[v.version] and (not v.parent or keep[v.parent]) then
        keep[v.version] = true
        count = count + 1
      end
    end
    shown = {}
    for _, v in ipairs(vs) do if keep[v.version] then shown[#shown + 1] = v end end
    dropped = #vs - #shown
  end
  local cur = current_version(d)
  -- Rejected children sit on both sides of the kept one, so the main line stays straight.
  local kids = {}
  for _, v in ipairs(shown) do
    if v.parent then
      kids[v.parent] = kids[v.parent] or {}
      table.insert(kids[v.parent], v)
    end
  end
  local rank = {}
  for _, list in pairs(kids) do
    local rej, other = {}, {}
    for _, v in ipairs(list) do
      if v.status == "rejected" then rej[#rej + 1] = v else other[#other + 1] = v end
    end
    local half = #rej // 2
    local order = {}
    for i = 1, half do order[#order + 1] = rej[i] end
    for _, v in ipairs(other) do order[#order + 1] = v end
    for i = half + 1, #rej do order[#order + 1] = rej[i] end
    for i, v in ipairs(order) do rank[v.version] = i end
  end
  local nodes = {}
  for _, v in ipairs(shown) do
    local n = version_numbers(d, v)
    local l2 = {}
    if n.rate then l2[#l2 + 1] = ("pass %.0f%%"):format(100 * n.rate) end
    if n.gap then l2[#l2 + 1] = ("gap %.2f"):format(n.gap) end
    if #l2 == 0 then l2[1] = n.items and (n.items .. " items") or "not scored" end
    local l3 = {}
    if v.iteration then l3[#l3 + 1] = "iteration " .. tostring(v.iteration) end
    if v.strategy then l3[#l3 + 1] = clean(v.strategy, 16) end
    local tip = { ("v%d (%s)"):format(v.version, v.status or "?") }
    if v.strategy then tip[#tip + 1] = "strategy: " .. tostring(v.strategy) end
    if v.rationale and v.rationale ~= "" then tip[#tip + 1] = "rationale: " .. clean(v.rationale, 300) end
    if v.reason and v.reason ~= "" then tip[#tip + 1] = "rejected because: " .. clean(v.reason, 300) end
    nodes[#nodes + 1] = {
      id = v.version, parent = v.parent, rank = rank[v.version],
      title = ("v%d · %s%s"):format(v.version, v.status or "?", (cur and cur.version == v.version) and " · current" or ""),
      lines = { table.concat(l2, " · "), #l3 > 0 and table.concat(l3, " · ") or nil },
      color = STATUS_COLOR[v.status] or "#b8860b", fill = STATUS_FILL[v.status] or "#fff8e1",
      dashed = v.status == "rejected", strong = cur and cur.version == v.version,
      tip = table.concat(tip, "\n"),
    }
  end
  out[#out + 1] = '<p class="legend-inline">'
  for _, s in ipairs({ "root", "kept", "rejected" }) do
    out[#out + 1] = ('<span><i class="sw" style="background:%s"></i>%s</span>'):format(STATUS_COLOR[s], s)
  end
  out[#out + 1] = '<span>thick border: the version in use now; hover a version for its rationale</span></p>'
  out[#out + 1] = '<div class="scroll">' .. chart.tree({ nodes = nodes, title = "recipe lineage" }) .. "</div>"
  if dropped > 0 then
    out[#out + 1] = ('<p class="note">%d older rejected versions are not drawn.</p>'):format(dropped)
  end
  local rows = {}
  for i = #vs, math.max(1, #vs - 99), -1 do
    local v = vs[i]
    local n = version_numbers(d, v)
    rows[#rows + 1] = { version_label(v), v.status or "-", v.parent and ("v" .. v.parent) or "-",
      v.iteration and tostring(v.iteration) or "-", v.strategy and clean(v.strategy, 40) or "-",
      n.rate and ("%.1f%%"):format(100 * n.rate) or "-", f2(n.gap), tostring(n.items or 0),
      clean((v.status == "rejected" and v.reason) or v.rationale or "", 240) }
  end
  out[#out + 1] = "<details><summary>All versions</summary>"
  out[#out + 1] = html_table({ "version", "status", "parent", "iteration", "strategy", "pass", "gap",
    "items", "rationale or reason" }, rows, { true, true, true, false, true, false, false, false, "w" })
  out[#out + 1] = "</details></section>"
  return table.concat(out)
end

local function section_cost(d)
  local out = { '<section id="cost"><h2>Cost and tokens</h2>' }
  local roles = roles_in(d)
  local j = d.journal
  local priced = j.unpriced == 0 and j.calls > 0
  local tl = d.timeline
  out[#out + 1] = '<div class="grid">'
  -- Per time bin (or request-order bin), stacked by role; and cumulative.
  local cats, series, cum_series = {}, {}, {}
  if tl.nbins > 0 then
    local per = {}
    for _, r in ipairs(tl.bins) do
      per[r.role] = per[r.role] or {}
      local b = math.tointeger(num(r.bin)) or 0
      local e = per[r.role][b + 1] or { tokens = 0, cost = 0 }
      e.tokens, e.cost = e.tokens + r.tokens, e.cost + r.cost
      per[r.role][b + 1] = e
    end
    local unit, div = "s", 1
    if tl.kind == "time" then
      if tl.span >= 3 * 3600 then unit, div = "h", 3600 elseif tl.span >= 180 then unit, div = "min", 60 end
    end
    local xs = {}
    for b = 1, tl.nbins do
      if tl.kind == "time" then
        xs[b] = (b * tl.width) / div
      else
        xs[b] = math.floor(b * tl.width + 0.5)
      end
      cats[b] = tostring(b)
    end
    for i, role in ipairs(roles) do
      local vals, cum, acc = {}, { 0 }, 0 -- the cumulative lines start at the origin
      for b = 1, tl.nbins do
        local e = per[role] and per[role][b]
        local v = e and (priced and e.cost or e.tokens) or 0
        vals[b] = e and e.tokens or 0
        acc = acc + v
        cum[b + 1] = acc
      end
      series[#series + 1] = { name = role, values = vals, color = role_color(role, i) }
      cum_series[#cum_series + 1] = { name = role, values = cum, color = role_color(role, i) }
    end
    local xlabel
    if tl.kind == "time" then
      xlabel = ("time since the first request (%s)"):format(unit)
    else
      xlabel = ("requests, in the order they were made (%d in all; the run took under 5 s)"):format(tl.requests)
    end
    local rate_title
    if tl.kind ~= "time" then
      rate_title = ("Tokens per %d requests by role"):format(math.max(1, math.floor(tl.width + 0.5)))
    elseif tl.width == 1 then
      rate_title = "Tokens per second by role"
    elseif tl.width < 60 then
      rate_title = ("Tokens per %d s by role"):format(tl.width)
    elseif tl.width < 3600 then
      rate_title = ("Tokens per %d min by role"):format(tl.width // 60)
    else
      rate_title = ("Tokens per %d h by role"):format(tl.width // 3600)
    end
    local xnum = { 0 }
    for b = 1, tl.nbins do xnum[b + 1] = xs[b] end
    out[#out + 1] = chart.line({ title = priced and "Cumulative cost by role" or "Cumulative tokens by role",
      x = xnum, x_lo = 0, x_hi = xnum[#xnum], series = cum_series, always_legend = true,
      y_label = priced and "cost (USD)" or "tokens (input + output)", x_label = xlabel,
      x_name = tl.kind == "time" and unit or "requests",
      value_fmt = priced and function(v) return ("$%.4f"):format(v) end or nil })
    local bin_labels = {}
    for b = 1, tl.nbins do
      bin_labels[b] = tl.kind == "time" and chart.fmt_tick(xs[b], tl.width / div)
        or tostring(xs[b])
    end
    local edges = { 0 }
    for b = 1, tl.nbins do edges[b + 1] = xs[b] end
    out[#out + 1] = chart.bars({ title = rate_title, categories = bin_labels, series = series,
      edges = edges, stacked = true, always_legend = true, y_label = "tokens (input + output)",
      x_label = xlabel, x_name = tl.kind == "time" and ("until " .. unit) or "up to request" })
  else
    out[#out + 1] = '<p class="note">No request recorded yet.</p>'
  end
  -- Per iteration, stacked by role.
  local buckets, size = bucketize(d.iterations, MAX_BUCKETS)
  local icats, iseries = {}, {}
  for i, b in ipairs(buckets) do icats[i] = b.label end
  local iter_priced = priced
  for i, role in ipairs(roles) do
    local vals = {}
    for k, b in ipairs(buckets) do
      local e = b.roles[role]
      vals[k] = e and (iter_priced and e.cost or e.tokens) or 0
    end
    iseries[#iseries + 1] = { name = role, values = vals, color = role_color(role, i) }
  end
  if #buckets > 1 then
    out[#out + 1] = chart.bars({ title = iter_priced and "Cost per iteration by role" or "Tokens per iteration by role",
      categories = icats, series = iseries, stacked = true, always_legend = true,
      y_label = iter_priced and "cost (USD)" or "tokens (input + output)",
      x_label = size > 1 and ("iteration (groups of %d)"):format(size) or "iteration",
      x_name = "iteration", labels = true,
      value_fmt = iter_priced and function(v) return ("$%.2f"):format(v) end
        or function(v) return chart.fmt_tick(v, v >= 1e4 and 1e3 or 1) end })
  end
  out[#out + 1] = "</div>"
  if not priced and j.calls > 0 then
    out[#out + 1] = '<p class="note">Cost is unknown: some models have no price in the config, so the charts count tokens.</p>'
  end
  local rows = {}
  for _, r in ipairs(d.roles) do
    rows[#rows + 1] = { r.role, int(r.calls), int(r.input), int(r.output), int(r.input + r.output),
      usd(r.cost, r.unpriced) or "unknown" }
  end
  if #rows > 0 then
    rows[#rows + 1] = { "all", int(j.calls), int(j.input), int(j.output), int(j.input + j.output),
      usd(j.cost, j.unpriced) or "unknown" }
    out[#out + 1] = html_table({ "role", "calls", "input tokens", "output tokens", "tokens", "cost" },
      rows, { true })
  end
  out[#out + 1] = "</section>"
  return table.concat(out)
end

local function section_latency(d)
  local out = { '<section id="latency"><h2>Latency by model</h2>' }
  if #d.latency == 0 then
    out[#out + 1] = '<p class="note">No answered request yet.</p></section>'
    return table.concat(out)
  end
  out[#out + 1] = '<div class="grid">'
  local shown = 0
  for i, m in ipairs(d.latency) do
    if shown >= 6 then break end
    shown = shown + 1
    local top = m.max
    if m.max > 1.5 * m.p99 and m.p99 > 0 then top = m.p99 * 1.1 end
    local lo = 0
    if top <= 0 then top = 1 end
    local nb = 30
    local _, _, _, step = chart.ticks(lo, top, nb)
    local hi = math.ceil(top / step) * step
    local bins = math.max(1, math.floor((hi - lo) / step + 0.5))
    local edges, counts = {}, {}
    for k = 0, bins do edges[k + 1] = lo + k * step end
    for k = 1, bins do counts[k] = 0 end
    local over = 0
    for _, v in ipairs(m.values) do
      local k = math.floor((v - lo) / step) + 1
      if k > bins then
        k = bins
        if v > hi then over = over + 1 end
      end
      if k < 1 then k = 1 end
      counts[k] = counts[k] + 1
    end
    local title = ("%s: %s calls, p50 %s ms, p90 %s ms, p99 %s ms"):format(clean(m.model, 48),
      int(m.n), ms(m.p50), ms(m.p90), ms(m.p99))
    out[#out + 1] = chart.histogram({ title = title, edges = edges, counts = counts,
      color = chart.palette[((i - 1) % #chart.palette) + 1], x_label = over > 0
        and ("latency (ms); %d slower calls, up to %.0f ms, are in the last bar"):format(over, m.max)
        or "latency (ms)",
      y_label = "calls", unit = "ms", height = 260,
      markers = { { value = m.p50, label = "p50" }, { value = m.p90, label = "p90" },
        { value = m.p99, label = "p99" } } })
  end
  out[#out + 1] = "</div>"
  local rows = {}
  for _, m in ipairs(d.latency) do
    rows[#rows + 1] = { clean(m.model, 60), int(m.n), ms(m.mean), ms(m.p50), ms(m.p90), ms(m.p99),
      ms(m.max), table.concat(m.role_list, ", ") }
  end
  out[#out + 1] = html_table({ "model", "calls", "mean ms", "p50 ms", "p90 ms", "p99 ms", "max ms",
    "roles" }, rows, { true, false, false, false, false, false, false, true })
  if #d.latency > shown then
    out[#out + 1] = ('<p class="note">Histograms for the %d busiest models; all are in the table.</p>'):format(shown)
  end
  out[#out + 1] = "</section>"
  return table.concat(out)
end

local function section_failures(d)
  local out = { '<section id="failures"><h2>Round outcomes over time</h2>' }
  local buckets, size = bucketize(d.iterations, MAX_BUCKETS)
  local cs = all_categories(d)
  local cats, series = {}, {}
  for i, b in ipairs(buckets) do cats[i] = b.label end
  for i, c in ipairs(cs) do
    local vals = {}
    for k, b in ipairs(buckets) do vals[k] = b.cats[c] or 0 end
    series[#series + 1] = { name = CATEGORY_NAME[c] or c, values = vals,
      color = CATEGORY_COLOR[c] or chart.palette[(i % #chart.palette) + 1] }
  end
  local xl = size > 1 and ("iteration (groups of %d)"):format(size) or "iteration"
  out[#out + 1] = '<div class="grid">'
  out[#out + 1] = chart.bars({ title = "Rounds per iteration by outcome", categories = cats,
    series = series, stacked = true, always_legend = true, y_label = "rounds", x_label = xl,
    x_name = "iteration", labels = true, empty = "no round yet" })
  -- Shares, so iterations of different sizes compare.
  local shares = {}
  for _, s in ipairs(series) do
    local vals = {}
    for k, b in ipairs(buckets) do
      local tot = 0
      for _, v in pairs(b.cats) do tot = tot + v end
      vals[k] = tot > 0 and (s.values[k] or 0) / tot or 0
    end
    shares[#shares + 1] = { name = s.name, values = vals, color = s.color }
  end
  out[#out + 1] = chart.bars({ title = "Share of rounds by outcome", categories = cats,
    series = shares, stacked = true, always_legend = true, y_label = "share of rounds (%)",
    y_unit = "%", y_hi = 1, y_fixed = true, x_label = xl, x_name = "iteration",
    empty = "no round yet" })
  out[#out + 1] = "</div>"
  local rows = {}
  for _, c in ipairs(cs) do
    rows[#rows + 1] = { CATEGORY_NAME[c] or c, int(d.categories[c]), pcnt(d.categories[c], d.totals.rounds) }
  end
  if #rows > 0 then
    out[#out + 1] = html_table({ "outcome", "rounds", "share" }, rows, { true })
  end
  out[#out + 1] = "</section>"
  return table.concat(out)
end

local function cut(s, n)
  s = chart.valid_utf8(tostring(s or ""))
  if (utf8.len(s) or #s) <= n then return s end
  return s:sub(1, utf8.offset(s, n) - 1) .. " […]"
end

local function sample_html(p)
  local out = {}
  local ex = p.rec and p.rec.example
  local cat = p.category or (p.accepted and "accepted" or "error")
  out[#out + 1] = '<div class="ex">'
  out[#out + 1] = ('<span class="badge" style="background:%s">%s</span>'):format(
    CATEGORY_COLOR[cat] or "#6b7280", esc(CATEGORY_NAME[cat] or cat))
  local meta = { ("item %s, round %s"):format(tostring(p.item), tostring(p.round)) }
  if p.iteration then meta[#meta + 1] = "iteration " .. tostring(p.iteration) end
  if p.version then meta[#meta + 1] = "recipe v" .. tostring(p.version) end
  if p.source then meta[#meta + 1] = "source " .. tostring(p.source) end
  if ex and ex.question_type then meta[#meta + 1] = "type " .. tostring(ex.question_type) end
  out[#out + 1] = ('<div class="meta">%s</div>'):format(esc(table.concat(meta, " · ")))
  local function side(name, list, mean)
    if type(list) ~= "table" or #list == 0 then return nil end
    local s = {}
    for _, r in ipairs(list) do
      s[#s + 1] = type(r.score) == "number" and ("%.2f"):format(r.score) or "unscored"
    end
    return ("%s %s (%s)"):format(name, f2(num(mean)), table.concat(s, ", "))
  end
  local scores = {}
  scores[#scores + 1] = side("weak", p.rec and p.rec.weak, p.weak_mean)
  scores[#scores + 1] = side("strong", p.rec and p.rec.strong, p.strong_mean)
  if type(p.gap) == "number" then scores[#scores + 1] = ("gap %.2f"):format(p.gap) end
  if #scores > 0 then
    out[#out + 1] = ('<div class="meta"><b>scores</b> %s</div>'):format(esc(table.concat(scores, " · ")))
  end
  if p.reason and not p.accepted then
    out[#out + 1] = ('<div class="meta"><b>reason</b> %s</div>'):format(esc(cut(p.reason, 400)))
  end
  if not ex then
    out[#out + 1] = '<div class="note">The challenger gave no usable example in this round.</div></div>'
    return table.concat(out)
  end
  out[#out + 1] = ('<div class="q"><b>Question.</b> %s</div>'):format(esc(cut(ex.question, TEXT_CUT)))
  out[#out + 1] = ("<details><summary>Context</summary><pre>%s</pre></details>"):format(esc(cut(ex.context, TEXT_CUT)))
  out[#out + 1] = ("<details><summary>Reference answer</summary><pre>%s</pre></details>"):format(
    esc(cut(ex.reference_answer, TEXT_CUT)))
  local rubric = type(ex.rubric) == "table" and ex.rubric or {}
  if #rubric > 0 then
    local v = p.verdicts or { weak = {}, strong = {} }
    local nweak = #((p.rec and p.rec.weak) or {})
    local nstrong = #((p.rec and p.rec.strong) or {})
    local function dots(which, n, k, negative)
      if n == 0 then return "" end
      local s = {}
      for sample = 1, n do
        local met = v[which][sample] and v[which][sample][k]
        if met == nil then
          s[#s + 1] = '<span class="miss" title="no verdict">·</span>'
        elseif met then
          s[#s + 1] = negative and '<span class="bad" title="mistake made">●</span>'
            or '<span class="met" title="met">●</span>'
        else
          s[#s + 1] = '<span class="miss" title="not met">○</span>'
        end
      end
      return table.concat(s)
    end
    out[#out + 1] = "<table><tr><th>#</th><th class=\"l\">rubric criterion</th><th>weight</th>"
    if nweak > 0 then out[#out + 1] = ("<th class=\"l\">weak (%d)</th>"):format(nweak) end
    if nstrong > 0 then out[#out + 1] = ("<th class=\"l\">strong (%d)</th>"):format(nstrong) end
    out[#out + 1] = "</tr>"
    for k, c in ipairs(rubric) do
      local w = num(type(c) == "table" and c.weight) or 0
      out[#out + 1] = ('<tr><td>%d</td><td class="l w">%s</td><td>%s</td>'):format(k,
        esc(cut(type(c) == "table" and c.criterion or c, 300)), esc(("%g"):format(w)))
      if nweak > 0 then out[#out + 1] = ('<td class="l dots">%s</td>'):format(dots("weak", nweak, k, w < 0)) end
      if nstrong > 0 then out[#out + 1] = ('<td class="l dots">%s</td>'):format(dots("strong", nstrong, k, w < 0)) end
      out[#out + 1] = "</tr>"
    end
    out[#out + 1] = "</table>"
  end
  out[#out + 1] = "</div>"
  return table.concat(out)
end

local function section_examples(d)
  local out = { '<section id="examples"><h2>Sample examples</h2>' }
  out[#out + 1] = '<p class="note legend-inline">One mark per judged answer: <span><b class="met">●</b> criterion met</span><span><b class="bad">●</b> mistake made (negative weight)</span><span><b class="miss">○</b> not met</span><span><b class="miss">·</b> no verdict</span></p>'
  local acc, rej = {}, {}
  for _, p in ipairs(d.samples) do
    if p.accepted then acc[#acc + 1] = p else rej[#rej + 1] = p end
  end
  out[#out + 1] = ("<h3>Accepted (%d of %d, from the largest gap to the smallest)</h3>"):format(#acc, d.totals.examples)
  if #acc == 0 then out[#out + 1] = '<p class="note">No accepted example yet.</p>' end
  for _, p in ipairs(acc) do out[#out + 1] = sample_html(p) end
  out[#out + 1] = "<h3>Rejected (the latest of each outcome)</h3>"
  if #rej == 0 then out[#out + 1] = '<p class="note">No rejected round yet.</p>' end
  for _, p in ipairs(rej) do out[#out + 1] = sample_html(p) end
  out[#out + 1] = "</section>"
  return table.concat(out)
end

local function html_of(d)
  local title = ("moonloop report: %s"):format(run_name(d))
  local parts = {
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">",
    ("<title>%s</title><style>%s</style></head><body><main>"):format(esc(title), CSS),
    ("<h1>%s</h1>"):format(esc(title)),
    ('<div class="sub">%s · seed %s · started %s · report written %s</div>'):format(esc(d.dir),
      esc(d.meta.seed or "-"), esc(d.meta.created or "-"), esc(d.generated)),
    ('<p class="status">%s</p>'):format(esc(status_line(d))),
    '<div class="cards">', section_overview(d), "</div>",
    section_scores(d), section_lineage(d), section_cost(d), section_latency(d), section_failures(d),
    section_examples(d),
    ("<footer>Written by moonloop from %s. Rewrite it any time with: moonloop report %s</footer>"):format(
      esc(fs.join(d.dir, "run.db")), esc(d.dir)),
    "</main></body></html>\n",
  }
  return table.concat(parts, "\n")
end

M.render = html_of

return M

-- The report's building blocks: escaping, ticks, charts, the lineage tree layout, the
-- trace's token scrubbing, and reports on a run that has not started yet.
-- (tests/integration/report_test.sh covers real runs, the CLI and hostile run data.)
local t = dofile("lib/t.lua")
local chart = require "moonloop.chart"
local report = require "moonloop.report"
local trace = require "moonloop.trace"

local made = {}
local function scratch()
  local d = fs.tmpdir("report-test-")
  made[#made + 1] = d
  return d
end

local function count(s, needle)
  local n, i = 0, 1
  while true do
    local a, b = s:find(needle, i, true)
    if not a then return n end
    n, i = n + 1, b + 1
  end
end

t.test("esc turns markup into entities, so script and CDATA ends never appear raw", function()
  local s = chart.esc([[<script>alert(1)</script> "a" & 'b' ]] .. "]]>")
  t.eq(s, "&lt;script&gt;alert(1)&lt;/script&gt; &quot;a&quot; &amp; &#39;b&#39; ]]&gt;")
end)

t.test("esc replaces invalid UTF-8 and drops control characters", function()
  local s = chart.esc("ok \255\254 x\0y\1z\tw\né")
  t.ok(utf8.len(s) ~= nil, "valid UTF-8")
  t.eq(s, "ok \u{FFFD}\u{FFFD} xyz\tw\né")
  t.eq(chart.esc(nil), "")
  t.eq(chart.esc(12), "12")
end)

t.test("ticks are round numbers that cover the range", function()
  local ticks, lo, hi, step = chart.ticks(0, 0.87, 5)
  t.eq(lo, 0)
  t.ok(hi >= 0.87 and hi <= 1.0 + 1e-9, "hi " .. hi)
  t.ok(math.abs(step - 0.2) < 1e-9, "step " .. step)
  t.eq(#ticks, 6)
  local _, lo2, hi2 = chart.ticks(1234, 98765, 5)
  t.ok(lo2 <= 1234 and hi2 >= 98765, "covers")
  local one = chart.ticks(5, 5, 5) -- a flat series still gets an axis
  t.ok(#one >= 2, "flat range has ticks")
end)

t.test("tick labels carry units and thousands suffixes", function()
  t.eq(chart.fmt_tick(0.4, 0.2, "%"), "40%")
  t.eq(chart.fmt_tick(25000, 5000), "25k")
  t.eq(chart.fmt_tick(5000, 5000, nil, 20000), "5k") -- one suffix for the whole axis
  t.eq(chart.fmt_tick(2500000, 500000), "2.5M")
  t.eq(chart.fmt_tick(0.25, 0.05), "0.25")
  t.eq(chart.fmt_tick(0, 0.05), "0")
end)

t.test("a line chart escapes its title, legend and tooltips and breaks lines at gaps", function()
  local svg = chart.line({ title = "<b>scores</b>", categories = { "1", "2", "3", "4", "5" },
    series = { { name = "weak <i>", values = { 0.2, 0.3, nil, 0.4, 0.5 } },
      { name = "strong", values = { 0.8, 0.9, 0.7, 0.8, 0.85 } } },
    y_label = "score (0-1)", x_label = "iteration", y_hi = 1, y_fixed = true })
  t.ok(svg:find("^<svg"), "an svg element")
  t.ok(not svg:find("<b>", 1, true) and not svg:find("<i>", 1, true), "no raw markup from data")
  t.ok(svg:find("&lt;b&gt;scores&lt;/b&gt;", 1, true), "escaped title")
  t.ok(svg:find("weak &lt;i&gt;", 1, true), "escaped legend")
  t.eq(count(svg, "<polyline"), 3) -- weak is split in two by the gap
  t.eq(count(svg, "<circle"), 9)
  t.ok(svg:find("score (0-1)", 1, true) and svg:find(">iteration<", 1, true), "axis labels")
end)

t.test("stacked bars stack, and empty charts say so", function()
  local svg = chart.bars({ title = "rounds", categories = { "1", "2" }, stacked = true,
    series = { { name = "a", values = { 1, 2 } }, { name = "b", values = { 3, 0 } } }, labels = true })
  t.eq(count(svg, "<rect"), 3 + 2) -- three bars (a zero is not drawn) and two legend swatches
  t.ok(svg:find(">4<", 1, true), "the total of the first stack is labelled")
  local empty = chart.bars({ title = "nothing", categories = {}, series = {}, empty = "no round yet" })
  t.ok(empty:find("no round yet", 1, true), "empty note")
end)

t.test("a histogram marks percentiles without overlapping their labels", function()
  local svg = chart.histogram({ title = "latency", edges = { 0, 10, 20, 30 }, counts = { 5, 3, 1 },
    markers = { { value = 12, label = "p50" }, { value = 13, label = "p90" }, { value = 29, label = "p99" } } })
  t.eq(count(svg, 'class="c-marker"'), 3)
  local ys = {}
  for y in svg:gmatch('class="c%-marker" x="[^"]+" y="([^"]+)"') do ys[#ys + 1] = tonumber(y) end
  t.ok(ys[1] ~= ys[2], "close markers go on different rows")
end)

t.test("the lineage tree places no two versions on top of each other", function()
  local nodes = { { id = 1, title = "v1" } }
  local current = 1
  for gen = 1, 6 do
    local parent = current
    for k = 1, 3 do
      local id = #nodes + 1
      nodes[#nodes + 1] = { id = id, parent = parent, title = "v" .. id, rank = k }
      if k == 2 then current = id end
    end
  end
  nodes[#nodes + 1] = { id = 99, parent = 42, title = "orphan" } -- unknown parent: a root
  local svg = chart.tree({ nodes = nodes })
  local boxes = {}
  for x, y, w, h in svg:gmatch('<rect x="([^"]+)" y="([^"]+)" width="(%d+)" height="(%d+)"') do
    boxes[#boxes + 1] = { tonumber(x), tonumber(y), tonumber(w), tonumber(h) }
  end
  t.eq(#boxes, #nodes)
  for i = 1, #boxes do
    for j = i + 1, #boxes do
      local a, b = boxes[i], boxes[j]
      local overlap = a[1] < b[1] + b[3] and b[1] < a[1] + a[3] and a[2] < b[2] + b[4] and b[2] < a[2] + a[4]
      t.ok(not overlap, ("boxes %d and %d overlap"):format(i, j))
    end
  end
  local width = tonumber(svg:match('viewBox="0 0 (%d+)'))
  t.ok(width < 4 * 200, "a line of generations stays narrow: " .. width)
end)

t.test("the trace scrubs bearer tokens, sk- keys and key headers, and nothing else", function()
  local scrub = trace._scrubber({ "my-env-secret-value" })
  t.eq(scrub("Authorization: Bearer abcdefghijklmnop0123"), "Authorization: [redacted]")
  t.eq(scrub("use bearer abcdefghijklmnop0123 now"), "use bearer [redacted] now")
  t.eq(scrub("key sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX."), "key [redacted].")
  t.eq(scrub("x-api-key: sk-ant-xyz"), "x-api-key: [redacted]")
  t.eq(scrub("a my-env-secret-value b"), "a [redacted] b")
  local plain = "The bearer of news uses a task-based sk-learn model."
  t.eq(scrub(plain), plain)
end)

t.test("a run that has not started yet still gets a report and a summary", function()
  local dir = scratch()
  local st = require("moonloop.store").open(fs.join(dir, "run.db"))
  st:set_meta("recipe", "empty_recipe")
  st:close()
  local text = report.text(dir)
  t.ok(text:find("status: no work items yet", 1, true), text)
  t.ok(text:find("LLM calls: 0", 1, true), text)
  local path = report.write(dir)
  t.eq(path, fs.join(dir, "report.html"))
  local html = fs.read(path)
  for _, id in ipairs({ "scores", "lineage", "cost", "latency", "failures", "examples" }) do
    t.ok(html:find('<section id="' .. id .. '">', 1, true), "section " .. id)
  end
  t.ok(html:find("No request recorded yet", 1, true), "says there is nothing yet")
  t.ok(not html:find("<script", 1, true), "no script")
end)

t.test("check names what is wrong with a directory", function()
  local ok, why = report.check("/nonexistent/run-dir")
  t.eq(ok, nil)
  t.ok(why:find("no such directory", 1, true), why)
  local dir = scratch()
  ok, why = report.check(dir)
  t.eq(ok, nil)
  t.ok(why:find("has no run.db", 1, true), why)
  fs.write(fs.join(dir, "run.db"), "not a database at all, just text\n")
  ok, why = report.check(dir)
  t.eq(ok, nil)
  t.ok(why:find("cannot read", 1, true) or why:find("cannot open", 1, true), why)
  t.raises(function() report.text(dir) end, "report:")
end)

for _, d in ipairs(made) do proc.run{ argv = { "rm", "-rf", d } } end
t.done()

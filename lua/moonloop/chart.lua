-- Small SVG charts for the run report: line, bar (grouped or stacked), histogram and a
-- tree, each a self-contained <svg> string with a title, axes, ticks, units and a legend.
-- Written by hand because the report must be one file with no script and no network, and
-- no packaged Lua library draws SVG. Every piece of text that reaches the SVG is escaped.
local M = {}

M.palette = { "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1",
  "#ff9da7", "#9c755f", "#bab0ac" }

-- Text from data (model output included) made safe for HTML and SVG: invalid UTF-8
-- becomes U+FFFD, control characters other than tab and newline are dropped, and the
-- five markup characters are entities, so "<script>" or "]]>" never appear raw.
local valid_utf8 = require "moonloop.utf8clean"
M.valid_utf8 = valid_utf8

local ENTITIES = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;",
  ["'"] = "&#39;" }

function M.esc(v)
  if v == nil then return "" end
  local s = valid_utf8(tostring(v))
  s = s:gsub("[%z\1-\8\11\12\14-\31\127]", ""):gsub("\r\n?", "\n")
  return (s:gsub("[&<>\"']", ENTITIES))
end
local esc = M.esc

-- Approximate width in pixels of text at a font size (proportional sans-serif).
local function text_width(s, size)
  return (utf8.len(s) or #s) * size * 0.6
end
M.text_width = text_width

local function num(v)
  -- Short, locale-free numbers for coordinates.
  local s = ("%.1f"):format(v)
  return (s:gsub("%.0$", ""))
end

-- A "nice" step near x (1, 2 or 5 times a power of ten).
local function nice_step(x)
  if x <= 0 or x ~= x then return 1 end
  local e = math.floor(math.log(x, 10))
  local f = x / 10 ^ e
  local nf = f < 1.5 and 1 or f < 3 and 2 or f < 7 and 5 or 10
  return nf * 10 ^ e
end

-- Ticks covering [lo, hi] with about n intervals; returns list, new lo, new hi, step.
function M.ticks(lo, hi, n)
  n = n or 5
  if hi == lo then
    if hi == 0 then hi = 1 else lo, hi = math.min(0, lo), math.max(0, hi) end
    if hi == lo then hi = lo + 1 end
  end
  local step = nice_step((hi - lo) / n)
  local t0 = math.floor(lo / step + 1e-9) * step
  local t1 = math.ceil(hi / step - 1e-9) * step
  local list = {}
  for k = 0, math.floor((t1 - t0) / step + 0.5) do list[#list + 1] = t0 + k * step end
  return list, t0, t1, step
end

-- Tick label for v given the step between ticks: 1.5k, 2M, 0.25, 40%.
function M.fmt_tick(v, step, unit, scale)
  if unit == "%" then
    local d = math.max(0, -math.floor(math.log(step * 100, 10) + 1e-9))
    return ("%." .. d .. "f%%"):format(v * 100)
  end
  local suffix, div = "", 1
  local big = math.max(math.abs(v), step, scale or 0)
  if big >= 1e9 then suffix, div = "G", 1e9
  elseif big >= 1e6 then suffix, div = "M", 1e6
  elseif big >= 1e4 then suffix, div = "k", 1e3 end
  local s = step / div
  local d = s >= 1 and 0 or math.min(6, -math.floor(math.log(s, 10) + 1e-9))
  if v == 0 then return "0" end
  return ("%." .. d .. "f"):format(v / div) .. suffix
end

-- The common frame: title, legend, the plot box, the y axis with its grid and label.
-- o: width, height, title, y_label, x_label, legend = {{name=, color=, dash=}}, y_lo, y_hi,
-- y_unit ("%" for shares), y_ticks (count). Returns ctx with parts, the box and y mapping.
local function frame(o)
  local W, H = o.width or 640, o.height or 300
  local parts = {}
  local ctx = { parts = parts, W = W, H = H }
  local function add(s) parts[#parts + 1] = s end
  ctx.add = add
  local ticks, lo, hi, step = M.ticks(o.y_lo or 0, o.y_hi or 1, o.y_ticks or 5)
  if o.y_fixed then lo, hi = o.y_lo, o.y_hi end
  local labels, widest = {}, 0
  local scale = math.max(math.abs(ticks[1]), math.abs(ticks[#ticks]))
  for i, t in ipairs(ticks) do
    labels[i] = M.fmt_tick(t, step, o.y_unit, scale)
    widest = math.max(widest, text_width(labels[i], 11))
  end
  local left = math.floor(widest + (o.y_label and 30 or 14))
  local top = o.title and (o.legend and #o.legend > 0 and 30 or 36) or 10
  -- The legend: swatches and names in rows under the title.
  if o.legend and #o.legend > 0 then
    local x, y = left, top + 4
    local items = {}
    for _, it in ipairs(o.legend) do
      local w = 16 + text_width(it.name, 12) + 16
      if x + w > W - 10 and x > left then
        x, y = left, y + 18
      end
      items[#items + 1] = { x = x, y = y, it = it }
      x = x + w
    end
    for _, e in ipairs(items) do
      if e.it.line then
        add(('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2.5"%s/>'):format(
          num(e.x), num(e.y + 5), num(e.x + 12), num(e.y + 5), e.it.color,
          e.it.dash and ' stroke-dasharray="4 3"' or ""))
      else
        add(('<rect x="%s" y="%s" width="11" height="11" rx="2" fill="%s"/>'):format(num(e.x),
          num(e.y), e.it.color))
      end
      add(('<text class="c-legend" x="%s" y="%s">%s</text>'):format(num(e.x + 16),
        num(e.y + 10), esc(e.it.name)))
    end
    top = y + 24
  end
  local bottom = H - (o.x_label and 44 or 28)
  local right = W - 14
  ctx.box = { x0 = left, x1 = right, y0 = top, y1 = bottom }
  ctx.lo, ctx.hi = lo, hi
  function ctx.y(v)
    if hi == lo then return bottom end
    local f = (v - lo) / (hi - lo)
    if f < 0 then f = 0 elseif f > 1 then f = 1 end
    return bottom - f * (bottom - top)
  end
  if o.title then
    add(('<text class="c-title" x="10" y="19">%s</text>'):format(esc(o.title)))
  end
  for i, t in ipairs(ticks) do
    local y = ctx.y(t)
    add(('<line class="c-grid" x1="%d" y1="%s" x2="%d" y2="%s"/>'):format(left, num(y), right, num(y)))
    add(('<text class="c-tick" x="%d" y="%s" text-anchor="end">%s</text>'):format(left - 6,
      num(y + 4), esc(labels[i])))
  end
  add(('<line class="c-axis" x1="%d" y1="%d" x2="%d" y2="%d"/>'):format(left, top, left, bottom))
  add(('<line class="c-axis" x1="%d" y1="%d" x2="%d" y2="%d"/>'):format(left, bottom, right, bottom))
  if o.y_label then
    local cy = (top + bottom) / 2
    add(('<text class="c-label" x="14" y="%s" text-anchor="middle" transform="rotate(-90 14 %s)">%s</text>')
      :format(num(cy), num(cy), esc(o.y_label)))
  end
  if o.x_label then
    add(('<text class="c-label" x="%s" y="%d" text-anchor="middle">%s</text>'):format(
      num((left + right) / 2), H - 8, esc(o.x_label)))
  end
  return ctx
end

local function finish(ctx, o)
  return ('<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">%s</svg>')
    :format(ctx.W, ctx.H, ctx.W, ctx.H, esc(o.title or "chart"), table.concat(ctx.parts))
end

-- Category labels under the x axis, thinned so they never overlap.
local function category_axis(ctx, cats, centre)
  local b = ctx.box
  local n = #cats
  if n == 0 then return end
  local band = (b.x1 - b.x0) / n
  local widest = 0
  for _, c in ipairs(cats) do widest = math.max(widest, text_width(tostring(c), 11)) end
  local every = math.max(1, math.ceil((widest + 8) / band))
  for i, c in ipairs(cats) do
    if (i - 1) % every == 0 or (i == n and every == 1) then
      local x = centre(i)
      ctx.add(('<line class="c-axis" x1="%s" y1="%d" x2="%s" y2="%d"/>'):format(num(x), b.y1,
        num(x), b.y1 + 4))
      ctx.add(('<text class="c-tick" x="%s" y="%d" text-anchor="middle">%s</text>'):format(num(x),
        b.y1 + 16, esc(c)))
    end
  end
end

-- Numeric x axis ticks for [lo, hi].
local function numeric_axis(ctx, lo, hi, fmt)
  local b = ctx.box
  local ticks, _, _, step = M.ticks(lo, hi, math.max(2, math.floor((b.x1 - b.x0) / 90)))
  local function x(v) return b.x0 + (v - lo) / (hi - lo) * (b.x1 - b.x0) end
  local scale = math.max(math.abs(lo), math.abs(hi))
  for _, t in ipairs(ticks) do
    if t >= lo - 1e-9 and t <= hi + 1e-9 then
      local px = x(t)
      ctx.add(('<line class="c-axis" x1="%s" y1="%d" x2="%s" y2="%d"/>'):format(num(px), b.y1,
        num(px), b.y1 + 4))
      ctx.add(('<text class="c-tick" x="%s" y="%d" text-anchor="middle">%s</text>'):format(num(px),
        b.y1 + 16, esc(fmt and fmt(t, step) or M.fmt_tick(t, step, nil, scale))))
    end
  end
  return x
end

local function value_text(v, o)
  if v == nil then return "-" end
  if o.y_unit == "%" then return ("%.1f%%"):format(v * 100) end
  if o.value_fmt then return o.value_fmt(v) end
  if math.type(v) == "integer" or v == math.floor(v) and math.abs(v) < 1e15 then
    return ("%d"):format(v)
  end
  return ("%.3g"):format(v)
end

local function empty_note(ctx, text)
  local b = ctx.box
  ctx.add(('<text class="c-note" x="%s" y="%s" text-anchor="middle">%s</text>'):format(
    num((b.x0 + b.x1) / 2), num((b.y0 + b.y1) / 2), esc(text)))
end

local function y_range(o, stacked_totals)
  local hi = o.y_hi
  if not hi then
    hi = 0
    for _, s in ipairs(o.series) do
      for _, v in pairs(s.values) do if type(v) == "number" and v > hi then hi = v end end
    end
    for _, v in pairs(stacked_totals or {}) do if v > hi then hi = v end end
    if hi == 0 then hi = 1 end
  end
  return o.y_lo or 0, hi
end

local function legend_of(o, line)
  if o.legend then return o.legend end
  if #o.series < 2 and not o.always_legend then return nil end
  local l = {}
  for i, s in ipairs(o.series) do
    l[#l + 1] = { name = s.name, color = s.color or M.palette[i], dash = s.dash, line = line }
  end
  return l
end

-- Lines over categories (o.categories) or numbers (o.x = {x1, x2, ...}); a nil value
-- breaks its line. o.series = {{name=, values=, color=, dash=}}.
function M.line(o)
  local lo, hi = y_range(o)
  o.y_lo, o.y_hi = lo, hi
  local ctx = frame({ width = o.width, height = o.height, title = o.title, y_label = o.y_label,
    x_label = o.x_label, legend = legend_of(o, true), y_lo = lo, y_hi = hi, y_unit = o.y_unit,
    y_fixed = o.y_fixed })
  local b = ctx.box
  local n = o.categories and #o.categories or #(o.x or {})
  if n == 0 then
    empty_note(ctx, o.empty or "no data yet")
    return finish(ctx, o)
  end
  local xof
  if o.categories then
    local band = (b.x1 - b.x0) / n
    xof = function(i) return b.x0 + band * (i - 0.5) end
    category_axis(ctx, o.categories, xof)
  else
    local xlo, xhi = o.x_lo or o.x[1], o.x_hi or o.x[n]
    if xhi <= xlo then xhi = xlo + 1 end
    local map = numeric_axis(ctx, xlo, xhi, o.x_fmt)
    xof = function(i) return map(o.x[i]) end
  end
  local dots = n <= 30
  for si, s in ipairs(o.series) do
    local color = s.color or M.palette[si]
    local seg = {}
    local function flush()
      if #seg >= 2 then
        ctx.add(('<polyline fill="none" stroke="%s" stroke-width="2.2" stroke-linejoin="round"%s points="%s"/>')
          :format(color, s.dash and ' stroke-dasharray="5 4"' or "", table.concat(seg, " ")))
      end
      seg = {}
    end
    for i = 1, n do
      local v = s.values[i]
      if type(v) == "number" then
        seg[#seg + 1] = num(xof(i)) .. "," .. num(ctx.y(v))
      else
        flush()
      end
    end
    flush()
    if dots then
      for i = 1, n do
        local v = s.values[i]
        if type(v) == "number" then
          local label = o.categories and o.categories[i] or M.fmt_tick(o.x[i], 1)
          ctx.add(('<circle cx="%s" cy="%s" r="3.2" fill="%s"><title>%s</title></circle>'):format(
            num(xof(i)), num(ctx.y(v)), color,
            esc(("%s, %s %s: %s"):format(s.name or "", o.x_name or "", label, value_text(v, o)))))
        end
      end
    end
  end
  return finish(ctx, o)
end

-- Bars over categories: one series, several side by side, or stacked (o.stacked).
-- o.bar_colors colours single-series bars one by one (with o.legend saying what they mean).
function M.bars(o)
  local n = #o.categories
  local totals = {}
  if o.stacked then
    for i = 1, n do
      local t = 0
      for _, s in ipairs(o.series) do t = t + (tonumber(s.values[i]) or 0) end
      totals[i] = t
    end
  end
  local lo, hi = y_range(o, o.stacked and totals or nil)
  local ctx = frame({ width = o.width, height = o.height, title = o.title, y_label = o.y_label,
    x_label = o.x_label, legend = legend_of(o, false), y_lo = lo, y_hi = hi, y_unit = o.y_unit,
    y_fixed = o.y_fixed })
  local b = ctx.box
  if n == 0 then
    empty_note(ctx, o.empty or "no data yet")
    return finish(ctx, o)
  end
  local band = (b.x1 - b.x0) / n
  local pad = math.min(band * 0.18, 14)
  local inner = band - 2 * pad
  local groups = o.stacked and 1 or #o.series
  local bw = inner / groups
  local function centre(i) return b.x0 + band * (i - 0.5) end
  local function left(i) return b.x0 + band * (i - 1) + pad end
  if o.edges then -- bars over numeric intervals [edges[i], edges[i + 1]]
    local map = numeric_axis(ctx, o.edges[1], o.edges[n + 1] > o.edges[1] and o.edges[n + 1]
      or o.edges[1] + 1, o.x_fmt)
    band = (b.x1 - b.x0) / n
    pad = math.min(band * 0.12, 6)
    inner = band - 2 * pad
    bw = inner / groups
    centre = function(i) return (map(o.edges[i]) + map(o.edges[i + 1])) / 2 end
    left = function(i) return map(o.edges[i]) + pad end
  end
  for i = 1, n do
    local base = 0
    for si, s in ipairs(o.series) do
      local v = tonumber(s.values[i])
      if v and v ~= 0 then
        local color = (o.bar_colors and o.bar_colors[i]) or s.color or M.palette[si]
        local x, y, h
        if o.stacked then
          x = left(i)
          y = ctx.y(base + v)
          h = ctx.y(base) - y
          base = base + v
        else
          x = left(i) + bw * (si - 1)
          y = ctx.y(math.max(v, 0))
          h = ctx.y(0) - y
        end
        local w = o.stacked and inner or bw
        ctx.add(('<rect x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s</title></rect>')
          :format(num(x), num(y), num(math.max(w - (groups > 1 and 1 or 0), 0.5)),
            num(math.max(h, 0.5)), color, esc(("%s%s %s: %s"):format(s.name and (s.name .. ", ") or "",
              o.x_name or "", o.categories[i], value_text(v, o)))))
        if o.labels and not o.stacked and bw >= 26 then
          ctx.add(('<text class="c-value" x="%s" y="%s" text-anchor="middle">%s</text>'):format(
            num(x + w / 2), num(y - 4), esc(value_text(v, o))))
        end
      end
    end
    if o.stacked and o.labels and band >= 30 and totals[i] > 0 then
      ctx.add(('<text class="c-value" x="%s" y="%s" text-anchor="middle">%s</text>'):format(
        num(centre(i)), num(ctx.y(totals[i]) - 4), esc(value_text(totals[i], o))))
    end
  end
  if not o.edges then category_axis(ctx, o.categories, centre) end
  return finish(ctx, o)
end

-- A histogram: o.edges (n + 1 numbers), o.counts (n), o.color; o.markers = {{value=,
-- label=}} draws dashed vertical lines (percentiles, say).
function M.histogram(o)
  local hi = 0
  for _, c in ipairs(o.counts or {}) do hi = math.max(hi, c) end
  local ctx = frame({ width = o.width, height = o.height, title = o.title, y_label = o.y_label,
    x_label = o.x_label, legend = o.legend, y_lo = 0, y_hi = math.max(hi, 1) })
  local b = ctx.box
  local edges = o.edges or {}
  if #edges < 2 then
    empty_note(ctx, o.empty or "no data yet")
    return finish(ctx, o)
  end
  local lo, top = edges[1], edges[#edges]
  if top <= lo then top = lo + 1 end
  local x = numeric_axis(ctx, lo, top, o.x_fmt)
  for i, c in ipairs(o.counts) do
    if c > 0 then
      local x0, x1 = x(edges[i]), x(edges[i + 1])
      local y = ctx.y(c)
      ctx.add(('<rect x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s</title></rect>')
        :format(num(x0 + 0.5), num(y), num(math.max(x1 - x0 - 1, 0.8)), num(ctx.y(0) - y),
          o.color or M.palette[1], esc(("%s to %s %s: %d"):format(M.fmt_tick(edges[i], edges[i + 1] - edges[i]),
            M.fmt_tick(edges[i + 1], edges[i + 1] - edges[i]), o.unit or "", c))))
    end
  end
  -- Marker labels go in rows at the top of the plot, each in the first row where it
  -- overlaps no other label.
  local rows = {}
  for _, m in ipairs(o.markers or {}) do
    if m.value >= lo and m.value <= top then
      local px = x(m.value)
      ctx.add(('<line x1="%s" y1="%d" x2="%s" y2="%d" stroke="#374151" stroke-width="1.2" stroke-dasharray="4 3"/>')
        :format(num(px), b.y0, num(px), b.y1))
      local w = text_width(m.label, 11) + 8
      local anchor = px + w > b.x1 and "end" or "start"
      local x0 = anchor == "end" and px - w or px
      local row = 1
      while true do
        local clash = false
        for _, span in ipairs(rows[row] or {}) do
          if x0 < span[2] and x0 + w > span[1] then clash = true break end
        end
        if not clash then break end
        row = row + 1
      end
      rows[row] = rows[row] or {}
      table.insert(rows[row], { x0, x0 + w })
      ctx.add(('<text class="c-marker" x="%s" y="%s" text-anchor="%s">%s</text>'):format(
        num(anchor == "end" and px - 4 or px + 4), num(b.y0 + 11 + (row - 1) * 13), anchor, esc(m.label)))
    end
  end
  return finish(ctx, o)
end

-- A tree drawn top-down: o.nodes = {{id=, parent=, title=, lines={...}, color=, fill=,
-- dashed=, strong=, tip=}} in any order. Children are packed by their contours, so a long
-- line of versions with rejected siblings stays narrow.
function M.tree(o)
  local lines = 1
  for _, nd in ipairs(o.nodes) do lines = math.max(lines, #(nd.lines or {})) end
  local NW, NH, GX, GY = o.node_width or 168, 30 + 16 * lines, 14, 34
  local byid, roots = {}, {}
  for _, nd in ipairs(o.nodes) do byid[nd.id] = { n = nd, kids = {} } end
  for i, nd in ipairs(o.nodes) do
    byid[nd.id].index = i
    local p = nd.parent and byid[nd.parent]
    if p and nd.parent ~= nd.id then table.insert(p.kids, byid[nd.id]) else roots[#roots + 1] = byid[nd.id] end
  end
  -- Children in the order their nodes ask for (rank), then in the order given.
  for _, t in pairs(byid) do
    table.sort(t.kids, function(a, b)
      local ra, rb = a.n.rank or 0, b.n.rank or 0
      if ra ~= rb then return ra < rb end
      return a.index < b.index
    end)
  end
  -- Layout: each subtree gets relative x offsets and a contour (min and max x per depth).
  local function layout(t, seen)
    if seen[t] then return { left = { 0 }, right = { 0 } } end
    seen[t] = true
    t.rel = {}
    if #t.kids == 0 then
      t.contour = { left = { 0 }, right = { 0 } }
      return t.contour
    end
    local placed = {}
    local merged = { left = {}, right = {} }
    for _, k in ipairs(t.kids) do
      local c = layout(k, seen)
      local shift = 0
      if #placed > 0 then
        shift = -math.huge
        for d = 1, math.min(#c.left, #merged.right) do
          shift = math.max(shift, merged.right[d] - c.left[d] + 1)
        end
        if shift == -math.huge then shift = 0 end
      end
      k.offset = shift
      placed[#placed + 1] = k
      for d = 1, #c.left do
        local l, r = c.left[d] + shift, c.right[d] + shift
        merged.left[d] = merged.left[d] and math.min(merged.left[d], l) or l
        merged.right[d] = merged.right[d] and math.max(merged.right[d], r) or r
      end
    end
    local mid = (placed[1].offset + placed[#placed].offset) / 2
    for _, k in ipairs(placed) do k.offset = k.offset - mid end
    local contour = { left = { 0 }, right = { 0 } }
    for d = 1, #merged.left do
      contour.left[d + 1] = merged.left[d] - mid
      contour.right[d + 1] = merged.right[d] - mid
    end
    t.contour = contour
    return contour
  end
  local seen = {}
  local forest_right, maxdepth = nil, 0
  local placed_nodes = {}
  for _, r in ipairs(roots) do
    local c = layout(r, seen)
    local shift = 0
    if forest_right then
      shift = -math.huge
      for d = 1, math.min(#c.left, #forest_right) do
        shift = math.max(shift, forest_right[d] - c.left[d] + 1)
      end
      if shift == -math.huge then shift = 0 end
    else
      forest_right = {}
    end
    for d = 1, #c.right do
      forest_right[d] = math.max(forest_right[d] or -math.huge, c.right[d] + shift)
    end
    r.offset = shift
  end
  local minx, maxx = math.huge, -math.huge
  local walked = {}
  local function place(t, x, depth)
    if walked[t] then return end
    walked[t] = true
    t.x, t.depth = x, depth
    minx, maxx = math.min(minx, x), math.max(maxx, x)
    maxdepth = math.max(maxdepth, depth)
    placed_nodes[#placed_nodes + 1] = t
    for _, k in ipairs(t.kids) do place(k, x + (k.offset or 0), depth + 1) end
  end
  for _, r in ipairs(roots) do place(r, r.offset or 0, 0) end
  if #placed_nodes == 0 then return "" end
  local W = math.floor((maxx - minx) * (NW + GX) + NW + 24)
  local H = math.floor(maxdepth * (NH + GY) + NH + 24)
  local parts = {}
  local function px(t) return 12 + (t.x - minx) * (NW + GX) end
  local function py(t) return 12 + t.depth * (NH + GY) end
  for _, t in ipairs(placed_nodes) do
    for _, k in ipairs(t.kids) do
      if k.x then
        local x1, y1 = px(t) + NW / 2, py(t) + NH
        local x2, y2 = px(k) + NW / 2, py(k)
        local my = (y1 + y2) / 2
        parts[#parts + 1] = ('<path d="M%s %s C%s %s %s %s %s %s" fill="none" stroke="#9ca3af" stroke-width="1.5"%s/>')
          :format(num(x1), num(y1), num(x1), num(my), num(x2), num(my), num(x2), num(y2),
            k.n.dashed and ' stroke-dasharray="4 3"' or "")
      end
    end
  end
  for _, t in ipairs(placed_nodes) do
    local nd = t.n
    local x, y = px(t), py(t)
    parts[#parts + 1] = ('<g><title>%s</title><rect x="%s" y="%s" width="%d" height="%d" rx="7" fill="%s" stroke="%s" stroke-width="%s"%s/>')
      :format(esc(nd.tip or nd.title), num(x), num(y), NW, NH, nd.fill or "#fff", nd.color or "#6b7280",
        nd.strong and "3" or "1.5", nd.dashed and ' stroke-dasharray="5 3"' or "")
    parts[#parts + 1] = ('<text class="t-title" x="%s" y="%s">%s</text>'):format(num(x + 10),
      num(y + 19), esc(nd.title))
    for li, line in ipairs(nd.lines or {}) do
      parts[#parts + 1] = ('<text class="t-line" x="%s" y="%s">%s</text>'):format(num(x + 10),
        num(y + 19 + 16 * li), esc(line))
    end
    parts[#parts + 1] = "</g>"
  end
  return ('<svg class="tree" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">%s</svg>')
    :format(W, H, W, H, esc(o.title or "tree"), table.concat(parts))
end

return M

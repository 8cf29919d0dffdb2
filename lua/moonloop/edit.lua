-- Self-edits of a Lua file with editable regions. Text between a line "-- @editable NAME"
-- and a line "-- @end" may change; everything else is frozen. Two edit formats:
--
--   SEARCH/REPLACE blocks, each addressed to a region:
--     <<<<<<< SEARCH challenger_prompt
--     text that occurs exactly once in the region
--     =======
--     its replacement
--     >>>>>>> REPLACE
--
--   a whole-region rewrite (the fallback for weaker models):
--     BEGIN REGION challenger_prompt
--     the new text of the region
--     END REGION
--
-- Every function here takes untrusted text (model output) and returns nil plus a message
-- that says what is wrong and where, never raises on bad input.
local M = {}

M.MAX_ANSWER = 256 * 1024 -- bytes of model output we look at
M.MAX_REGION = 64 * 1024  -- bytes a region may grow to

-- Lines without their "\r\n" or "\n"; with keep_cr, a "\r" before the "\n" stays (the
-- bytes as they are). Both split at every "\n", so line numbers are the same either way.
local function split_lines(s, keep_cr)
  local lines = {}
  local pattern = keep_cr and "(.-)\n" or "(.-)\r?\n"
  for line in (s .. "\n"):gmatch(pattern) do lines[#lines + 1] = line end
  -- "a\n" splits into {"a", ""}: the last empty entry stands for the final newline.
  return lines
end

local function is_marker(line)
  return line:match("^%s*%-%-%s*@editable") ~= nil or line:match("^%s*%-%-%s*@end%s*$") ~= nil
end

-- The regions of a source: { {name=, open=, close=, first=, last=, text=}, ... } where open
-- and close are the marker lines and first..last the body. Problems: unclosed, nested,
-- duplicate names, @end without @editable, a malformed marker.
function M.regions(source)
  local regions, problems, open, seen = {}, {}, nil, {}
  local lines = split_lines(source)
  for lineno, line in ipairs(lines) do
    local name = line:match("^%s*%-%-%s*@editable%s+([%w_]+)%s*$")
    if name then
      if open then
        problems[#problems + 1] = ("line %d: region %q starts inside region %q (line %d)"):format(
          lineno, name, open.name, open.open)
      end
      if seen[name] then
        problems[#problems + 1] = ("line %d: region %q is defined twice"):format(lineno, name)
      end
      seen[name] = true
      open = { name = name, open = lineno, first = lineno + 1, body = {} }
    elseif line:match("^%s*%-%-%s*@editable") then
      problems[#problems + 1] = ("line %d: malformed marker (want \"-- @editable NAME\", NAME of letters, digits, _)"):format(lineno)
    elseif line:match("^%s*%-%-%s*@end%s*$") then
      if not open then
        problems[#problems + 1] = ("line %d: @end without @editable"):format(lineno)
      else
        open.close, open.last = lineno, lineno - 1
        open.text = table.concat(open.body, "\n")
        open.body = nil
        regions[#regions + 1] = open
        open = nil
      end
    elseif open then
      open.body[#open.body + 1] = line
    end
  end
  if open then
    problems[#problems + 1] = ("line %d: region %q is never closed with -- @end"):format(open.open, open.name)
  end
  return regions, problems
end

local function find_region(regions, name)
  for _, r in ipairs(regions) do
    if r.name == name then return r end
  end
  return nil
end

local function region_names(regions)
  local names = {}
  for _, r in ipairs(regions) do names[#names + 1] = r.name end
  return table.concat(names, ", ")
end

-- Rebuild a source with new region bodies: bodies = { name = "new text" }. Every line
-- outside the new bodies keeps its bytes, a CRLF line ending included (a "\r" dropped
-- from a frozen line would be a change outside the regions).
function M.rebuild(source, regions, bodies)
  local lines, out, r, i = split_lines(source, true), {}, 1, 1
  while i <= #lines do
    local reg = regions[r]
    if reg and i == reg.first then
      local body = bodies[reg.name]
      if body == nil then
        for j = reg.first, reg.last do out[#out + 1] = lines[j] end
      elseif body ~= "" or reg.last >= reg.first then
        out[#out + 1] = body
      end
      i = reg.close
      r = r + 1
    else
      out[#out + 1] = lines[i]
      i = i + 1
    end
  end
  return table.concat(out, "\n")
end

-- The frozen part of a source: every line outside the regions, with each region's body
-- replaced by its name. Two versions with the same frozen text differ only inside regions.
function M.frozen(source)
  local regions, problems = M.regions(source)
  if #problems > 0 then return nil, problems[1] end
  local bodies = {}
  for _, r in ipairs(regions) do bodies[r.name] = "\0region " .. r.name end
  return M.rebuild(source, regions, bodies)
end

function M.frozen_hash(source)
  local f, err = M.frozen(source)
  if not f then return nil, err end
  return text.hash(f)
end

-- Parse SEARCH/REPLACE blocks out of an answer. Returns blocks {region=, search=, replace=,
-- line=} and a list of problems (each naming the line of the answer).
function M.parse_blocks(answer)
  local blocks, problems = {}, {}
  if #answer > M.MAX_ANSWER then
    return blocks, { ("the answer is %d bytes; at most %d are read"):format(#answer, M.MAX_ANSWER) }
  end
  local cur, part
  for lineno, line in ipairs(split_lines(answer)) do
    local start, name = line:match("^%s*(<<<<<<<+)%s*SEARCH%s*([%w_]*)%s*$")
    if start then
      if cur then
        problems[#problems + 1] = ("answer line %d: a new SEARCH starts before the block of line %d ended with >>>>>>> REPLACE"):format(lineno, cur.line)
      end
      cur, part = { region = name ~= "" and name or nil, line = lineno, search = {}, replace = {} }, "search"
    elseif cur and line:match("^%s*=======+%s*$") then
      if part == "replace" then
        problems[#problems + 1] = ("answer line %d: a second ======= in the block of line %d"):format(lineno, cur.line)
      end
      part = "replace"
    elseif cur and line:match("^%s*>>>>>>>+%s*REPLACE%s*$") then
      if part ~= "replace" then
        problems[#problems + 1] = ("answer line %d: the block of line %d has no ======= between SEARCH and REPLACE"):format(lineno, cur.line)
      else
        cur.search = table.concat(cur.search, "\n")
        cur.replace = table.concat(cur.replace, "\n")
        blocks[#blocks + 1] = cur
      end
      cur, part = nil, nil
    elseif cur then
      table.insert(cur[part], line)
    end
  end
  if cur then
    problems[#problems + 1] = ("answer line %d: the block is not closed with >>>>>>> REPLACE"):format(cur.line)
  end
  return blocks, problems
end

-- Parse whole-region rewrites: "BEGIN REGION name" ... "END REGION".
function M.parse_rewrites(answer)
  local rewrites, problems = {}, {}
  if #answer > M.MAX_ANSWER then
    return rewrites, { ("the answer is %d bytes; at most %d are read"):format(#answer, M.MAX_ANSWER) }
  end
  local cur
  for lineno, line in ipairs(split_lines(answer)) do
    local name = line:match("^%s*BEGIN REGION%s*([%w_]*)%s*$")
    if name then
      if cur then
        problems[#problems + 1] = ("answer line %d: BEGIN REGION inside the rewrite of line %d"):format(lineno, cur.line)
      end
      cur = { region = name ~= "" and name or nil, line = lineno, lines = {} }
    elseif cur and line:match("^%s*END REGION%s*$") then
      cur.text = table.concat(cur.lines, "\n")
      cur.lines = nil
      rewrites[#rewrites + 1] = cur
      cur = nil
    elseif cur then
      cur.lines[#cur.lines + 1] = line
    end
  end
  if cur then
    problems[#problems + 1] = ("answer line %d: the rewrite is not closed with END REGION"):format(cur.line)
  end
  return rewrites, problems
end

local function marker_in(s)
  for _, line in ipairs(split_lines(s)) do
    if is_marker(line) then return line end
  end
  return nil
end

-- All start positions of a plain substring.
local function occurrences(hay, needle)
  local at, from = {}, 1
  while true do
    local s = hay:find(needle, from, true)
    if not s then return at end
    at[#at + 1] = s
    from = s + 1
  end
end

local function line_of(region, body, pos)
  local _, nl = body:sub(1, pos - 1):gsub("\n", "")
  return region.first + nl
end

-- Trailing-whitespace-insensitive, indentation-insensitive match of whole lines: models
-- often re-indent. Returns the list of starting line indexes (1-based in the body).
local function fuzzy_line_matches(body, search)
  local blines, slines = split_lines(body), split_lines(search)
  local function norm(l) return (l:gsub("^%s+", ""):gsub("%s+$", "")) end
  local found = {}
  for i = 1, #blines - #slines + 1 do
    local ok = true
    for j = 1, #slines do
      if norm(blines[i + j - 1]) ~= norm(slines[j]) then ok = false break end
    end
    if ok then found[#found + 1] = i end
  end
  return found, blines, slines
end

-- Apply SEARCH/REPLACE blocks. Each SEARCH must occur exactly once in its region (after
-- the blocks before it were applied). Returns the new source, or nil and a message.
function M.apply_blocks(source, blocks)
  local regions, problems = M.regions(source)
  if #problems > 0 then return nil, "the recipe's regions are broken: " .. problems[1] end
  if #blocks == 0 then return nil, "the answer holds no SEARCH/REPLACE block" end
  local bodies = {}
  for n, b in ipairs(blocks) do
    local name = b.region
    if not name then
      if #regions == 1 then name = regions[1].name
      else
        return nil, ("block %d (answer line %d) names no region; say `<<<<<<< SEARCH name` with one of: %s"):format(
          n, b.line, region_names(regions))
      end
    end
    local reg = find_region(regions, name)
    if not reg then
      return nil, ("block %d (answer line %d) is addressed to %q, which is not an editable region (regions: %s); everything outside the regions is frozen"):format(
        n, b.line, name, region_names(regions))
    end
    if b.search == "" then
      return nil, ("block %d (answer line %d): the SEARCH text is empty"):format(n, b.line)
    end
    local bad = marker_in(b.replace) or marker_in(b.search)
    if bad then
      return nil, ("block %d (answer line %d) contains a region marker (%q); region boundaries are frozen"):format(
        n, b.line, bad)
    end
    local body = bodies[name] or reg.text
    local at = occurrences(body, b.search)
    if #at == 1 then
      body = body:sub(1, at[1] - 1) .. b.replace .. body:sub(at[1] + #b.search)
    elseif #at > 1 then
      local where = {}
      for _, p in ipairs(at) do where[#where + 1] = tostring(line_of(reg, body, p)) end
      return nil, ("block %d (answer line %d): the SEARCH text occurs %d times in region %q, at lines %s of the file; add surrounding lines so it matches once"):format(
        n, b.line, #at, name, table.concat(where, " and "))
    else
      local found, blines, slines = fuzzy_line_matches(body, b.search)
      if #found == 1 then
        local out = {}
        for i = 1, found[1] - 1 do out[#out + 1] = blines[i] end
        out[#out + 1] = b.replace
        for i = found[1] + #slines, #blines do out[#out + 1] = blines[i] end
        body = table.concat(out, "\n")
      elseif #found > 1 then
        local where = {}
        for _, i in ipairs(found) do where[#where + 1] = tostring(reg.first + i - 1) end
        return nil, ("block %d (answer line %d): the SEARCH text occurs %d times in region %q (ignoring indentation), at lines %s of the file; add surrounding lines so it matches once"):format(
          n, b.line, #found, name, table.concat(where, " and "))
      else
        local first = b.search:match("^[^\n]*")
        return nil, ("block %d (answer line %d): the SEARCH text matches nothing in region %q (lines %d-%d of the file); its first line %q is not there. Copy the text exactly from the region"):format(
          n, b.line, name, reg.first, reg.last, first:sub(1, 80))
      end
    end
    if #body > M.MAX_REGION then
      return nil, ("block %d (answer line %d): region %q would grow to %d bytes (at most %d)"):format(
        n, b.line, name, #body, M.MAX_REGION)
    end
    bodies[name] = body
  end
  return M.rebuild(source, regions, bodies)
end

-- Replace whole regions: rewrites = { {region=, text=, line=} }.
function M.apply_rewrites(source, rewrites, default_region)
  local regions, problems = M.regions(source)
  if #problems > 0 then return nil, "the recipe's regions are broken: " .. problems[1] end
  if #rewrites == 0 then return nil, "the answer holds no BEGIN REGION ... END REGION rewrite" end
  local bodies = {}
  for n, rw in ipairs(rewrites) do
    local name = rw.region or default_region or (#regions == 1 and regions[1].name)
    if not name then
      return nil, ("rewrite %d (answer line %d) names no region; say `BEGIN REGION name` with one of: %s"):format(
        n, rw.line, region_names(regions))
    end
    if not find_region(regions, name) then
      return nil, ("rewrite %d (answer line %d) is addressed to %q, which is not an editable region (regions: %s)"):format(
        n, rw.line, name, region_names(regions))
    end
    local bad = marker_in(rw.text)
    if bad then
      return nil, ("rewrite %d (answer line %d) contains a region marker (%q); region boundaries are frozen"):format(
        n, rw.line, bad)
    end
    if #rw.text > M.MAX_REGION then
      return nil, ("rewrite %d: region %q would be %d bytes (at most %d)"):format(n, name, #rw.text, M.MAX_REGION)
    end
    bodies[name] = rw.text
  end
  return M.rebuild(source, regions, bodies)
end

-- Apply a model's answer in the format it used. opts.format: "search_replace" (default),
-- "rewrite" or "auto"; opts.region: the region a nameless rewrite is meant for.
-- Returns new_source, {format=, blocks=n} or nil, message.
function M.apply(source, answer, opts)
  opts = opts or {}
  if type(answer) ~= "string" then return nil, "the answer is not text" end
  local fmt = opts.format or "auto"
  local blocks, bproblems = M.parse_blocks(answer)
  local rewrites, rproblems = M.parse_rewrites(answer)
  if fmt == "search_replace" or (fmt == "auto" and (#blocks > 0 or #bproblems > 0)) then
    if #bproblems > 0 then return nil, bproblems[1] end
    local new, err = M.apply_blocks(source, blocks)
    if not new then return nil, err end
    return new, { format = "search_replace", edits = #blocks }
  end
  if #rproblems > 0 then return nil, rproblems[1] end
  local new, err = M.apply_rewrites(source, rewrites, opts.region)
  if not new then return nil, err end
  return new, { format = "rewrite", edits = #rewrites }
end

-- Is child a legal edit of parent? Same regions in the same order, same frozen text.
function M.check(parent, child)
  local pr, pp = M.regions(parent)
  if #pp > 0 then return nil, "the parent's regions are broken: " .. pp[1] end
  local cr, cp = M.regions(child)
  if #cp > 0 then return nil, "region structure: " .. cp[1] end
  if #pr ~= #cr then
    return nil, ("region structure: the parent has %d regions (%s), the edit has %d (%s)"):format(
      #pr, region_names(pr), #cr, region_names(cr))
  end
  for i = 1, #pr do
    if pr[i].name ~= cr[i].name then
      return nil, ("region structure: region %d is %q in the parent and %q in the edit"):format(
        i, pr[i].name, cr[i].name)
    end
  end
  if M.frozen(parent) ~= M.frozen(child) then
    local a, b = split_lines(M.frozen(parent)), split_lines(M.frozen(child))
    for i = 1, math.max(#a, #b) do
      if a[i] ~= b[i] then
        return nil, ("the edit changes frozen text outside the editable regions (near line %d: %q)"):format(
          i, tostring(b[i] or a[i]):gsub("%z", ""):sub(1, 80))
      end
    end
    return nil, "the edit changes frozen text outside the editable regions"
  end
  return true
end

-- A unified diff of two texts (line based, LCS; fine for recipe-sized files).
function M.diff(a, b, name_a, name_b, context)
  context = context or 3
  local x, y = split_lines(a), split_lines(b)
  if x[#x] == "" then x[#x] = nil end
  if y[#y] == "" then y[#y] = nil end
  local n, m = #x, #y
  -- Trim the common head and tail so the table is small for small edits.
  local head = 0
  while head < n and head < m and x[head + 1] == y[head + 1] do head = head + 1 end
  local tail = 0
  while tail < n - head and tail < m - head and x[n - tail] == y[m - tail] do tail = tail + 1 end
  local xs, ys = {}, {}
  for i = head + 1, n - tail do xs[#xs + 1] = x[i] end
  for i = head + 1, m - tail do ys[#ys + 1] = y[i] end
  local N, Mn = #xs, #ys
  if N * Mn > 4e6 then return nil, "the texts are too different to diff line by line" end
  local L = {}
  for i = N + 1, 1, -1 do
    L[i] = {}
    for j = Mn + 1, 1, -1 do
      if i > N or j > Mn then L[i][j] = 0
      elseif xs[i] == ys[j] then L[i][j] = L[i + 1][j + 1] + 1
      else L[i][j] = math.max(L[i + 1][j], L[i][j + 1]) end
    end
  end
  local ops = {} -- {op, line_a, line_b, text}
  for i = 1, head do ops[#ops + 1] = { " ", i, i, x[i] } end
  local i, j = 1, 1
  while i <= N or j <= Mn do
    if i <= N and j <= Mn and xs[i] == ys[j] then
      ops[#ops + 1] = { " ", head + i, head + j, xs[i] }; i, j = i + 1, j + 1
    elseif i <= N and (j > Mn or L[i + 1][j] >= L[i][j + 1]) then
      ops[#ops + 1] = { "-", head + i, nil, xs[i] }; i = i + 1
    else
      ops[#ops + 1] = { "+", nil, head + j, ys[j] }; j = j + 1
    end
  end
  for k = 1, tail do ops[#ops + 1] = { " ", n - tail + k, m - tail + k, x[n - tail + k] } end
  local out = { ("--- %s"):format(name_a or "a"), ("+++ %s"):format(name_b or "b") }
  local k = 1
  local changed = false
  while k <= #ops do
    if ops[k][1] ~= " " then
      changed = true
      local s = math.max(1, k - context)
      local e = k
      -- extend the hunk while changes are within 2*context lines of each other
      while true do
        local nxt = e + 1
        while nxt <= #ops and ops[nxt][1] == " " and nxt - e <= 2 * context do nxt = nxt + 1 end
        if nxt <= #ops and ops[nxt][1] ~= " " then e = nxt else break end
      end
      local last = math.min(#ops, e + context)
      local a0, b0, ac, bc = nil, nil, 0, 0
      for q = s, last do
        local o = ops[q]
        if o[1] ~= "+" then ac = ac + 1; a0 = a0 or o[2] end
        if o[1] ~= "-" then bc = bc + 1; b0 = b0 or o[3] end
      end
      out[#out + 1] = ("@@ -%d,%d +%d,%d @@"):format(a0 or 0, ac, b0 or 0, bc)
      for q = s, last do out[#out + 1] = ops[q][1] .. ops[q][4] end
      k = last + 1
    else
      k = k + 1
    end
  end
  if not changed then return "" end
  return table.concat(out, "\n") .. "\n"
end

return M

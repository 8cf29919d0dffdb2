-- Text helpers of the simulator: reading request messages, splitting words and
-- sentences, picking a source's topic terms, and writing JSON with a fixed key order
-- (Lua's table order varies between processes, and answers must be byte-identical).
local vocab = require "moonloop.sim.vocab"

local M = {}

local format, byte = string.format, string.byte

-- The text of a message: a string, or the text parts of a content array.
function M.content(msg)
  local c = type(msg) == "table" and msg.content
  if type(c) == "string" then return c end
  if type(c) ~= "table" then return "" end
  local parts = {}
  for _, part in ipairs(c) do
    if type(part) == "table" and type(part.text) == "string" then parts[#parts + 1] = part.text end
  end
  return table.concat(parts, "\n")
end

-- The request's messages as { role =, text = } (non-tables skipped).
function M.messages(body)
  local out = {}
  for _, m in ipairs(type(body.messages) == "table" and body.messages or {}) do
    if type(m) == "table" then
      out[#out + 1] = { role = type(m.role) == "string" and m.role or "", text = M.content(m) }
    end
  end
  return out
end

-- Text of the messages with the given roles, joined by blank lines.
function M.joined(msgs, roles)
  local parts = {}
  for _, m in ipairs(msgs) do
    if roles[m.role] then parts[#parts + 1] = m.text end
  end
  return table.concat(parts, "\n\n")
end

function M.last_user(msgs)
  for i = #msgs, 1, -1 do
    if msgs[i].role == "user" then return msgs[i].text end
  end
  return ""
end

function M.lines(s)
  local out = {}
  for line in (s .. "\n"):gmatch("(.-)\r?\n") do out[#out + 1] = line end
  return out
end

function M.trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- Lowercase words (letters, digits, inner hyphens and apostrophes).
function M.words(s)
  local out = {}
  for w in s:lower():gmatch("[%w][%w%-']*") do out[#out + 1] = w end
  return out
end

-- The words that carry meaning in a rubric check: no stop words, no numbers.
function M.content_words(s)
  local out, seen = {}, {}
  for _, w in ipairs(M.words(s)) do
    if #w >= 3 and not vocab.STOP[w] and not w:match("^[%d%-]+$") and not seen[w] then
      seen[w] = true
      out[#out + 1] = w
    end
  end
  return out
end

-- A set of the words of s, for containment checks.
function M.word_set(s)
  local set = {}
  for _, w in ipairs(M.words(s)) do set[w] = true end
  return set
end

-- Topic terms of a source text: words of 5+ letters that are not common English or
-- instruction vocabulary, best first (ties in first-seen order). A technical note
-- repeats its own terms, so frequency finds them.
function M.topic_terms(s, limit)
  local count, first, order = {}, {}, {}
  for w in s:lower():gmatch("%a[%a%-]*%a") do
    if #w >= 5 and #w <= 24 and not vocab.SOURCE_STOP[w] and not vocab.STOP[w] then
      if not count[w] then
        order[#order + 1] = w
        first[w] = #order
        count[w] = 0
      end
      count[w] = count[w] + 1
    end
  end
  -- Repetition first; long words are likelier terms, "-ed"/"-ly" words likelier not.
  local score = {}
  for _, w in ipairs(order) do
    score[w] = 2 * count[w] + (#w >= 8 and 1 or 0) - ((w:match("ed$") or w:match("ly$")) and 2 or 0)
  end
  table.sort(order, function(a, b)
    if score[a] ~= score[b] then return score[a] > score[b] end
    return first[a] < first[b]
  end)
  for i = #order, (limit or 12) + 1, -1 do order[i] = nil end
  return order
end

local SOURCE_LABELS = { source = true, document = true, paper = true,
  passage = true, excerpt = true, chunk = true, article = true, text = true }

-- A line that announces the source ("SOURCE:", "## Paper text", "<document>", "Source
-- text: ..."): returns what follows the colon ("" when the source starts on the next
-- line), or nil for any other line.
local function source_label(line)
  local bare = line:lower():gsub("^[%s#*_>%-=]+", ""):gsub("[%s*_#=%-]+$", "")
  local head, rest = bare:match("^<?(%a+)>?%s*(.*)$")
  if not head or not SOURCE_LABELS[head] then return nil end
  if rest == "" or rest == ":" or rest == "text" or rest == "text:" then return "" end
  -- "Source (notes/raft.txt): ...", "Paper text: ...": a short label, then a colon.
  local label = rest:match("^([^:]*):")
  if label and #label <= 60 then return line:match(":%s*(.*)$") end
  return nil
end

-- The source text inside a prompt: what follows a source label (up to a closing tag or
-- an END line), else the longest paragraph, which in a prompt is almost always the source.
function M.source(s)
  local lines = M.lines(s)
  for i, line in ipairs(lines) do
    local rest = source_label(line)
    if rest then
      local out = { rest }
      for j = i + 1, #lines do
        if lines[j]:match("^%s*</") or lines[j]:match("^%s*END") then break end
        out[#out + 1] = lines[j]
      end
      local body = M.trim(table.concat(out, "\n"))
      if #body > 0 then return body end
    end
  end
  local best = ""
  for para in (s .. "\n\n"):gmatch("(.-)\n%s*\n") do
    if #para > #best then best = para end
  end
  return best ~= "" and best or s
end

-- ---- JSON writing ------------------------------------------------------------------

local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(ch)
    if ch == '"' or ch == "\\" then return "\\" .. ch end
    if ch == "\n" then return "\\n" end
    if ch == "\t" then return "\\t" end
    return format("\\u%04x", byte(ch))
  end) .. '"'
end
M.quote = quote

-- Keys come out in this order (the order a person would write them), unknown keys last
-- in alphabetical order.
local RANK = {}
for i, k in ipairs({ "context", "question", "reference_answer", "question_type", "rubric",
  "id", "criterion", "weight", "met", "why", "verdicts", "pass", "reason" }) do
  RANK[k] = i
end

local function key_before(a, b)
  local ra, rb = RANK[a] or 1000, RANK[b] or 1000
  if ra ~= rb then return ra < rb end
  return a < b
end

local encode

local function encode_table(v, levels, indent)
  local pretty = levels > 0
  local nl = pretty and ("\n" .. string.rep("  ", indent + 1)) or ""
  local close = pretty and ("\n" .. string.rep("  ", indent)) or ""
  local parts = {}
  if #v > 0 or next(v) == nil then
    if #v == 0 then return "[]" end
    for i = 1, #v do parts[i] = encode(v[i], levels - 1, indent + 1) end
    return "[" .. nl .. table.concat(parts, pretty and ("," .. nl) or ", ") .. close .. "]"
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, key_before)
  for i, k in ipairs(keys) do
    parts[i] = quote(k) .. ": " .. encode(v[k], levels - 1, indent + 1)
  end
  return "{" .. nl .. table.concat(parts, pretty and ("," .. nl) or ", ") .. close .. "}"
end

-- encode(v [, levels]) -> JSON text; the outer `levels` of nesting put one item per line
-- (2 gives an object whose lists list one compact object per line).
function encode(v, levels, indent)
  levels, indent = levels or 0, indent or 0
  local t = type(v)
  if t == "string" then return quote(v) end
  if t == "boolean" then return v and "true" or "false" end
  if t == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    return format("%.4g", v)
  end
  if t == "table" then return encode_table(v, levels, indent) end
  return "null"
end
M.encode = encode

-- ---- Reading JSON out of prose -----------------------------------------------------

-- End of the balanced JSON object or array starting at i, honouring strings; nil when
-- the text ends first.
local function balanced_end(s, i)
  local depth, in_str, esc = 0, false, false
  for j = i, #s do
    local c = byte(s, j)
    if in_str then
      if esc then esc = false
      elseif c == 92 then esc = true
      elseif c == 34 then in_str = false end
    elseif c == 34 then in_str = true
    elseif c == 123 or c == 91 then depth = depth + 1
    elseif c == 125 or c == 93 then
      depth = depth - 1
      if depth == 0 then return j end
    end
  end
  return nil
end

-- Every JSON object embedded in s that decodes, in order. json is the runtime's module.
function M.objects(s, json)
  local out, i = {}, 1
  while true do
    local start = s:find("{", i, true)
    if not start then return out end
    local stop = balanced_end(s, start)
    if not stop then return out end
    local ok, v = pcall(json.decode, s:sub(start, stop))
    if ok and type(v) == "table" then
      out[#out + 1] = v
      i = stop + 1
    else
      i = start + 1
    end
  end
end

return M

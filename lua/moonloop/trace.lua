-- trace.jsonl, the opt-in request trace (`moonloop run --trace`): one JSON line per LLM
-- request with its role, model, prompt, response, latency, tokens, cache hit and recipe
-- version. Each line is flushed as it is written, so a crash loses at most that line.
-- Keys never reach it: only what llm.chat's spec and result hold is written (no headers),
-- and every string is scrubbed of the values of environment variables named *_API_KEY or
-- *_TOKEN and of anything shaped like a bearer token or an "sk-" key.
--   local t = trace.open(dir); t:record{...}; t:close()
local M = {}
M.__index = M

local MIN_SECRET = 8      -- shorter values ("1", "yes") would scrub ordinary text
local MAX_DEPTH = 16
local REDACTED = "[redacted]"

-- Values of the secret-looking environment variables, longest first (so a key that
-- contains another is replaced whole). Linux exposes the whole environment here; elsewhere
-- the well-known names are asked for one by one.
local function env_secrets()
  local values = {}
  local function consider(name, value)
    local upper = name:upper()
    if (upper:match("_API_KEY$") or upper:match("_TOKEN$")) and #value >= MIN_SECRET then
      values[#values + 1] = value
    end
  end
  local f = io.open("/proc/self/environ", "rb")
  if f then
    local all = f:read("a") or ""
    f:close()
    for entry in all:gmatch("[^%z]+") do
      local name, value = entry:match("^([^=]+)=(.*)$")
      if name then consider(name, value) end
    end
  else
    for _, name in ipairs({ "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY",
        "GOOGLE_API_KEY", "MISTRAL_API_KEY", "GROQ_API_KEY", "TOGETHER_API_KEY",
        "OPENROUTER_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "GITHUB_TOKEN" }) do
      local v = os.getenv(name)
      if v then consider(name, v) end
    end
  end
  table.sort(values, function(a, b) return #a > #b end)
  return values
end

local function replace_plain(s, needle, with)
  local out, i = {}, 1
  while true do
    local a, b = s:find(needle, i, true)
    if not a then break end
    out[#out + 1] = s:sub(i, a - 1)
    out[#out + 1] = with
    i = b + 1
  end
  if i == 1 then return s end
  out[#out + 1] = s:sub(i)
  return table.concat(out)
end

local valid_utf8 = require "moonloop.utf8clean"

-- A scrubber for one trace: env values, then token shapes.
local function scrubber(secrets)
  return function(s)
    for _, v in ipairs(secrets) do
      if s:find(v, 1, true) then s = replace_plain(s, v, REDACTED) end
    end
    s = s:gsub("([Bb][Ee][Aa][Rr][Ee][Rr]%s+)([%w%-%._~%+/]+=*)", function(pre, tok)
      if #tok >= 16 then return pre .. REDACTED end
    end)
    s = s:gsub("%f[%w]sk%-[%w%-_]+", function(tok)
      if #tok >= 20 then return REDACTED end
    end)
    s = s:gsub("([Xx]%-[Aa][Pp][Ii]%-[Kk][Ee][Yy]%s*[:=]%s*)([^%s,;\"']+)", "%1" .. REDACTED)
    s = s:gsub("([Aa]uthorization%s*[:=]%s*)([^\r\n,;\"']+)", "%1" .. REDACTED)
    return valid_utf8(s)
  end
end
M._scrubber = scrubber

local SECRET_FIELD = { headers = true, authorization = true, api_key = true, apikey = true,
  ["x-api-key"] = true, api_key_env = true }

-- A JSON-safe copy: strings scrubbed, numbers finite, no functions or userdata, no
-- header-like fields, lists kept as lists.
local function clean(v, scrub, depth)
  local t = type(v)
  if t == "string" then return scrub(v) end
  if t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return nil end
    return v
  end
  if t == "boolean" then return v end
  if t ~= "table" or depth > MAX_DEPTH then return nil end
  local n = #v
  if n > 0 then
    local out = {}
    for i = 1, n do
      local c = clean(v[i], scrub, depth + 1)
      out[#out + 1] = c == nil and json.null or c
    end
    return json.array(out)
  end
  local out = {}
  for k, val in pairs(v) do
    if type(k) == "string" and not SECRET_FIELD[k:lower()] then
      local c = clean(val, scrub, depth + 1)
      if c ~= nil then out[scrub(k)] = c end
    end
  end
  return out
end

-- Open (or append to) dir/trace.jsonl.
function M.open(dir)
  local path = fs.join(dir, "trace.jsonl")
  local f, err = io.open(path, "ab")
  if not f then error(("trace: cannot open %s: %s"):format(path, tostring(err)), 2) end
  return setmetatable({ f = f, path = path, seq = 0, scrub = scrubber(env_secrets()) }, M)
end

-- Append one request. r: role, model, provider, item, round, sample, messages (the prompt,
-- a list of {role=, content=}), system, response (text), latency_ms, usage =
-- {input=, output=}, cost_usd, cache_hit, replayed, recipe_version, error, finish_reason.
-- Anything else in r is ignored.
function M:record(r)
  if not self.f then error("trace: record after close", 2) end
  self.seq = self.seq + 1
  local s = self.scrub
  local messages = r.messages
  if type(messages) == "string" then messages = { { role = "user", content = messages } } end
  local err = r.error
  if err ~= nil and type(err) ~= "string" then err = tostring(err) end
  local line = {
    seq = self.seq, ts = os.date("!%Y-%m-%dT%H:%M:%SZ"),
    role = clean(r.role, s, 0), model = clean(r.model, s, 0), provider = clean(r.provider, s, 0),
    item = clean(r.item, s, 0), round = clean(r.round, s, 0), sample = clean(r.sample, s, 0),
    recipe_version = clean(r.recipe_version, s, 0),
    system = clean(r.system, s, 0),
    messages = clean(messages, s, 0) or json.array({}),
    response = clean(r.response, s, 0),
    finish_reason = clean(r.finish_reason, s, 0),
    latency_ms = clean(r.latency_ms, s, 0),
    usage = type(r.usage) == "table" and { input = clean(r.usage.input, s, 0),
      output = clean(r.usage.output, s, 0) } or nil,
    cost_usd = clean(r.cost_usd, s, 0),
    cache_hit = r.cache_hit and true or false,
    replayed = r.replayed and true or false,
    error = err and s(err) or nil,
  }
  local ok, text = pcall(json.encode, line, { sort_keys = true })
  if not ok then -- never lose the request entirely: keep what says which one it was
    text = json.encode({ seq = self.seq, ts = line.ts, role = line.role, model = line.model,
      item = line.item, round = line.round, error = "trace: could not encode this request: " .. s(tostring(text)) },
      { sort_keys = true })
  end
  self.f:write(text, "\n")
  self.f:flush()
end

function M:close()
  if self.f then
    self.f:close()
    self.f = nil
  end
end
M.__close = M.close
M.__gc = M.close

return M

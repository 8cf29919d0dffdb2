-- The default answer function of `moonloop mock-server`: deterministic replies derived
-- from a hash of the request's messages, so the same request always gets the same bytes
-- and tests can compare runs. The simulator replaces it through `--sim` (short for
-- `--answer lua/moonloop/sim/answer.lua`).
--
-- Contract (what any file given to `--answer` must follow):
--   The file returns a table with one field:
--     chat(req, index, meta) -> { text = STRING,            -- required: the message
--                                 finish_reason = STRING,   -- optional, default "stop"
--                                 usage = { input = N, output = M } }  -- optional
--   `req` is the request body (decoded JSON) as a Lua table; JSON null is `json.null`.
--   `index` is the 0-based choice index; chat is called once per choice when n > 1.
--   `meta` holds what the request says outside its body: `meta.role` is the value of
--   the X-Moonloop-Role header (llm.chat sends tags.role there), nil without one.
--   Functions written for the older chat(req, index) keep working.
--   Returning a plain string is short for { text = STRING }. Missing usage fields are
--   estimated as bytes / 4. Raising an error answers HTTP 500 with the error message in
--   the OpenAI error body; the server keeps running.
--   The function runs on the server's only thread: keep it fast and never block. The
--   globals are the standard library plus `json`; `require` finds moonloop.* modules.

local M = {}

local fnv = require "moonloop.fnv"

local byte, format = string.byte, string.format
local FNV_OFFSET, hash, avalanche = fnv.OFFSET, fnv.feed, fnv.avalanche

-- The text of a message: a string, or the text parts of a content array.
local function content_text(msg)
  local c = type(msg) == "table" and msg.content
  if type(c) == "string" then
    return c
  end
  if type(c) == "table" then
    local parts = {}
    for _, part in ipairs(c) do
      if type(part) == "table" and type(part.text) == "string" then
        parts[#parts + 1] = part.text
      end
    end
    return table.concat(parts, "\n")
  end
  return ""
end

local VOCAB = {
  "alpha", "bridge", "cache", "delta", "engine", "fiber", "gradient", "harbor",
  "index", "kernel", "lattice", "matrix", "network", "orbit", "packet", "quorum",
  "router", "signal", "tensor", "vector", "window", "yield", "zenith", "buffer",
  "cursor", "socket", "thread", "token", "sample", "stream", "budget", "replay",
}

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(ch)
    if ch == '"' or ch == "\\" then
      return "\\" .. ch
    end
    return format("\\u%04x", byte(ch))
  end) .. '"'
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    if type(k) == "string" then
      keys[#keys + 1] = k
    end
  end
  table.sort(keys)
  return keys
end

-- A JSON value that fits a (subset of) JSON Schema, chosen deterministically from h.
local function from_schema(schema, h, text, depth)
  if type(schema) ~= "table" or depth > 8 then
    return json_string(text)
  end
  local variants = schema.anyOf or schema.oneOf
  if type(variants) == "table" and variants[1] then
    return from_schema(variants[1], h, text, depth + 1)
  end
  if type(schema.enum) == "table" and schema.enum[1] ~= nil then
    local v = schema.enum[1]
    return type(v) == "string" and json_string(v) or tostring(v)
  end
  local ty = schema.type
  if type(ty) == "table" then
    ty = ty[1]
  end
  if ty == "object" or (ty == nil and type(schema.properties) == "table") then
    local out = {}
    for _, k in ipairs(sorted_keys(schema.properties or {})) do
      local sub = avalanche(hash(h, k))
      local value = from_schema(schema.properties[k], sub, text, depth + 1)
      out[#out + 1] = json_string(k) .. ":" .. value
    end
    return "{" .. table.concat(out, ",") .. "}"
  elseif ty == "array" then
    return "[" .. from_schema(schema.items, avalanche(h + 1), text, depth + 1) .. "]"
  elseif ty == "integer" then
    return tostring(h % 100)
  elseif ty == "number" then
    return format("%.1f", (h % 1000) / 10)
  elseif ty == "boolean" then
    return h % 2 == 0 and "true" or "false"
  elseif ty == "null" then
    return "null"
  end
  return json_string(text)
end

function M.chat(req, index)
  local messages = type(req.messages) == "table" and req.messages or {}
  local h, prompt_bytes, last_user = FNV_OFFSET, 0, ""
  for _, msg in ipairs(messages) do
    local role = type(msg) == "table" and type(msg.role) == "string" and msg.role or ""
    local text = content_text(msg)
    h = hash(hash(h, role .. "\0"), text .. "\0")
    prompt_bytes = prompt_bytes + #text + 4
    if role == "user" then
      last_user = text
    end
  end
  h = avalanche(hash(h, tostring(index)))
  local id = format("%08x", h & 0xffffffff)

  local words = {}
  for w in last_user:gmatch("[^%s%p%c]+") do
    words[#words + 1] = w
    if #words == 6 then
      break
    end
  end
  local filler, x = {}, h
  for i = 1, 10 + (h >> 40) % 10 do
    x = avalanche(x + i)
    filler[i] = VOCAB[x % #VOCAB + 1]
  end
  local text = format("Mock answer %s: you asked about \"%s\". %s.", id,
    table.concat(words, " "), table.concat(filler, " "))

  local rf = type(req.response_format) == "table" and req.response_format or {}
  if rf.type == "json_schema" then
    local schema = type(rf.json_schema) == "table" and rf.json_schema.schema or nil
    if schema then
      text = from_schema(schema, h, text, 0)
    else
      text = format('{"answer":%s,"id":"%s","choice":%d}', json_string(text), id, index)
    end
  elseif rf.type == "json_object" then
    text = format('{"answer":%s,"id":"%s","choice":%d}', json_string(text), id, index)
  end

  return M.finish(text, req, prompt_bytes)
end

-- The end of every simulated answer (shared with the simulator): cut the text at
-- max_tokens as a real model would, even mid-JSON, and estimate usage at 4 bytes a token.
function M.finish(text, req, prompt_bytes)
  local finish = "stop"
  local limit = math.tointeger(req.max_completion_tokens) or math.tointeger(req.max_tokens)
  if limit and limit >= 0 and (#text + 3) // 4 > limit then
    text = text:sub(1, limit * 4)
    finish = "length"
  end
  return {
    text = text,
    finish_reason = finish,
    usage = { input = (prompt_bytes + 3) // 4, output = (#text + 3) // 4 },
  }
end

return M

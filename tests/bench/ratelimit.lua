-- Benchmark client for tests/bench/ratelimit.sh: N chat requests queued at once through
-- task.map against a provider whose config declares rpm and tpm, so that only moonloop's
-- own limiter stands between the queue and the server's 429s. Prints one RATELIMIT line.
--
--   moonloop run --config CONFIG.lua tests/bench/ratelimit.lua [N] [LIMIT]
--
-- N (default 500) requests, at most LIMIT (default 500) running at once. Each prompt is
-- about 300 tokens (1,200 bytes) and unique, so the server's log can tell a request's
-- retries apart from other requests.

local n = math.tointeger(tonumber(arg[1] or "500"))
local limit = math.tointeger(tonumber(arg[2] or "500"))
if n == nil or n < 1 or limit == nil or limit < 1 then
  error("usage: moonloop run ratelimit.lua [N] [LIMIT]  (N >= 1 requests, LIMIT >= 1)", 0)
end

-- 1,185 bytes of filler: with the 15-byte header each prompt is 1,200 bytes, which the
-- mock counts as 300 tokens (bytes / 4), so a request costs 500 tokens with max_tokens.
local FILLER = ("The quick brown fox jumps over the lazy dog while the loop keeps count. ")
  :rep(20):sub(1, 1185)

local function prompt_for(i)
  return ("Request %05d. %s"):format(i, FILLER)
end

local ok, errors, first = 0, {}, {}

local items = {}
for i = 1, n do items[i] = i end

task.map(items, function(i)
  local good, res = pcall(llm.chat, { model = "m", prompt = prompt_for(i), max_tokens = 200 })
  if good then
    ok = ok + 1
    return
  end
  local kind = type(res) == "table" and res.kind or "lua"
  errors[kind] = (errors[kind] or 0) + 1
  if first[kind] == nil then
    first[kind] = type(res) == "table" and res.message or tostring(res)
  end
end, { limit = limit })

local kinds = {}
for kind, count in pairs(errors) do kinds[#kinds + 1] = ("%s:%d"):format(kind, count) end
table.sort(kinds)
for _, kind in ipairs(kinds) do
  local name = kind:match("^[^:]+")
  io.stderr:write(("ratelimit.lua: first %s error: %s\n"):format(name, first[name]))
end
print(("RATELIMIT ok=%d failed=%d errors=%s"):format(ok, n - ok,
  #kinds > 0 and table.concat(kinds, ",") or "none"))

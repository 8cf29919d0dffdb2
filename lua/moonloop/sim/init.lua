-- The simulator: a deterministic model of the data-creation roles (challenger, checker,
-- weak and strong solvers, judge, analyst). chat(body, index, role) answers one choice of
-- an OpenAI-style request; the in-process provider and the mock server both call it, so
-- the same request gives the same bytes offline and over HTTP.
--
-- Every random draw comes from a generator seeded by a hash of (role, every message's
-- role and text, body.seed, choice index); max_tokens and response_format only shape the
-- text, and nothing is kept between calls. A repair turn (the last user message says "not valid" or "Return only
-- the JSON" after an assistant answer) is answered as the original request would be, with
-- this turn's seed (same seed, same content), and is well-formed 98% of the time.
-- Unknown roles get the mock server's default answer. The rules of the world are in
-- world.lua; roles: challenger.lua, checker.lua, solver.lua, judge.lua, analyst.lua.
local rng = require "moonloop.sim.rng"
local text = require "moonloop.sim.text"
local default = require "moonloop.mock.answer"
local code = require "moonloop.sim.code"

local M = {}

M.REPAIR_RATE = 0.02

local solver = require "moonloop.sim.solver"
M.ROLES = {
  challenger = require "moonloop.sim.challenger",
  checker = require "moonloop.sim.checker",
  weak = solver,
  strong = solver,
  judge = require "moonloop.sim.judge",
  analyst = require "moonloop.sim.analyst",
}
local ALIASES = { quality = "checker", verifier = "checker", quality_verifier = "checker",
  qv = "checker", weak_solver = "weak", strong_solver = "strong" }

local function seed_of(body)
  local s = body.seed
  if type(s) ~= "number" then return "" end
  return tostring(math.tointeger(s) or s)
end

local function request_hash(salt, role, msgs, seed, index)
  local parts = { salt, role, seed, index }
  for _, m in ipairs(msgs) do
    parts[#parts + 1] = m.role
    parts[#parts + 1] = m.text
  end
  return rng.hash(table.unpack(parts))
end

-- The messages of the request a repair turn refers to, or nil when this is no repair.
local function repaired(msgs)
  local last = msgs[#msgs]
  if not last or last.role ~= "user" then return nil end
  local low = last.text:lower()
  if not (low:find("not valid", 1, true) or low:find("return only the json", 1, true)) then
    return nil
  end
  for i = #msgs - 1, 1, -1 do
    if msgs[i].role == "assistant" then return table.move(msgs, 1, i - 1, 1, {}) end
  end
  return nil
end

-- request(body, index, role) -> the table a role module answers from.
function M.request(body, index, role)
  local msgs = text.messages(body)
  local base = repaired(msgs)
  local seed = seed_of(body)
  local rf = type(body.response_format) == "table" and body.response_format.type
  return {
    role = role,
    body = body,
    index = index,
    msgs = base or msgs,
    repair = base ~= nil,
    repair_rate = M.REPAIR_RATE,
    json_mode = rf == "json_object" or rf == "json_schema",
    rng = rng.new(request_hash("answer", role, base or msgs, seed, index)),
    flaw_rng = rng.new(request_hash("flaw", role, msgs, seed, index)),
  }
end

local function prompt_bytes(body)
  local n = 0
  for _, m in ipairs(text.messages(body)) do n = n + #m.text + 4 end
  return n
end

-- chat(body, index, role) -> { text =, finish_reason =, usage = { input =, output = } }.
-- body is the request body as a table, index the 0-based choice, role a string or nil.
function M.chat(body, index, role)
  role = ALIASES[role] or role
  local handler = M.ROLES[role]
  if not handler then return default.chat(body, index) end
  local req = M.request(body, index, role)
  local out
  local user = text.last_user(req.msgs) or ""
  if role == "challenger" and code.is_code_prompt(user) then
    out = code.challenge(req, user) -- a task whose checker runs code (code.lua)
  elseif (role == "weak" or role == "strong") and code.read(user) then
    out = code.solve(req, user, role == "strong")
  else
    out = handler.answer(req)
  end
  return default.finish(out, body, prompt_bytes(body))
end

return M

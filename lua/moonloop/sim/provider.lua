-- kind = "sim": answers llm.chat in-process from the simulator (moonloop.sim), the same
-- world `moonloop mock-server --sim` serves over HTTP. The role comes from tags.role.
-- Returns one {text=, finish_reason=, usage=} per choice; C shapes them like an HTTP answer.
local sim = require "moonloop.sim"

local M = {}

function M.chat(body, info)
  local role = type(info.tags) == "table" and info.tags.role or nil
  local choices = {}
  for i = 1, info.n do
    local a = sim.chat(body, i - 1, type(role) == "string" and role or nil)
    if info.stream then
      -- Deliver the text in a few pieces, as a real stream would.
      for piece in a.text:gmatch("%S+%s*") do info.stream(piece, i) end
    end
    choices[i] = a
  end
  return choices
end

return M

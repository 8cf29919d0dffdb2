-- kind = "sim": answers llm.chat in-process from the same answer function the mock server
-- uses, so a script runs offline with no network. Returns one {text=, finish_reason=,
-- usage=} per choice; the C side shapes them like an HTTP answer.
local answer = require "moonloop.mock.answer"

local M = {}

function M.chat(body, info)
  local choices = {}
  for i = 1, info.n do
    local a = answer.chat(body, i - 1)
    if type(a) == "string" then a = { text = a } end
    if info.stream then
      -- Deliver the text in a few pieces, as a real stream would.
      for piece in a.text:gmatch("%S+%s*") do info.stream(piece, i) end
    end
    choices[i] = { text = a.text, finish_reason = a.finish_reason or "stop", usage = a.usage }
  end
  return choices
end

return M

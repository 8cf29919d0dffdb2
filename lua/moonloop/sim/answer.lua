-- Answer file for `moonloop mock-server --sim` (the same as `--answer` on this file):
-- serves the simulator over HTTP. The role arrives as the X-Moonloop-Role header, which
-- the server passes in meta.role; without one the mock's default answer is used.
local sim = require "moonloop.sim"

local M = {}

function M.chat(req, index, meta)
  local role = type(meta) == "table" and meta.role or nil
  return sim.chat(req, index, role)
end

return M

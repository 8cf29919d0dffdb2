-- The Lua side of `moonloop report DIR [--text]` (src/cli/cmd_report.c runs this file):
-- write DIR/report.html and print a short summary, or print the full text summary only.
local report = require "moonloop.report"

local dir, mode = ...
local ok, why = report.check(dir)
if not ok then error(task.error("usage", "report: " .. why), 0) end
if mode == "--text" then
  io.stdout:write(report.text(dir), "\n")
else
  local path, summary = report.write(dir)
  io.stdout:write(summary, "\n", "report: ", path, "\n")
end
io.stdout:flush()

-- `moonloop recipe log|show|diff|revert RUN_DIR [VERSION...]`: the recipe lineage of a run.
-- Run as a trusted script by src/cli/cmd_recipe.c; arguments arrive as `...`.
local versions = require "moonloop.versions"

local USAGE = [[
Usage: moonloop recipe log RUN_DIR            every version: parent, status, scores, why
       moonloop recipe show RUN_DIR [V]        the exact text of version V (default: current)
       moonloop recipe diff RUN_DIR A [B]      unified diff A -> B (one version: parent -> A)
       moonloop recipe revert RUN_DIR V        make V's exact bytes the current recipe, as a
                                               new version; a resumed run uses it from its
                                               next iteration]]

local function usage_error(msg)
  error(task.error("usage", "moonloop recipe: " .. msg .. "\n" .. USAGE), 0)
end

local function version_arg(s)
  local v = s and tonumber((s:gsub("^v0*", "")))
  if not v then usage_error(("%q is not a version number (like 3 or v0003)"):format(tostring(s))) end
  return math.floor(v)
end

local function fmt(x, p) return x and (p or "%.2f"):format(x) or "-" end

local cmd, dir, a, b = ...
if cmd == nil or cmd == "-h" or cmd == "--help" or cmd == "help" then
  io.stdout:write(USAGE, "\n")
  return
end
if not dir then usage_error("expects a run directory") end
if not fs.exists(dir) then usage_error(("%s does not exist"):format(dir)) end

local function main()
if cmd == "log" then
  local list = versions.list(dir)
  local out = { ("%-6s %-6s %-9s %-9s %-5s %-5s %-15s %s"):format("ver", "parent", "status",
    "pass", "evals", "gap", "strategy", "rationale / reason") }
  local kept, rejected = 0, 0
  for _, v in ipairs(list) do
    local s = v.scores or {}
    if v.status == "kept" then kept = kept + 1 elseif v.status == "rejected" then rejected = rejected + 1 end
    local why = v.status == "rejected" and v.reason or v.rationale or ""
    why = tostring(why):gsub("%s+", " ")
    out[#out + 1] = ("%s%-5s %-6s %-9s %-9s %-5s %-5s %-15s %s"):format(v.current and "*" or " ",
      "v" .. v.version, v.parent and ("v" .. v.parent) or "-", v.status, fmt(s.pass_rate),
      s.evaluations or "-", fmt(s.gap), v.strategy or "-", why:sub(1, 160))
  end
  out[#out + 1] = ("%d version(s): %d kept, %d rejected; * marks the current one"):format(#list, kept, rejected)
  io.stdout:write(table.concat(out, "\n"), "\n")
elseif cmd == "show" then
  io.stdout:write(versions.source(dir, a and version_arg(a) or nil))
elseif cmd == "diff" then
  if not a then usage_error("diff expects one or two versions") end
  local d, note = versions.diff(dir, version_arg(a), b and version_arg(b) or nil)
  if note then io.stderr:write("moonloop recipe: ", note, "\n") end
  io.stdout:write(d or "")
elseif cmd == "revert" then
  if not a then usage_error("revert expects the version to restore") end
  local v = version_arg(a)
  local n = versions.revert(dir, v)
  io.stdout:write(("v%d is now the current recipe: the exact text of v%d (%s); `moonloop run --resume %s` uses it from its next iteration\n"):format(
    n, v, fs.join(dir, "recipes", ("v%04d.lua"):format(n)), dir))
else
  usage_error(("unknown subcommand %q"):format(cmd))
end
end

-- A missing version or a directory that is not a run is the user's mistake: exit 2.
local ok, err = pcall(main)
if not ok then
  if type(err) == "table" then error(err, 0) end
  error(task.error("usage", "moonloop recipe: " .. tostring(err)), 0)
end

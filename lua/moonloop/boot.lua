-- The first task of `moonloop run`: run the script; if it returns a recipe (asi.recipe),
-- drive it with the runner, using the command-line options in package.loaded["moonloop.cli"].
local asi = require "moonloop.asi"

local M = {}

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function M.main(chunk, path, ...)
  local cli0 = package.loaded["moonloop.cli"] or {}
  if cli0.budget_usd or cli0.max_requests then
    llm.budget{ usd = tonumber(cli0.budget_usd), requests = tonumber(cli0.max_requests) }
  end
  asi.loading = path -- so a bad recipe is reported at its own file and line
  local results = table.pack(chunk(...))
  asi.loading = nil
  local recipe = results[1]
  if not asi.is(recipe) then return table.unpack(results, 1, results.n) end
  local cli = package.loaded["moonloop.cli"] or {}
  for _, kv in ipairs(cli.set or {}) do
    local k, v = kv:match("^([%w_.]+)=(.*)$")
    if not k then error(("--set %s: expected key=value"):format(kv), 0) end
    asi.override(recipe, k, v)
  end
  local dir = path:match("^(.*)/[^/]*$") or "."
  if cli.mode == "check" then
    if not require("moonloop.check").run(recipe, path, read_file(path), dir) then
      error(task.error("recipe", "moonloop check: " .. path .. " has problems (see above)"), 0)
    end
    return
  end
  local runner = require "moonloop.runner"
  local summary = runner.run(recipe, {
    out = cli.out, resume = cli.resume, json = cli.json, quiet = cli.quiet,
    iterations = tonumber(cli.iterations), seed = tonumber(cli.seed),
    concurrency = tonumber(cli.concurrency), progress_ms = tonumber(cli.progress_ms),
    recipe_dir = dir, source = read_file(path),
  })
  return summary
end

return M

-- The first task of `moonloop run`: run the script (in the sandbox unless --trusted); if it
-- returns a recipe (asi.recipe), drive it with the runner, using the command-line options in
-- package.loaded["moonloop.cli"]. A recipe always runs in the sandbox.
local asi = require "moonloop.asi"
local sandbox = require "moonloop.sandbox"

local M = {}

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("a")
  f:close()
  return s
end

-- chunk: the compiled file when the script runs trusted (--trusted), nil to run it in the
-- sandbox.
function M.main(chunk, path, ...)
  local cli0 = package.loaded["moonloop.cli"] or {}
  if cli0.budget_usd or cli0.max_requests then
    llm.budget{ usd = tonumber(cli0.budget_usd), requests = tonumber(cli0.max_requests) }
  end
  local results
  if chunk then
    asi.loading = path -- so a bad recipe is reported at its own file and line
    results = table.pack(chunk(...))
    asi.loading = nil
    if asi.is(results[1]) then
      -- --trusted is for scripts that need files or subprocesses, never for recipes: the
      -- recipe the runner drives is the one loaded in the sandbox.
      log.debug("%s returns a recipe: loading it again in the sandbox", path)
      results = table.pack((sandbox.load_recipe(read_file(path) or "", path)))
    end
  else
    local source, err = read_file(path)
    if not source then error(task.error("usage", "cannot open " .. tostring(err)), 0) end
    results = table.pack(sandbox.run_script(source, path, table.pack(...)))
  end
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

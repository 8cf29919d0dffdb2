-- Two recipes on the same sources, scored by the same solvers and judge, side by side in
-- the paper's table (weak, strong, gap, rounds per example). A trusted capability that
-- recipes/compare.lua (which runs in the sandbox) calls: each recipe is loaded in its own
-- sandbox and run into runs/compare-<UTC time>-<recipe>.
local M = {}

local function fmt(v) return type(v) == "number" and ("%.3f"):format(v) or "-" end

local function run_all(paths, seed)
  local runner = require "moonloop.runner"
  local sandbox = require "moonloop.sandbox"
  local stamp = os.date("!%Y%m%dT%H%M%SZ")
  local rows = {}
  for i, path in ipairs(paths) do
    local source = fs.read(path)
    local recipe = sandbox.load_recipe(source, path)
    io.stderr:write(("compare: running %s (%s)\n"):format(recipe.name, path))
    rows[i] = runner.run(recipe, {
      out = fs.join("runs", ("compare-%s-%s"):format(stamp, recipe.name)),
      recipe_dir = fs.dirname(path), source = source, quiet = true, seed = seed,
    })
    rows[i].name = recipe.name
  end
  return rows
end

-- run(path_a, path_b [, {seed = n}]): runs both recipes (seed: opts.seed, else
-- $MOONLOOP_SEED, else 1), prints the table and returns its rows.
function M.run(a, b, opts)
  for _, p in ipairs({ a, b }) do
    if type(p) ~= "string" or not p:match("%.lua$") then
      error("compare.run: expects two recipe files (*.lua)", 2)
    end
  end
  local seed = tonumber(opts and opts.seed) or tonumber(os.getenv("MOONLOOP_SEED") or "1")
  -- The runs are the runtime's own work: a task of their own, outside the caller's sandbox
  -- and its limits.
  local rows = task.spawn(run_all, { a, b }, seed):join()
  print("")
  print("| method | examples | weak | strong | gap | rounds/example |")
  print("|---|---:|---:|---:|---:|---:|")
  for _, r in ipairs(rows) do
    print(("| %s | %d | %s | %s | %s | %s |"):format(r.name, r.accepted, fmt(r.weak_mean),
      fmt(r.strong_mean), fmt(r.gap), type(r.rounds_per_example) == "number"
        and ("%.2f"):format(r.rounds_per_example) or "-"))
  end
  for _, r in ipairs(rows) do print(("%s: %s"):format(r.name, r.dir)) end
  return rows
end

return M

-- Compare Agentic Self-Instruct with CoT Self-Instruct on the same sources, scored by the
-- same solvers and judge, and print the paper's table (weak, strong, gap, rounds).
--   moonloop run --offline recipes/compare.lua            (or: make compare)
--   moonloop run recipes/compare.lua A.lua B.lua          (any two recipes)
local runner = require "moonloop.runner"

local here = arg[0]:match("^(.*)/[^/]*$") or "."
local paths = { arg[1] or fs.join(here, "agentic_self_instruct.lua"),
                arg[2] or fs.join(here, "cot_self_instruct.lua") }
local stamp = os.date("!%Y%m%dT%H%M%SZ")
local rows = {}
for i, path in ipairs(paths) do
  local recipe = dofile(path)
  io.stderr:write(("compare: running %s (%s)\n"):format(recipe.name, path))
  rows[i] = runner.run(recipe, {
    out = fs.join("runs", ("compare-%s-%s"):format(stamp, recipe.name)),
    recipe_dir = fs.dirname(path), source = fs.read(path), quiet = true,
    seed = tonumber(os.getenv("MOONLOOP_SEED") or "1"),
  })
  rows[i].name = recipe.name
end

local function f(v) return type(v) == "number" and ("%.3f"):format(v) or "-" end
print("")
print("| method | examples | weak | strong | gap | rounds/example |")
print("|---|---:|---:|---:|---:|---:|")
for _, r in ipairs(rows) do
  print(("| %s | %d | %s | %s | %s | %s |"):format(r.name, r.accepted, f(r.weak_mean),
    f(r.strong_mean), f(r.gap), type(r.rounds_per_example) == "number"
      and ("%.2f"):format(r.rounds_per_example) or "-"))
end
for _, r in ipairs(rows) do print(("%s: %s"):format(r.name, r.dir)) end

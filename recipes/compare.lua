-- Compare Agentic Self-Instruct with CoT Self-Instruct on the same sources, scored by the
-- same solvers and judge, and print the paper's table (weak, strong, gap, rounds).
--   moonloop run --offline recipes/compare.lua            (or: make compare)
--   moonloop run recipes/compare.lua A.lua B.lua          (any two recipes)
-- The runs themselves are the runtime's work (moonloop.compare); MOONLOOP_SEED sets the seed.
local compare = require "moonloop.compare"
local here = arg[0]:match("^(.*)/[^/]*$") or "."
compare.run(arg[1] or (here .. "/agentic_self_instruct.lua"),
  arg[2] or (here .. "/cot_self_instruct.lua"))

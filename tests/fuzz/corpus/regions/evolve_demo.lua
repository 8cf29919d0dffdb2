-- Self-edits on display: Agentic Self-Instruct starting from a deliberately plain
-- challenger prompt, with evolution between iterations. On the offline simulator the
-- analyst proposes helpful, harmful and malformed edits; only children that beat their
-- parent on held-out items are kept, so the validation pass rate climbs over generations.
--
--   moonloop run recipes/evolve_demo.lua --out runs/evolve-demo
--   moonloop recipe log runs/evolve-demo        (every version, kept or rejected, and why)
local asi = require "moonloop.asi"

return asi.recipe {
  name = "evolve_demo",
  description = "Agentic Self-Instruct from a plain prompt, improved by evolution",
  sources = "data/*.txt",

  -- @editable challenger_prompt
  challenger_prompt = [[
Write one question about the note and its main result.
Give a reference answer and a rubric.]],
  -- @end

  roles = { challenger = "strong", checker = "judge", weak = "weak", strong = "strong",
            judge = "judge", analyst = "strong" },
  samples = { weak = 3, strong = 3 },
  max_rounds = 4,
  batch = 6,
  chunk = { size = 800, overlap = 80 },
  concurrency = 16,
  evolve = { strategy = "search_replace", validation = 24, rounds = 4, candidates = 2,
             generations = 2, temperature = 0.1 },
}

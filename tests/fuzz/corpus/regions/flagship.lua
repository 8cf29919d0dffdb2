-- Agentic Self-Instruct (the flagship): for each chunk of a source document, write a hard,
-- grounded question with a reference answer and a weighted rubric; keep it only when the
-- weak model fails it and the strong model answers it. After each failed round the
-- challenger sees every earlier attempt, sorted into too easy / failed on strong / failed
-- the quality check, and tries a new angle.
--
--   moonloop run recipes/agentic_self_instruct.lua            (offline simulator by default)
--   moonloop run recipes/agentic_self_instruct.lua --set max_rounds=4 --concurrency 32
local asi = require "moonloop.asi"

return asi.recipe {
  name = "agentic_self_instruct",
  description = "Hard research questions grounded in technical notes, weak-fail / strong-pass",
  sources = "data/*.txt",

  -- What the challenger is asked for. This is the text a self-edit may rewrite.
  -- @editable challenger_prompt
  challenger_prompt = [[
You are writing one test question for experienced engineers, grounded in the source below.

Ask about a specific mechanism or a design trade-off that is particular to this source,
not about general textbook knowledge. The question must need multi-step reasoning: the
solver has to combine at least two facts from the context and derive a consequence that
the source does not state outright.

The context must not reveal the answer: give the background a solver needs, never the
conclusion. The reference answer must be complete, and every rubric criterion must be
checkable from an answer alone.]],
  -- @end

  roles = { challenger = "strong", checker = "judge", weak = "weak", strong = "strong", judge = "judge" },
  samples = { weak = 3, strong = 3 },
  max_rounds = 8,
  concurrency = 16,

  -- The paper's deployed thresholds: weak fails, strong succeeds (but not trivially).
  accept = {
    weak_mean_max = 0.65, weak_best_max = 0.75, weak_no_zero = true,
    strong_mean_min = 0.60, strong_mean_max = 0.95, gap_min = 0.20,
  },
}

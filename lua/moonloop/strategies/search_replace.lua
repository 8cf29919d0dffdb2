-- Revision strategy "search_replace" (the default): the analyst reads the brief and answers
-- with SEARCH/REPLACE blocks addressed to editable regions.
--
-- Contract of a strategy module (bundled or a user's file):
--   name     a short name, stored with every version it produced
--   format   "search_replace" | "rewrite" | "source": how the runtime reads propose's answer
--   propose(ctx) -> { answer = text, rationale = text } or { source = text, rationale = text }
--     ctx.parent   {version=, source=, score={pass_rate=, gap=, evaluations=}}
--     ctx.stats    the last batch: {items=, accepted=, rounds=, categories={...}}
--     ctx.failures categorised failures with examples: {category=, reason=, question=}
--     ctx.history  earlier edits: {version=, parent=, status=, reason=, rationale=}
--     ctx.chat     ask a model by role: ctx.chat{role="analyst", messages=...}
--     ctx.error    on a repair attempt, why the previous answer was refused
--     ctx.attempt  1 for the first try, then 2, 3, ...
--     ctx.rng      a seeded random source: rng() -> [0, 1)
--   The runtime applies the answer, validates the result (regions, frozen text, sandbox
--   load, self-test) and tries it on held-out items; propose never writes files.
local common = require "moonloop.strategies.common"

local S = { name = "search_replace", format = "search_replace" }

-- The instructions are themselves an editable region: a meta-level run may revise them.
-- @editable analyst_instructions
S.instructions = [[
Propose ONE focused improvement to the editable regions that should raise the validation
pass rate: questions the weak solver fails and the strong solver answers. Start with one
paragraph of rationale that names the failure pattern you address. Then give the edit as
SEARCH/REPLACE blocks, each addressed to a region by name:

<<<<<<< SEARCH region_name
exact lines copied from the region
=======
the replacement lines
>>>>>>> REPLACE

The SEARCH text must occur exactly once in that region. Do not touch anything outside the
regions; thresholds, solver and judge prompts are frozen.]]
-- @end

S.system = "You analyse a synthetic-data pipeline's failures and edit its recipe."

S.propose = common.proposer(S)

return S

-- Evol-Instruct: start from a plain question and make it harder round by round (add a
-- constraint, deepen the reasoning, combine facts), keeping the first version that the
-- weak model fails and the strong model answers.
local asi = require "moonloop.asi"

return asi.recipe {
  name = "evol_instruct",
  description = "Evolve a question in depth until it separates the weak and strong models",
  sources = "data/*.txt",

  -- @editable challenger_prompt
  challenger_prompt = [[
Write one question about the source below, with a reference answer and a rubric.]],
  -- @end

  -- How each new round evolves the last attempt instead of starting over.
  -- @editable refine_prompt
  refine_prompt = [[
The earlier versions below did not work. Evolve the most recent one instead of starting
over: keep its topic but make it harder in depth. Add a constraint, ask the solver to derive
a consequence in multi-step reasoning, or make it hinge on a specific mechanism of the
source. The context must not reveal the answer.]],
  -- @end

  max_rounds = 5,
}

-- CoT Self-Instruct (baseline): one question per chunk, written after the model thinks the
-- source through, with no feedback loop. Scored by the same solvers and judge as the
-- flagship so the two can be compared; every question that passes the quality check is
-- kept, with its scores.
local asi = require "moonloop.asi"

return asi.recipe {
  name = "cot_self_instruct",
  description = "Single-pass baseline: reason first, then write one question",
  sources = "data/*.txt",

  challenger_prompt = [[
Read the source below. Think step by step about what it teaches before writing the
question: list its main ideas to yourself, then write one challenging question about it,
with a reference answer and a rubric.]],

  max_rounds = 1,       -- single pass: no feedback loop
  gate_strong = false,  -- measure every question with both solvers
  accept_all = true,    -- keep every question that passes the check, with its scores
}

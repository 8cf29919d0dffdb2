-- Self-Instruct (baseline): one question per chunk, straight from the source, no feedback.
-- Scored by the same solvers and judge as the flagship.
local asi = require "moonloop.asi"

return asi.recipe {
  name = "self_instruct",
  description = "Single-pass baseline: one question per chunk",
  sources = "data/*.txt",

  challenger_prompt = [[
Write one question about the source below, with a reference answer and a rubric.]],

  max_rounds = 1,
  gate_strong = false,
  accept_all = true,
}

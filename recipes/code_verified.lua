-- Code, verified by running it: the challenger writes a small programming task grounded in
-- the source, a reference solution and test cases. The checker runs the reference against
-- the tests in a subprocess (moonloop's own Lua, time and memory limits, no network); each
-- solver answer is scored by the share of tests its code passes. A task is kept when the
-- weak model's code fails and the strong model's passes.
local asi = require "moonloop.asi"
local verify = require "moonloop.verify"

return asi.recipe {
  name = "code_verified",
  description = "Lua programming tasks whose answers are checked by running tests",
  sources = "data/*.txt",

  -- @editable challenger_prompt
  challenger_prompt = [[
CODE TASK. Write one small programming task inspired by the source below: a Lua 5.4
function named solve with numeric arguments and a numeric result. Put the task in
"question", what a programmer needs to know in "context", a correct implementation in a
```lua fence in "reference_answer", and test cases in "tests": a list of
{"args": [...], "expected": value}. Include edge cases in the tests (zero, equal bounds,
empty ranges), because that is where wrong solutions show. The rubric can be a single
criterion: the function passes every test.]],
  -- @end

  check_example = verify.reference_passes, -- run the reference against its own tests
  verify = verify.tests_passed,            -- score = share of tests a solver's code passes
  max_rounds = 4,
  concurrency = 4,
  accept = { weak_no_zero = false, strong_no_zero = false, strong_mean_max = 1.01 },
}

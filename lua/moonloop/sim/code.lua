-- Code tasks in the simulated world, for recipes whose checker runs code (code_verified).
-- A challenger prompt that says "CODE TASK" gets a small Lua function task with a
-- reference solution and test cases; solvers answer with code that is either correct or
-- one of the task's typical bugs. Harder tasks (the prompt asks for edge cases, or earlier
-- tasks were too easy) come with edge-case tests, which is where the bugs show.
-- The question text carries the task id and whether edge cases are tested, so solvers
-- read everything back from the question alone.
local world = require "moonloop.sim.world"

local M = {}

M.MARK = "CODE TASK"

-- Each task: the statement, a correct body, buggy bodies, a reference in Lua (to compute
-- expected values here), ordinary and edge-case inputs.
local TASKS = {
  {
    id = "sum_multiples", params = "n, k",
    statement = "returns the sum of all multiples of k from k up to n inclusive (0 when n < k)",
    correct = "local s = 0\n  for i = k, n, k do s = s + i end\n  return s",
    bugs = { "local s = 0\n  for i = k, n - 1, k do s = s + i end\n  return s",
             "local s = 0\n  for i = 0, n, k do s = s + i end\n  return s + k" },
    ref = function(n, k) local s = 0 for i = k, n, k do s = s + i end return s end,
    inputs = { { 10, 3 }, { 20, 5 }, { 7, 2 } }, edges = { { 9, 3 }, { 2, 5 }, { 5, 5 } },
  },
  {
    id = "count_bits", params = "n",
    statement = "returns the number of 1 bits in the binary form of the non-negative integer n",
    correct = "local c = 0\n  while n > 0 do c = c + (n & 1); n = n >> 1 end\n  return c",
    bugs = { "local c = 0\n  while n > 1 do c = c + (n & 1); n = n >> 1 end\n  return c",
             "local c = 0\n  while n > 0 do c = c + 1; n = n >> 1 end\n  return c" },
    ref = function(n) local c = 0 while n > 0 do c = c + (n & 1); n = n >> 1 end return c end,
    inputs = { { 6 }, { 10 }, { 12 } }, edges = { { 0 }, { 1 }, { 255 } },
  },
  {
    id = "digit_sum", params = "n",
    statement = "returns the sum of the decimal digits of the non-negative integer n",
    correct = "local s = 0\n  repeat s = s + n % 10; n = n // 10 until n == 0\n  return s",
    bugs = { "local s = 0\n  while n >= 10 do s = s + n % 10; n = n // 10 end\n  return s",
             "local s = 0\n  while n > 0 do s = s + n // 10; n = n // 10 end\n  return s" },
    ref = function(n) local s = 0 repeat s = s + n % 10; n = n // 10 until n == 0 return s end,
    inputs = { { 123 }, { 4071 }, { 99 } }, edges = { { 0 }, { 7 }, { 1000 } },
  },
  {
    id = "overlap", params = "a1, a2, b1, b2",
    statement = "returns how many integers lie in both closed ranges [a1, a2] and [b1, b2] (0 if they do not meet)",
    correct = "local lo, hi = math.max(a1, b1), math.min(a2, b2)\n  return hi >= lo and hi - lo + 1 or 0",
    bugs = { "local lo, hi = math.max(a1, b1), math.min(a2, b2)\n  return hi > lo and hi - lo or 0",
             "local lo, hi = math.max(a1, b1), math.min(a2, b2)\n  return hi - lo + 1" },
    ref = function(a1, a2, b1, b2)
      local lo, hi = math.max(a1, b1), math.min(a2, b2)
      return hi >= lo and hi - lo + 1 or 0
    end,
    inputs = { { 1, 10, 5, 20 }, { 3, 8, 4, 6 } }, edges = { { 1, 5, 5, 9 }, { 1, 3, 7, 9 }, { 4, 4, 4, 4 } },
  },
  {
    id = "power_mod", params = "b, e, m",
    statement = "returns b raised to the non-negative power e, modulo m (m > 1), by repeated squaring",
    correct = "local r = 1\n  b = b % m\n  while e > 0 do\n    if e & 1 == 1 then r = r * b % m end\n    b = b * b % m; e = e >> 1\n  end\n  return r",
    bugs = { "local r = 1\n  while e > 1 do\n    if e & 1 == 1 then r = r * b % m end\n    b = b * b % m; e = e >> 1\n  end\n  return r",
             "local r = b % m\n  while e > 1 do r = r * b % m; e = e - 1 end\n  return r" },
    ref = function(b, e, m)
      local r = 1 b = b % m
      while e > 0 do if e & 1 == 1 then r = r * b % m end b = b * b % m; e = e >> 1 end
      return r
    end,
    inputs = { { 3, 5, 7 }, { 2, 10, 1000 }, { 5, 3, 13 } }, edges = { { 7, 0, 5 }, { 10, 1, 3 }, { 4, 13, 497 } },
  },
}

local BY_ID = {}
for _, t in ipairs(TASKS) do BY_ID[t.id] = t end

local function body_of(t, code)
  return ("function solve(%s)\n  %s\nend"):format(t.params, code)
end

local function tests_for(t, edge)
  local list = {}
  local function add(args)
    list[#list + 1] = { args = json.array({ table.unpack(args) }), expected = t.ref(table.unpack(args)) }
  end
  for _, a in ipairs(t.inputs) do add(a) end
  if edge then for _, a in ipairs(t.edges) do add(a) end end
  return json.array(list)
end

-- The task a question is about, and whether its tests include edge cases.
function M.read(question)
  local id = question:match("%[task:([%w_]+)%]")
  return id and BY_ID[id], question:find("edge cases", 1, true) ~= nil
end

function M.is_code_prompt(s)
  return s:find(M.MARK, 1, true) ~= nil
end

-- The challenger: pick a task; ask for edge cases when the prompt does, or after enough
-- "too easy" failures (the challenger learns what makes the weak solver fail).
function M.challenge(req, prompt)
  local g = req.rng
  local hist = world.history(prompt)
  local too_easy = hist and hist.too_easy or 0
  local edge = prompt:lower():find("edge case", 1, true) ~= nil or g:chance(math.min(0.9, 0.25 * too_easy))
  local t = TASKS[g:int(1, #TASKS)]
  local question = ("%s [task:%s]: write a Lua function solve(%s) that %s.%s"):format(M.MARK, t.id,
    t.params, t.statement, edge and " Your code must handle the edge cases as well." or "")
  local example = {
    context = "Write plain Lua 5.4. Define a global function named solve; do not read input or print.",
    question = question,
    reference_answer = "```lua\n" .. body_of(t, t.correct) .. "\n```",
    question_type = "code",
    rubric = json.array({ { criterion = "the function passes every test", weight = 10 } }),
    tests = tests_for(t, edge),
  }
  if g:chance(0.05) then example.tests = nil end -- a share comes back without tests
  return "```json\n" .. json.encode(example, { sort_keys = true }) .. "\n```"
end

-- A solver: correct code with the chance its skill gives, else one of the typical bugs.
function M.solve(req, question, strong)
  local g = req.rng
  local t, edge = M.read(question)
  if not t then return "I could not tell which function is wanted." end
  local d = edge and 0.7 or 0.3
  local p = strong and (0.97 - 0.25 * d) or (0.95 - 1.0 * d)
  local code = g:chance(p) and t.correct or t.bugs[g:int(1, #t.bugs)]
  return "Here is the function:\n\n```lua\n" .. body_of(t, code) .. "\n```\n"
end

return M

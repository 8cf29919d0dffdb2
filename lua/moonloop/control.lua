-- Run control: how many items may be in flight, pause, resume and single-iteration steps.
-- The runner asks before it starts each item (acquire) and at each iteration boundary
-- (boundary); the REPL turns the knobs. A change takes effect at the next item: work in
-- flight always finishes.
local M = {}
M.__index = M

function M.new(opts)
  opts = opts or {}
  local k = opts.concurrency or 16
  assert(type(k) == "number" and k >= 1, "control.new: concurrency must be a positive number")
  return setmetatable({
    concurrency = math.floor(k), in_flight = 0, paused = opts.paused or false,
    step_until = nil, -- when stepping: pause again once this iteration is done
    waiting = {},     -- tasks parked in acquire/boundary
    recent = {},      -- the last failed rounds and errors, newest last
    keep = 50,
    info = nil, done = false,
  }, M)
end

local function wake_all(self)
  local w = self.waiting
  self.waiting = {}
  for _, t in ipairs(w) do task.unpark(t) end
end

local function wait(self)
  self.waiting[#self.waiting + 1] = task.current()
  local me = task.current()
  -- A cancelled waiter must not stay on the list (an unpark would be wasted on it).
  local guard <close> = setmetatable({}, { __close = function(_, err)
    if err == nil then return end
    for i, t in ipairs(self.waiting) do
      if t == me then table.remove(self.waiting, i) break end
    end
  end })
  task.park()
end

-- Before an item starts: wait while paused or while the in-flight cap is reached.
function M:acquire()
  while self.paused or self.in_flight >= self.concurrency do wait(self) end
  self.in_flight = self.in_flight + 1
end

function M:release()
  self.in_flight = self.in_flight - 1
  wake_all(self)
end

-- Between iterations (before `iteration` starts): a step that has run its iteration
-- pauses here, and a paused run waits.
function M:boundary(iteration)
  if self.step_until and iteration > self.step_until then
    self.step_until = nil
    self.paused = true
  end
  if self.info then self.info.iteration_next = iteration end
  while self.paused do wait(self) end
end

function M:pause() self.paused = true end

function M:resume()
  self.paused = false
  self.step_until = nil
  wake_all(self)
end

-- Run one more iteration, then pause again. When paused mid-iteration, the rest of that
-- iteration is the step.
function M:step()
  local cur = self.info and self.info.state and self.info.state.iteration or 0
  local finishing = self.info and self.info.state and self.info.state.iteration_running
  self.step_until = finishing and cur or (self.info and self.info.iteration_next or cur + 1)
  self.paused = false
  wake_all(self)
end

function M:set_concurrency(k)
  assert(type(k) == "number" and k >= 1, "concurrency must be a positive number")
  self.concurrency = math.floor(k)
  wake_all(self)
end

-- The runner attaches its live state: {dir=, recipe=, state=, version=function}.
function M:attach(info) self.info = info end

function M:detach(summary)
  self.done = true
  self.summary = summary
  wake_all(self)
end

-- A failed round or a failed item, for the REPL's :failures.
function M:note_failure(rec)
  local r = self.recent
  r[#r + 1] = rec
  if #r > self.keep then table.remove(r, 1) end
end

function M:failures(n)
  n = n or 10
  local out = {}
  for i = math.max(1, #self.recent - n + 1), #self.recent do out[#out + 1] = self.recent[i] end
  return out
end

function M:status()
  local s = self.info and self.info.state or {}
  return {
    paused = self.paused, stepping = self.step_until ~= nil, finished = self.done,
    iteration = s.iteration, iterations = s.iterations, done = s.done, total = s.total,
    accepted = s.accepted, rounds = s.rounds, in_flight_items = self.in_flight,
    concurrency = self.concurrency, dir = self.info and self.info.dir,
    version = self.info and self.info.version and self.info.version() or nil,
    t0 = s.t0,
  }
end

return M

-- The Lua half of the `task` module: gather, map, timeout and semaphores, built on the C
-- primitives spawn / join / cancel / sleep / park / unpark. Extends the global `task`.
local task = task

local function join_all(handles)
  for _, h in ipairs(handles) do
    pcall(h.join, h)
  end
end

-- map(list, fn, {limit = K}): fn(item, index) for every item, at most K at once.
-- Results come back in input order. The first error cancels the work still running and
-- is raised once every worker has stopped.
function task.map(list, fn, opts)
  assert(type(list) == "table", "task.map: the first argument must be a list")
  assert(type(fn) == "function", "task.map: the second argument must be a function")
  local n = #list
  local limit = opts and opts.limit or math.max(n, 1)
  assert(type(limit) == "number" and limit >= 1, "task.map: limit must be a positive number")
  local results, next_index, failure = {}, 0, nil
  local workers = {}

  local function worker()
    while failure == nil do
      next_index = next_index + 1
      local i = next_index
      if i > n then return end
      local ok, res = pcall(fn, list[i], i)
      if not ok then
        if failure == nil then
          failure = res
          local me = task.current()
          for _, w in ipairs(workers) do
            if w ~= me then w:cancel() end
          end
        end
        return
      end
      results[i] = res
    end
  end

  for w = 1, math.min(limit, n) do
    workers[w] = task.spawn(worker)
  end
  join_all(workers)
  if failure ~= nil then error(failure, 0) end
  return results
end

-- gather(fns): run every function concurrently; their first results, in order.
function task.gather(fns)
  assert(type(fns) == "table", "task.gather: expects a list of functions")
  return task.map(fns, function(f) return f() end)
end

-- timeout(ms, fn, ...): fn's results, or a {kind = "timeout"} error after ms; the work
-- is cancelled when the time is up.
function task.timeout(ms, fn, ...)
  assert(type(ms) == "number" and ms >= 0, "task.timeout: ms must be a non-negative number")
  assert(type(fn) == "function", "task.timeout: the second argument must be a function")
  local h = task.spawn(fn, ...)
  local timed_out = false
  local watchdog = task.spawn(function()
    task.sleep(ms)
    timed_out = true
    h:cancel()
  end)
  local r = table.pack(pcall(h.join, h))
  watchdog:cancel()
  if r[1] then return table.unpack(r, 2, r.n) end
  if timed_out then
    error(task.error("timeout", ("task.timeout: the work did not finish within %g ms"):format(ms)), 2)
  end
  error(r[2], 0)
end

-- semaphore(n): acquire() waits for one of n permits, release() returns it,
-- with(fn, ...) holds a permit while fn runs (released on error and cancellation too).
local Semaphore = {}
Semaphore.__index = Semaphore

function task.semaphore(n)
  assert(type(n) == "number" and n >= 0, "task.semaphore: n must be a non-negative number")
  return setmetatable({ permits = n, waiters = {}, head = 1, tail = 0 }, Semaphore)
end

function Semaphore:acquire()
  if self.permits > 0 and self.head > self.tail then
    self.permits = self.permits - 1
    return true
  end
  local waiter = { task = task.current(), granted = false }
  self.tail = self.tail + 1
  self.waiters[self.tail] = waiter
  -- If the wait ends by error (cancellation), give back a permit handed over meanwhile.
  local guard <close> = setmetatable({}, { __close = function(_, err)
    if err == nil then return end
    if waiter.granted then self:release() else waiter.dead = true end
  end })
  while not waiter.granted do
    task.park()
  end
  return true
end

function Semaphore:release()
  while self.head <= self.tail do
    local w = self.waiters[self.head]
    self.waiters[self.head] = nil
    self.head = self.head + 1
    if not w.dead then
      w.granted = true
      task.unpark(w.task)
      return
    end
  end
  self.permits = self.permits + 1
end

function Semaphore:with(fn, ...)
  self:acquire()
  -- A to-be-closed guard, not pcall: it also runs when the task is cancelled.
  local held <close> = setmetatable({}, { __close = function() self:release() end })
  return fn(...)
end

function Semaphore:available()
  return self.permits
end

return task

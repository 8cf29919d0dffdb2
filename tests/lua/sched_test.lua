-- Scheduler semantics: spawn/join, errors, cancellation, timeouts, gather/map,
-- semaphores, park/unpark and user coroutines around runtime waits.
local t = dofile("lib/t.lua")

t.test("join returns every value the task returned", function()
  local h = task.spawn(function(a, b) return a + b, "x", nil, 4 end, 2, 3)
  local a, b, c, d = h:join()
  t.eq(a, 5); t.eq(b, "x"); t.eq(c, nil); t.eq(d, 4)
  t.eq(h:status(), "done")
end)

t.test("join of a finished task returns at once, and again on a second join", function()
  local h = task.spawn(function() return 7 end)
  task.sleep(1)
  t.eq(h:status(), "done")
  t.eq(h:join(), 7)
  t.eq(h:join(), 7)
end)

t.test("a structured error keeps its kind and fields through join", function()
  local h = task.spawn(function() error(task.error("parse", "bad answer", { status = 418 })) end)
  local err = t.raises(function() h:join() end, "parse")
  t.eq(err.status, 418)
  t.eq(tostring(err), "bad answer")
  t.eq(h:status(), "failed")
end)

t.test("a string error names the file and line where it was raised", function()
  local h = task.spawn(function() error("boom") end)
  local err = t.raises(function() h:join() end)
  t.ok(tostring(err):find("sched_test.lua:%d+: boom"), tostring(err))
end)

t.test("many joiners all receive the result", function()
  local h = task.spawn(function() task.sleep(5); return "r" end)
  local got = task.gather({
    function() return h:join() end, function() return h:join() end, function() return h:join() end,
  })
  t.eq(#got, 3); t.eq(got[1], "r"); t.eq(got[3], "r")
end)

t.test("a task cannot join itself", function()
  t.raises(function() task.current():join() end, "cannot join itself")
end)

t.test("cancel wakes a sleeping task with a cancelled error", function()
  local reached = false
  local h = task.spawn(function() task.sleep(10000); reached = true end)
  task.sleep(1)
  t.eq(h:status(), "waiting")
  t.eq(h:cancel(), true)
  local err = t.raises(function() h:join() end, "cancelled")
  t.eq(err.kind, "cancelled")
  t.eq(reached, false)
  t.eq(h:status(), "cancelled")
  t.eq(h:cancel(), false, "cancelling a finished task")
end)

t.test("pcall cannot swallow a cancellation", function()
  local after = false
  local h = task.spawn(function()
    local ok = pcall(task.sleep, 10000)
    after = true -- must never run
    return ok
  end)
  task.sleep(1)
  h:cancel()
  t.raises(function() h:join() end, "cancelled")
  t.eq(after, false)
end)

t.test("xpcall cannot swallow a cancellation either", function()
  local handler_ran, after = false, false
  local h = task.spawn(function()
    xpcall(task.sleep, function(e) handler_ran = true; return e end, 10000)
    after = true
  end)
  task.sleep(1)
  h:cancel()
  t.raises(function() h:join() end, "cancelled")
  t.eq(after, false)
end)

t.test("cancelling a task cancels the tasks it spawned", function()
  local child
  local parent = task.spawn(function()
    child = task.spawn(function() task.sleep(10000) end)
    task.sleep(10000)
  end)
  task.sleep(1)
  parent:cancel()
  t.raises(function() child:join() end, "cancelled")
  t.eq(child:status(), "cancelled")
end)

t.test("a task cancelled before it ever ran does not run", function()
  local ran = false
  local h = task.spawn(function() ran = true end)
  h:cancel()
  t.raises(function() h:join() end, "cancelled")
  t.eq(ran, false)
end)

t.test("to-be-closed variables run when a waiting task is cancelled", function()
  local closed = false
  local h = task.spawn(function()
    local guard <close> = setmetatable({}, { __close = function() closed = true end })
    task.sleep(10000)
  end)
  task.sleep(1)
  h:cancel()
  pcall(h.join, h)
  t.eq(closed, true)
end)

t.test("timeout returns the results of work that finishes in time", function()
  local a, b = task.timeout(1000, function(x) task.sleep(1); return x, "ok" end, 42)
  t.eq(a, 42); t.eq(b, "ok")
end)

t.test("timeout raises kind timeout and cancels the slow work", function()
  local finished = false
  local err = t.raises(function()
    task.timeout(20, function() task.sleep(5000); finished = true end)
  end, "timeout")
  t.eq(err.kind, "timeout")
  task.sleep(30)
  t.eq(finished, false)
end)

t.test("timeout passes an error of the work through unchanged", function()
  t.raises(function() task.timeout(1000, function() error(task.error("http", "x")) end) end, "http")
end)

t.test("gather returns results in order, whatever order they finish in", function()
  local r = task.gather({
    function() task.sleep(15); return "a" end,
    function() task.sleep(1); return "b" end,
    function() return "c" end,
  })
  t.eq(r[1], "a"); t.eq(r[2], "b"); t.eq(r[3], "c")
end)

t.test("gather raises the first error and cancels the rest", function()
  local slow_finished = false
  t.raises(function()
    task.gather({
      function() task.sleep(5000); slow_finished = true end,
      function() task.sleep(1); error("first failure") end,
    })
  end, "first failure")
  t.eq(slow_finished, false)
end)

t.test("map keeps at most limit calls running and returns ordered results", function()
  local running, peak = 0, 0
  local items = {}
  for i = 1, 40 do items[i] = i end
  local out = task.map(items, function(x, i)
    running = running + 1
    if running > peak then peak = running end
    task.sleep(1)
    running = running - 1
    return x * 10 + (i == x and 0 or 1000)
  end, { limit = 7 })
  t.eq(peak, 7, "peak concurrency")
  t.eq(#out, 40)
  for i = 1, 40 do t.eq(out[i], i * 10) end
end)

t.test("map of an empty list is an empty list", function()
  t.eq(#task.map({}, function() error("never") end), 0)
end)

t.test("semaphore admits n holders at a time", function()
  local sem = task.semaphore(2)
  local inside, peak = 0, 0
  task.map({ 1, 2, 3, 4, 5, 6 }, function()
    sem:with(function()
      inside = inside + 1
      peak = math.max(peak, inside)
      task.sleep(2)
      inside = inside - 1
    end)
  end)
  t.eq(peak, 2)
  t.eq(sem:available(), 2)
end)

t.test("a waiter cancelled on a semaphore does not leak a permit", function()
  local sem = task.semaphore(1)
  sem:acquire()
  local w = task.spawn(function() sem:acquire() end)
  task.sleep(1)
  w:cancel()
  pcall(w.join, w)
  sem:release()
  t.eq(sem:available(), 1)
  local h = task.spawn(function() sem:acquire(); return "got it" end)
  t.eq(h:join(), "got it")
end)

t.test("semaphore:with releases the permit when the body fails", function()
  local sem = task.semaphore(1)
  t.raises(function() sem:with(function() error("inside") end) end, "inside")
  t.eq(sem:available(), 1)
end)

t.test("unpark before park is remembered", function()
  local parked = task.spawn(function()
    task.unpark(task.current())
    task.park() -- returns at once thanks to the permit
    return "returned"
  end)
  t.eq(task.timeout(1000, function() return parked:join() end), "returned")
end)

t.test("park without a permit waits until unpark", function()
  local h = task.spawn(function() task.park(); return "woken" end)
  task.sleep(5)
  t.eq(h:status(), "waiting")
  task.unpark(h)
  t.eq(h:join(), "woken")
end)

t.test("coroutine.wrap around a runtime wait works", function()
  local gen = coroutine.wrap(function()
    for i = 1, 3 do
      task.sleep(1)
      coroutine.yield(i)
    end
    return "end"
  end)
  t.eq(gen(), 1); t.eq(gen(), 2); t.eq(gen(), 3); t.eq(gen(), "end")
end)

t.test("coroutine.resume around a runtime wait returns the yielded values", function()
  local co = coroutine.create(function(a)
    task.sleep(1)
    local b = coroutine.yield(a + 1)
    task.sleep(1)
    return b * 2
  end)
  local ok, v = coroutine.resume(co, 1)
  t.eq(ok, true); t.eq(v, 2)
  ok, v = coroutine.resume(co, 21)
  t.eq(ok, true); t.eq(v, 42)
  t.eq(coroutine.status(co), "dead")
  local ok2, msg = coroutine.resume(co)
  t.eq(ok2, false); t.eq(msg, "cannot resume dead coroutine")
end)

t.test("nested coroutines two deep can wait", function()
  local outer = coroutine.wrap(function()
    local inner = coroutine.wrap(function()
      task.sleep(1)
      coroutine.yield("inner")
    end)
    coroutine.yield(inner())
  end)
  t.eq(outer(), "inner")
end)

t.test("an error inside a wrapped coroutine propagates with its location", function()
  local f = coroutine.wrap(function() task.sleep(1); error("deep") end)
  t.raises(f, "sched_test.lua:%d+: deep")
end)

t.test("a cancelled task waiting inside a user coroutine is cancelled for real", function()
  local after = false
  local h = task.spawn(function()
    local co = coroutine.create(function() task.sleep(10000) end)
    coroutine.resume(co) -- resume would return false, err; the cancellation must escape
    after = true
  end)
  task.sleep(1)
  h:cancel()
  t.raises(function() h:join() end, "cancelled")
  t.eq(after, false)
end)

t.test("waiting inside a sort comparator is refused with a clear message", function()
  t.raises(function()
    table.sort({ 3, 1, 2 }, function(a, b) task.sleep(1); return a < b end)
  end, "cannot wait here")
end)

t.test("the coroutine of a task cannot be resumed by user code", function()
  local co
  local h = task.spawn(function() co = coroutine.running(); task.sleep(5) end)
  task.sleep(1)
  t.raises(function() coroutine.resume(co) end, "coroutine of a task")
  h:join()
end)

t.test("a plain coroutine.yield in a task lets other tasks run", function()
  local order = {}
  local a = task.spawn(function() for i = 1, 3 do order[#order + 1] = "a" .. i; coroutine.yield() end end)
  local b = task.spawn(function() for i = 1, 3 do order[#order + 1] = "b" .. i; coroutine.yield() end end)
  a:join(); b:join()
  t.eq(table.concat(order, " "), "a1 b1 a2 b2 a3 b3")
end)

t.test("ten thousand tasks sleeping at once all finish", function()
  local done = 0
  local hs = {}
  for i = 1, 10000 do hs[i] = task.spawn(function() task.sleep(i % 7); done = done + 1 end) end
  for _, h in ipairs(hs) do h:join() end
  t.eq(done, 10000)
end)

t.test("tostring of a handle says what it waits on", function()
  local h = task.spawn(function() task.sleep(10000) end)
  task.sleep(1)
  t.ok(tostring(h):find("waiting on task.sleep"), tostring(h))
  h:cancel()
end)

t.done()

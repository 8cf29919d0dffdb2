-- Run control: the in-flight cap, pause and resume, single-iteration steps, and a real
-- recipe run on the simulator driven through them.
package.path = os.getenv("MOONLOOP_LUA_DIR") .. "/?.lua;" .. package.path
local t = dofile("lib/t.lua")
local control = require "moonloop.control"

local root = os.getenv("MOONLOOP_LUA_DIR") .. "/.."

-- Wait (up to 5 s) until cond() holds; the timing of wake-ups is not what is tested.
local function eventually(cond)
  for _ = 1, 5000 do
    if cond() then return true end
    task.sleep(1)
  end
  return cond()
end

t.test("acquire never lets more than the cap run, and a raised cap admits waiters", function()
  local ctl = control.new{ concurrency = 2 }
  local running, peak, finished, hold = 0, 0, 0, true
  local hs = {}
  for i = 1, 6 do
    hs[i] = task.spawn(function()
      ctl:acquire()
      running = running + 1
      peak = math.max(peak, running)
      while hold do task.sleep(1) end
      running = running - 1
      finished = finished + 1
      ctl:release()
    end)
  end
  t.ok(eventually(function() return running == 2 end), "2 in flight under a cap of 2")
  task.sleep(20)
  t.eq(running, 2, "still 2 in flight under a cap of 2")
  ctl:set_concurrency(4)
  t.ok(eventually(function() return running == 4 end), "4 in flight after raising the cap to 4")
  hold = false
  for _, h in ipairs(hs) do h:join() end
  t.eq(peak, 4, "peak")
  t.eq(finished, 6, "finished")
end)

t.test("a paused control admits nothing until resumed", function()
  local ctl = control.new{ concurrency = 8, paused = true }
  local started = false
  local h = task.spawn(function() ctl:acquire(); started = true; ctl:release() end)
  task.sleep(20)
  t.eq(started, false, "started while paused")
  ctl:resume()
  h:join()
  t.eq(started, true, "started after resume")
end)

t.test("a cancelled waiter leaves the queue", function()
  local ctl = control.new{ concurrency = 1 }
  ctl:acquire()
  local h = task.spawn(function() ctl:acquire() end)
  t.ok(eventually(function() return #ctl.waiting == 1 end), "waiting")
  h:cancel()
  pcall(h.join, h)
  t.eq(#ctl.waiting, 0, "waiting after cancel")
  ctl:release()
end)

t.test("failures keep the newest ones, bounded", function()
  local ctl = control.new{}
  for i = 1, 60 do ctl:note_failure{ item = i, category = "too_easy" } end
  local f = ctl:failures(3)
  t.eq(#f, 3); t.eq(f[3].item, 60); t.eq(f[1].item, 58)
  t.eq(#ctl:failures(100), 50, "kept at most 50")
end)

t.test("a recipe run pauses at an iteration boundary, steps one iteration, resumes", function()
  local asi = require "moonloop.asi"
  local runner = require "moonloop.runner"
  local recipe = dofile(root .. "/recipes/agentic_self_instruct.lua")
  asi.override(recipe, "batch", "3")
  asi.override(recipe, "max_items", "9")
  asi.override(recipe, "max_rounds", "2")
  local dir = os.tmpname()
  os.remove(dir)
  local ctl = control.new{ concurrency = 4, paused = true }
  local summary
  local h = task.spawn(function()
    summary = runner.run(recipe, { out = dir, quiet = true, control = ctl,
      recipe_dir = root .. "/recipes" })
  end)
  task.sleep(50)
  t.eq(ctl:status().done, 0, "items done while paused from the start")
  t.eq(ctl:status().paused, true)
  ctl:step()
  while not ctl:status().paused or ctl:status().in_flight_items > 0 do task.sleep(5) end
  local s = ctl:status()
  t.eq(s.done, 3, "items done after one step")
  t.eq(s.iteration, 1, "iteration after one step")
  ctl:set_concurrency(1)
  ctl:resume()
  h:join()
  t.eq(summary.items, 9, "items in the run")
  t.eq(ctl:status().done, 9, "items done at the end")
  t.eq(ctl:status().finished, true, "finished")
  proc.run{ argv = { "rm", "-rf", dir } }
end)

t.done()

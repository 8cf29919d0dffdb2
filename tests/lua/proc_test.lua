-- proc.run: exit codes, pipes, timeouts, cancellation, the minimal environment, limits, and
-- the arguments a script can get wrong. Commands are POSIX tools (sh, cat, sleep, env).
local t = dofile("lib/t.lua")

-- Whether a pid is gone (or only a zombie waiting for init to reap it).
local function dead(pid)
  local ok, stat = pcall(fs.read, "/proc/" .. pid .. "/stat")
  return not ok or stat:match("^%d+ %b() (%a)") == "Z"
end

t.test("run returns the exit code, stdout and stderr", function()
  local r = proc.run{ argv = { "sh", "-c", "echo out; echo err >&2; exit 3" } }
  t.eq(r.code, 3)
  t.eq(r.signal, nil)
  t.eq(r.stdout, "out\n")
  t.eq(r.stderr, "err\n")
  t.eq(r.timed_out, false)
  t.eq(r.truncated, false)
  t.ok(type(r.duration_ms) == "number" and r.duration_ms >= 0, tostring(r.duration_ms))
end)

t.test("stdin is written to the command and then closed", function()
  local r = proc.run{ argv = { "cat" }, stdin = "line 1\nline 2\n" }
  t.eq(r.stdout, "line 1\nline 2\n")
  t.eq(proc.run{ argv = { "cat" }, stdin = "" }.stdout, "")
end)

t.test("without stdin the command reads end-of-file at once", function()
  local r = proc.run{ argv = { "cat" }, timeout_ms = 5000 }
  t.eq(r.code, 0)
  t.eq(r.timed_out, false)
end)

t.test("megabytes pass through stdin and stdout intact", function()
  local data = ("0123456789abcdef"):rep(256 * 1024) -- 4 MiB
  local r = proc.run{ argv = { "cat" }, stdin = data, max_output = 8 * 1024 * 1024 }
  t.eq(#r.stdout, #data)
  t.ok(r.stdout == data, "output differs from input")
  t.eq(r.truncated, false)
end)

t.test("output beyond max_output is dropped and flagged, without blocking the command", function()
  local r = proc.run{ argv = { "sh", "-c", "head -c 3000000 /dev/zero; echo done >&2" } }
  t.eq(#r.stdout, 1024 * 1024, "default limit is 1 MiB")
  t.eq(r.truncated, true)
  t.eq(r.stderr, "done\n")
  t.eq(r.code, 0)
  local small = proc.run{ argv = { "echo", "hello" }, max_output = 3 }
  t.eq(small.stdout, "hel")
  t.eq(small.truncated, true)
end)

t.test("a command that outlives timeout_ms is killed and flagged", function()
  local r = proc.run{ argv = { "sleep", "30" }, timeout_ms = 100 }
  t.eq(r.timed_out, true)
  t.eq(r.code, nil)
  t.eq(r.signal, 9)
  t.ok(r.duration_ms < 5000, "took " .. r.duration_ms .. " ms")
end)

t.test("a timeout kills the whole process group, children included", function()
  local r = proc.run{ argv = { "sh", "-c", "sleep 30 & echo $!; wait" }, timeout_ms = 200 }
  t.eq(r.timed_out, true)
  local child = tonumber(r.stdout:match("%d+"))
  t.ok(child, r.stdout)
  task.sleep(50)
  t.ok(dead(child), "background child " .. child .. " survived")
end)

t.test("a background job left behind does not hold the call open", function()
  local r = proc.run{ argv = { "sh", "-c", "sleep 30 & echo started" }, timeout_ms = 10000 }
  t.eq(r.code, 0)
  t.eq(r.stdout, "started\n")
  t.eq(r.timed_out, false)
  t.ok(r.duration_ms < 5000, "took " .. r.duration_ms .. " ms")
end)

t.test("a command killed by a signal reports the signal and no code", function()
  local r = proc.run{ argv = { "sh", "-c", "kill -TERM $$" } }
  t.eq(r.code, nil)
  t.eq(r.signal, 15)
end)

t.test("other tasks keep running while a command runs", function()
  local ticks = 0
  local ticker = task.spawn(function()
    for _ = 1, 1000 do task.sleep(10); ticks = ticks + 1 end
  end)
  local r = proc.run{ argv = { "sleep", "0.3" } }
  t.eq(r.code, 0)
  t.ok(ticks >= 5, "only " .. ticks .. " ticks while waiting")
  ticker:cancel()
end)

t.test("many commands run concurrently and each gets its own output", function()
  local hs = {}
  for i = 1, 20 do
    hs[i] = task.spawn(function()
      return proc.run{ argv = { "sh", "-c", "sleep 0.1; echo " .. i } }
    end)
  end
  local t0 = os.time()
  for i = 1, 20 do t.eq(hs[i]:join().stdout, i .. "\n") end
  t.ok(os.time() - t0 < 3, "commands ran one after another")
end)

t.test("cancelling the task kills the command and leaves no process behind", function()
  local d = fs.tmpdir("proc-test-")
  local pidfile = fs.join(d, "pid")
  local h = task.spawn(function()
    return proc.run{ argv = { "sh", "-c", "echo $$ > " .. pidfile .. "; exec sleep 30" } }
  end)
  while not (fs.exists(pidfile) and #fs.read(pidfile) > 0) do task.sleep(5) end
  local pid = tonumber(fs.read(pidfile))
  task.sleep(20) -- let sh exec sleep
  t.eq(h:cancel(), true)
  t.raises(function() h:join() end, "cancelled")
  t.ok(dead(pid), "process " .. pid .. " survived the cancellation")
  fs.remove(pidfile)
  fs.remove(d)
end)

t.test("pcall around proc.run cannot swallow a cancellation", function()
  local after = false
  local h = task.spawn(function()
    pcall(proc.run, { argv = { "sleep", "30" } })
    after = true
  end)
  task.sleep(20)
  h:cancel()
  t.raises(function() h:join() end, "cancelled")
  t.eq(after, false)
end)

t.test("a missing executable is an error naming it", function()
  t.raises(function() proc.run{ argv = { "no-such-program-xyz", "arg" } } end,
    "'no%-such%-program%-xyz' was not found in PATH")
  t.raises(function() proc.run{ argv = { "/no/such/dir/prog" } } end,
    "cannot run '/no/such/dir/prog': No such file")
end)

t.test("a file that is not executable is an error naming it", function()
  local d = fs.tmpdir("proc-test-")
  local f = fs.join(d, "data.txt")
  fs.write(f, "not a program")
  t.raises(function() proc.run{ argv = { f } } end, "not an executable file")
  t.raises(function() proc.run{ argv = { d } } end, "not an executable file")
  fs.remove(f)
  fs.remove(d)
end)

t.test("arguments reach the program verbatim, without a shell", function()
  local r = proc.run{ argv = { "printf", "%s|", "$(id)", "a b", "*", "; rm -rf /", "" } }
  t.eq(r.stdout, "$(id)|a b|*|; rm -rf /||")
end)

t.test("numbers in argv are passed as strings", function()
  t.eq(proc.run{ argv = { "echo", 42, 1.5 } }.stdout, "42 1.5\n")
end)

t.test("the environment holds only PATH, HOME, LANG and what env adds", function()
  local r = proc.run{ argv = { "env" }, env = { MY_VAR = "x=y", LANG = "C" } }
  local names = {}
  for line in r.stdout:gmatch("[^\n]+") do names[#names + 1] = line:match("^([^=]+)=") end
  table.sort(names)
  local want = os.getenv("HOME") and "HOME,LANG,MY_VAR,PATH" or "LANG,MY_VAR,PATH"
  t.eq(table.concat(names, ","), want)
  t.ok(r.stdout:find("MY_VAR=x=y\n", 1, true), r.stdout)
  t.ok(r.stdout:find("LANG=C\n", 1, true), r.stdout)
end)

t.test("env.PATH decides where the program is found", function()
  t.raises(function()
    proc.run{ argv = { "sh", "-c", "true" }, env = { PATH = "/nonexistent" } }
  end, "'sh' was not found in PATH %(/nonexistent%)")
end)

t.test("cwd sets the working directory; a missing one is an error naming it", function()
  local d = fs.tmpdir("proc-test-")
  t.eq(proc.run{ argv = { "pwd" }, cwd = d }.stdout, d .. "\n")
  t.raises(function() proc.run{ argv = { "pwd" }, cwd = d .. "/nope" } end, "cwd '.*nope'")
  fs.write(fs.join(d, "f"), "")
  t.raises(function() proc.run{ argv = { "pwd" }, cwd = fs.join(d, "f") } end, "not a directory")
  fs.remove(fs.join(d, "f"))
  fs.remove(d)
end)

t.test("a relative program path is found from cwd", function()
  local d = fs.tmpdir("proc-test-")
  fs.write(fs.join(d, "hello.sh"), "#!/bin/sh\necho hello from script\n")
  proc.run{ argv = { "chmod", "+x", fs.join(d, "hello.sh") } }
  t.eq(proc.run{ argv = { "./hello.sh" }, cwd = d }.stdout, "hello from script\n")
  fs.remove(fs.join(d, "hello.sh"))
  fs.remove(d)
end)

t.test("misused options are errors that name the option", function()
  t.raises(function() proc.run{} end, "argv must be a list")
  t.raises(function() proc.run{ argv = {} } end, "argv is empty")
  t.raises(function() proc.run{ argv = { "echo", {} } } end, "argv%[2%] must be a string")
  t.raises(function() proc.run{ argv = { "echo", "a\0b" } } end, "argv%[2%] contains a NUL")
  t.raises(function() proc.run{ argv = { "echo" }, timeout = 5 } end, "unknown option 'timeout'")
  t.raises(function() proc.run{ argv = { "echo" }, timeout_ms = 0 } end, "timeout_ms must be")
  t.raises(function() proc.run{ argv = { "echo" }, timeout_ms = "1" } end, "timeout_ms must be")
  t.raises(function() proc.run{ argv = { "echo" }, max_output = -1 } end, "max_output must be")
  t.raises(function() proc.run{ argv = { "echo" }, stdin = 5 } end, "stdin must be a string")
  t.raises(function() proc.run{ argv = { "echo" }, env = { ["A=B"] = "x" } } end, "contains '='")
  t.raises(function() proc.run{ argv = { "echo" }, env = { A = {} } } end, "env.A must be")
  t.raises(function() proc.run{ argv = { "echo" }, env = { A = "\0" } } end, "NUL byte")
  t.raises(function() proc.run("echo") end, "bad argument #1")
end)

t.test("proc.run cannot wait inside a sort comparator", function()
  t.raises(function()
    table.sort({ 2, 1 }, function(a, b) proc.run{ argv = { "true" } }; return a < b end)
  end, "cannot wait here")
end)

t.test("limits.memory_mb and limits.cpu_s apply rlimits to the command", function()
  local ok, r = pcall(proc.run, { argv = { "sh", "-c", "ulimit -v; ulimit -t" },
    limits = { memory_mb = 100, cpu_s = 7 } })
  if not ok then -- only acceptable when prlimit is unusable here, and then it must say so
    t.ok(tostring(r):find("limits.memory_mb cannot be applied"), tostring(r))
    return
  end
  t.eq(r.stdout, "102400\n7\n")
end)

t.test("a memory limit makes a large allocation fail inside the command", function()
  local grow = "x=$(head -c 50000000 /dev/zero | tr '\\0' a); echo ${#x}"
  local ok, r = pcall(proc.run, { argv = { "sh", "-c", grow }, limits = { memory_mb = 16 } })
  if not ok then
    t.ok(tostring(r):find("cannot be applied"), tostring(r))
    return
  end
  t.ok(r.code ~= 0 or r.signal ~= nil, "50 MB string fit under a 16 MB limit: " .. r.stdout)
end)

t.test("limits.no_network leaves the command only a loopback device, or says why not", function()
  local ok, r = pcall(proc.run,
    { argv = { "cat", "/proc/net/dev" }, limits = { no_network = true } })
  if not ok then
    t.ok(tostring(r):find("limits.no_network cannot be applied: .+; refusing"), tostring(r))
    return
  end
  t.eq(r.code, 0)
  local devices = {}
  for name in r.stdout:gmatch("\n%s*([%w%-_.@]+):") do devices[#devices + 1] = name end
  t.eq(table.concat(devices, ","), "lo")
end)

t.test("limits combine: no network and rlimits together", function()
  local ok, r = pcall(proc.run, { argv = { "sh", "-c", "ulimit -t; wc -l < /proc/net/dev" },
    limits = { cpu_s = 3, no_network = true } })
  if not ok then
    t.ok(tostring(r):find("cannot be applied"), tostring(r))
    return
  end
  t.eq(r.stdout, "3\n3\n")
end)

t.test("a missing program is reported as missing even behind the limit tools", function()
  t.raises(function() proc.run{ argv = { "no-such-program-xyz" }, limits = { cpu_s = 1 } } end,
    "'no%-such%-program%-xyz' was not found")
end)

t.test("misused limits are errors that name the limit", function()
  t.raises(function() proc.run{ argv = { "true" }, limits = { memory = 5 } } end,
    "unknown limit 'memory'")
  t.raises(function() proc.run{ argv = { "true" }, limits = { memory_mb = 0 } } end,
    "memory_mb must be an integer")
  t.raises(function() proc.run{ argv = { "true" }, limits = { cpu_s = 1.5 } } end,
    "cpu_s must be an integer")
  t.raises(function() proc.run{ argv = { "true" }, limits = { no_network = "yes" } } end,
    "no_network must be a boolean")
  t.raises(function() proc.run{ argv = { "true" }, limits = 5 } end, "limits must be a table")
end)

t.done()

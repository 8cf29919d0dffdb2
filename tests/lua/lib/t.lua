-- A minimal test library for Lua tests run by `moonloop run`: each test runs as its own
-- task, failures print file:line, and the run closes with "N passed, N failed".
local t = { passed = 0, failed = 0 }

local function where(level)
  local info = debug.getinfo(level + 1, "Sl")
  return info and (info.short_src .. ":" .. info.currentline) or "?"
end

local function fail(msg, level)
  error({ test_failure = true, message = where(level + 1) .. ": " .. msg }, 0)
end

function t.eq(got, want, what)
  if got ~= want then
    fail(("%s: got %s, want %s"):format(what or "value", tostring(got), tostring(want)), 2)
  end
end

function t.ok(cond, what)
  if not cond then fail(what or "condition is false", 2) end
end

-- Call fn, expect it to raise; return the error value. `check` is a kind string (for
-- structured errors) or a Lua pattern matched against tostring(err).
function t.raises(fn, check, ...)
  local ok, err = pcall(fn, ...)
  if ok then fail("expected an error, got none", 2) end
  if check then
    local kind = type(err) == "table" and err.kind
    if kind ~= check and not tostring(err):find(check) then
      fail(("error %q does not match %q"):format(tostring(err), check), 2)
    end
  end
  return err
end

function t.test(name, fn)
  local h = task.spawn(fn)
  local ok, err = pcall(h.join, h)
  if ok then
    t.passed = t.passed + 1
    print("ok   " .. name)
  else
    t.failed = t.failed + 1
    local msg = type(err) == "table" and err.test_failure and err.message or tostring(err)
    print("FAIL " .. name .. "\n     " .. msg)
  end
end

function t.done()
  print(("%d passed, %d failed"):format(t.passed, t.failed))
  if t.failed > 0 then error(("%d test(s) failed"):format(t.failed), 0) end
end

return t

-- The fs module: reads, atomic writes, appends, directories, globbing, stat and the pure
-- path helpers. Each test works in its own fresh directory from fs.tmpdir.
local t = dofile("lib/t.lua")

local made = {}
local function scratch()
  local d = fs.tmpdir("fs-test-")
  made[#made + 1] = d
  return d
end

t.test("write then read returns the same bytes, NULs and high bytes included", function()
  local p = fs.join(scratch(), "data.bin")
  local data = "a\0b\255\n" .. ("x"):rep(200000)
  fs.write(p, data)
  t.eq(fs.read(p), data)
end)

t.test("write replaces a file whole and leaves no temporary file behind", function()
  local d = scratch()
  local p = fs.join(d, "f.txt")
  fs.write(p, "old content that is longer")
  fs.write(p, "new")
  t.eq(fs.read(p), "new")
  t.eq(table.concat(fs.list(d), ","), "f.txt")
end)

t.test("write keeps the mode of the file it replaces", function()
  local p = fs.join(scratch(), "script.sh")
  fs.write(p, "#!/bin/sh\n")
  local r = proc.run{ argv = { "chmod", "750", p } }
  t.eq(r.code, 0)
  fs.write(p, "#!/bin/sh\necho hi\n")
  t.eq(fs.stat(p).mode, tonumber("750", 8))
end)

t.test("write into a missing directory names the path and the reason", function()
  local p = fs.join(scratch(), "no", "such", "f.txt")
  local err = t.raises(function() fs.write(p, "x") end)
  t.ok(tostring(err):find(p, 1, true) and tostring(err):find("No such file"), tostring(err))
end)

t.test("write onto a directory fails and leaves the directory alone", function()
  local d = scratch()
  fs.mkdir(fs.join(d, "sub"))
  t.raises(function() fs.write(fs.join(d, "sub"), "x") end, "sub")
  t.raises(function() fs.write(d .. "/", "x") end, "Is a directory")
  t.eq(fs.stat(fs.join(d, "sub")).type, "dir")
  t.eq(table.concat(fs.list(d), ","), "sub")
end)

t.test("read of a missing file names the path and strerror", function()
  local p = fs.join(scratch(), "missing.txt")
  local err = t.raises(function() fs.read(p) end)
  t.ok(tostring(err):find("fs.read: '" .. p .. "': No such file or directory", 1, true),
    tostring(err))
end)

t.test("read of a directory is an error", function()
  t.raises(function() fs.read(scratch()) end, "Is a directory")
end)

t.test("read of an empty file is an empty string", function()
  local p = fs.join(scratch(), "empty")
  fs.write(p, "")
  t.eq(fs.read(p), "")
end)

t.test("append creates the file and adds to its end", function()
  local p = fs.join(scratch(), "log.jsonl")
  fs.append(p, "one\n")
  fs.append(p, "two\n")
  t.eq(fs.read(p), "one\ntwo\n")
end)

t.test("exists says whether something is at the path", function()
  local d = scratch()
  local f = fs.join(d, "f")
  t.eq(fs.exists(f), false)
  fs.write(f, "")
  t.eq(fs.exists(f), true)
  t.eq(fs.exists(d), true)
  t.eq(fs.exists(fs.join(f, "below-a-file")), false)
end)

t.test("mkdir creates missing parents and accepts an existing directory", function()
  local d = fs.join(scratch(), "a", "b", "c")
  fs.mkdir(d)
  t.eq(fs.stat(d).type, "dir")
  fs.mkdir(d)
  fs.mkdir(d .. "//")
end)

t.test("mkdir refuses a path that is a file, or below one", function()
  local f = fs.join(scratch(), "file")
  fs.write(f, "x")
  t.raises(function() fs.mkdir(f) end, "not a directory")
  local err = t.raises(function() fs.mkdir(fs.join(f, "sub")) end)
  t.ok(tostring(err):find("Not a directory"), tostring(err))
end)

t.test("list returns sorted names without . and ..", function()
  local d = scratch()
  for _, n in ipairs({ "b", "a", "C", ".hidden", "a2" }) do fs.write(fs.join(d, n), "") end
  fs.mkdir(fs.join(d, "dir"))
  t.eq(table.concat(fs.list(d), ","), ".hidden,C,a,a2,b,dir")
end)

t.test("list of an empty directory is an empty list; of a missing one an error", function()
  local d = scratch()
  t.eq(#fs.list(d), 0)
  t.raises(function() fs.list(fs.join(d, "nope")) end, "No such file")
end)

t.test("glob returns sorted matches and an empty list when nothing matches", function()
  local d = scratch()
  for _, n in ipairs({ "x2.txt", "x1.txt", "y.md", "x10.txt" }) do fs.write(fs.join(d, n), "") end
  local got = fs.glob(fs.join(d, "x*.txt"))
  t.eq(#got, 3)
  t.eq(got[1], fs.join(d, "x1.txt"))
  t.eq(got[2], fs.join(d, "x10.txt"))
  t.eq(got[3], fs.join(d, "x2.txt"))
  t.eq(#fs.glob(fs.join(d, "*.csv")), 0)
end)

t.test("glob does not expand shell syntax", function()
  local d = scratch()
  fs.write(fs.join(d, "a"), "")
  t.eq(#fs.glob(fs.join(d, "$(touch pwned)")), 0)
  t.eq(#fs.glob(fs.join(d, "{a,b}")), 0)
  t.eq(fs.exists(fs.join(d, "pwned")), false)
end)

t.test("remove deletes a file and an empty directory", function()
  local d = scratch()
  local f, sub = fs.join(d, "f"), fs.join(d, "sub")
  fs.write(f, "x")
  fs.mkdir(sub)
  fs.remove(f)
  fs.remove(sub)
  t.eq(#fs.list(d), 0)
end)

t.test("remove refuses a missing path and a non-empty directory", function()
  local d = scratch()
  t.raises(function() fs.remove(fs.join(d, "nope")) end, "No such file")
  fs.mkdir(fs.join(d, "full"))
  fs.write(fs.join(d, "full", "x"), "")
  t.raises(function() fs.remove(fs.join(d, "full")) end, "not empty")
  t.eq(fs.exists(fs.join(d, "full", "x")), true)
end)

t.test("tmpdir makes a fresh private directory each time", function()
  local a, b = fs.tmpdir(), fs.tmpdir("mine-")
  t.ok(a ~= b)
  t.eq(fs.stat(a).type, "dir")
  t.eq(fs.stat(a).mode, tonumber("700", 8))
  t.ok(fs.basename(b):find("^mine%-"), b)
  fs.remove(a)
  fs.remove(b)
end)

t.test("tmpdir refuses a prefix that would escape the temporary directory", function()
  t.raises(function() fs.tmpdir("../evil") end, "must not contain '/'")
  t.raises(function() fs.tmpdir("a\0b") end, "must not contain")
end)

t.test("dirname follows dirname(1)", function()
  local cases = { { "a/b/c", "a/b" }, { "a/b/", "a" }, { "a", "." }, { "/a", "/" }, { "/", "/" },
    { "", "." }, { "//a//b//", "//a" }, { "a//b", "a" } }
  for _, c in ipairs(cases) do t.eq(fs.dirname(c[1]), c[2], "dirname(" .. c[1] .. ")") end
end)

t.test("basename follows basename(1)", function()
  local cases = { { "a/b/c.txt", "c.txt" }, { "a/b/", "b" }, { "a", "a" }, { "/", "/" },
    { "", "" }, { "//", "/" } }
  for _, c in ipairs(cases) do t.eq(fs.basename(c[1]), c[2], "basename(" .. c[1] .. ")") end
end)

t.test("join puts exactly one slash between parts and skips empty ones", function()
  t.eq(fs.join("a", "b", "c"), "a/b/c")
  t.eq(fs.join("a/", "/b"), "a/b")
  t.eq(fs.join("/", "etc"), "/etc")
  t.eq(fs.join("a", "", "b"), "a/b")
  t.eq(fs.join("a"), "a")
  t.eq(fs.join("a", "b/"), "a/b/")
end)

t.test("join keeps an absolute later part under the earlier ones", function()
  t.eq(fs.join("/data/run", "/etc/passwd"), "/data/run/etc/passwd")
end)

t.test("join checks its arguments", function()
  t.raises(function() fs.join() end, "at least one")
  t.raises(function() fs.join("a", {}) end, "bad argument #2")
end)

t.test("stat reports size, type and mtime, and nil for a missing path", function()
  local d = scratch()
  local f = fs.join(d, "f")
  fs.write(f, "12345")
  local st = fs.stat(f)
  t.eq(st.size, 5)
  t.eq(st.type, "file")
  t.ok(math.abs(st.mtime - os.time()) < 60, "mtime " .. st.mtime)
  t.eq(fs.stat(d).type, "dir")
  t.eq(fs.stat(fs.join(d, "nope")), nil)
  t.eq(fs.stat("/dev/null").type, "char")
end)

t.test("a path with a NUL byte is refused, not cut short", function()
  local d = scratch()
  local f = fs.join(d, "f")
  fs.write(f, "secret")
  t.raises(function() fs.read(f .. "\0.txt") end, "NUL byte")
  t.raises(function() fs.write(f .. "\0.txt", "x") end, "NUL byte")
  t.raises(function() fs.exists(f .. "\0") end, "NUL byte")
  t.raises(function() fs.remove(f .. "\0x") end, "NUL byte")
  t.eq(fs.read(f), "secret")
end)

t.test("an empty path is refused", function()
  t.raises(function() fs.read("") end, "path is empty")
  t.raises(function() fs.mkdir("") end, "path is empty")
end)

for _, d in ipairs(made) do proc.run{ argv = { "rm", "-rf", d } } end
t.done()

-- The sqlite module: statements and parameters, row shapes, transactions and savepoints,
-- WAL, sharing a file between connections and processes, errors, and closing.
local t = dofile("lib/t.lua")

local made = {}
local function scratch_db(name)
  local d = fs.tmpdir("sqlite-test-")
  made[#made + 1] = d
  return fs.join(d, name or "test.db")
end

local function mem()
  local db = sqlite.open(":memory:")
  db:exec("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL, data BLOB)")
  return db
end

t.test("exec runs several statements at once", function()
  local db = sqlite.open(":memory:")
  db:exec([[
    CREATE TABLE a(x);
    INSERT INTO a VALUES (1);
    INSERT INTO a VALUES (2);
  ]])
  t.eq(db:first("SELECT count(*) AS n FROM a").n, 2)
  db:close()
end)

t.test("query returns rows keyed by column name with their SQLite types", function()
  local db = mem()
  db:run("INSERT INTO t(name, score, data) VALUES (?, ?, ?)", "ann", 1.5, "b\0\255")
  local rows = db:query("SELECT id, name, score, data, NULL AS empty FROM t")
  t.eq(#rows, 1)
  local r = rows[1]
  t.eq(math.type(r.id), "integer"); t.eq(r.id, 1)
  t.eq(r.name, "ann")
  t.eq(math.type(r.score), "float"); t.eq(r.score, 1.5)
  t.eq(r.data, "b\0\255")
  t.eq(r.empty, nil)
end)

t.test("query of no rows is an empty list, first of no rows is nil", function()
  local db = mem()
  t.eq(#db:query("SELECT * FROM t"), 0)
  t.eq(db:first("SELECT * FROM t WHERE id = ?", 1), nil)
end)

t.test("parameters bind nil, booleans, integers, floats and strings", function()
  local db = sqlite.open(":memory:")
  local r = db:first("SELECT ? AS a, ? AS b, ? AS c, ? AS d, ? AS e, ? AS f",
    nil, true, false, 9007199254740993, 0.25, "text")
  t.eq(r.a, nil); t.eq(r.b, 1); t.eq(r.c, 0)
  t.eq(r.d, 9007199254740993, "64-bit integers stay exact")
  t.eq(r.e, 0.25); t.eq(r.f, "text")
end)

t.test("a parameter value is data, never SQL", function()
  local db = mem()
  local evil = "x'); DROP TABLE t; --"
  db:run("INSERT INTO t(name) VALUES (?)", evil)
  t.eq(db:first("SELECT name FROM t").name, evil)
end)

t.test("the number of values must match the number of parameters", function()
  local db = mem()
  t.raises(function() db:run("INSERT INTO t(name) VALUES (?)") end, "1 parameter%(s%) but 0 value")
  t.raises(function() db:run("INSERT INTO t(name) VALUES (?)", "a", "b") end, "but 2 value")
  t.raises(function() db:query("SELECT 1", nil) end, "0 parameter%(s%) but 1 value")
end)

t.test("a table or function as a parameter is an error naming its position", function()
  local db = mem()
  t.raises(function() db:run("INSERT INTO t(name, score) VALUES (?, ?)", "a", {}) end,
    "parameter 2 is a table")
end)

t.test("run returns the number of changes and the last rowid", function()
  local db = mem()
  local changes, rowid = db:run("INSERT INTO t(name) VALUES (?)", "a")
  t.eq(changes, 1); t.eq(rowid, 1)
  changes, rowid = db:run("INSERT INTO t(name) VALUES (?)", "b")
  t.eq(rowid, 2)
  changes = db:run("UPDATE t SET score = 1")
  t.eq(changes, 2)
end)

t.test("query and run refuse text with two statements and point to exec", function()
  local db = mem()
  t.raises(function() db:run("INSERT INTO t(name) VALUES ('a'); DELETE FROM t") end,
    "more than one statement; use db:exec")
  t.eq(#db:query("SELECT * FROM t"), 0, "the first statement did not run either")
  -- Trailing whitespace and comments are not a second statement.
  t.eq(#db:query("SELECT * FROM t; -- trailing comment\n  "), 0)
end)

t.test("SQL with a NUL byte is refused", function()
  local db = mem()
  t.raises(function() db:query("SELECT 1\0; DROP TABLE t") end, "without NUL bytes")
end)

t.test("errors name the operation, the SQL and the database file", function()
  local path = scratch_db()
  local db = sqlite.open(path)
  local err = t.raises(function() db:query("SELECT * FROM missing_table") end)
  local msg = tostring(err)
  t.ok(msg:find("db:query: no such table: missing_table", 1, true), msg)
  t.ok(msg:find('SQL: "SELECT * FROM missing_table"', 1, true), msg)
  t.ok(msg:find(path, 1, true), msg)
  db:close()
end)

t.test("errors quote at most 80 characters of the SQL, on one line", function()
  local db = mem()
  local sql = "SELECT\n  " .. ("x, "):rep(40) .. "nope FROM t"
  local msg = tostring(t.raises(function() db:query(sql) end))
  local quoted = msg:match('SQL: "(.-)"')
  t.ok(quoted, msg)
  t.ok(#quoted <= 83 and quoted:sub(-3) == "...", quoted)
  t.ok(not quoted:find("\n"), quoted)
end)

t.test("a constraint violation raises from run", function()
  local db = sqlite.open(":memory:")
  db:exec("CREATE TABLE u(k TEXT UNIQUE)")
  db:run("INSERT INTO u VALUES (?)", "a")
  t.raises(function() db:run("INSERT INTO u VALUES (?)", "a") end, "UNIQUE constraint failed")
  t.eq(db:first("SELECT count(*) AS n FROM u").n, 1)
end)

t.test("the same SQL text is prepared once and reused", function()
  local db = mem()
  for i = 1, 1000 do db:run("INSERT INTO t(name) VALUES (?)", "n" .. i) end
  t.eq(db:first("SELECT count(*) AS n FROM t").n, 1000)
end)

t.test("many distinct statements do not exhaust the statement cache", function()
  local db = mem()
  for i = 1, 300 do db:first("SELECT " .. i .. " AS v") end
  t.eq(db:first("SELECT 7 AS v").v, 7)
end)

t.test("transaction commits what fn did and returns its results", function()
  local db = mem()
  local a, b = db:transaction(function(d)
    d:run("INSERT INTO t(name) VALUES ('x')")
    return "done", 2
  end)
  t.eq(a, "done"); t.eq(b, 2)
  t.eq(db:first("SELECT count(*) AS n FROM t").n, 1)
end)

t.test("transaction rolls back on error and re-raises the error as it was", function()
  local db = mem()
  local err = t.raises(function()
    db:transaction(function()
      db:run("INSERT INTO t(name) VALUES ('x')")
      error(task.error("custom", "model answer rejected", { item = 7 }))
    end)
  end, "custom")
  t.eq(err.item, 7)
  t.eq(db:first("SELECT count(*) AS n FROM t").n, 0)
  -- The connection is usable again afterwards.
  db:transaction(function() db:run("INSERT INTO t(name) VALUES ('y')") end)
  t.eq(db:first("SELECT count(*) AS n FROM t").n, 1)
end)

t.test("nested transactions roll back only the inner savepoint", function()
  local db = mem()
  db:transaction(function()
    db:run("INSERT INTO t(name) VALUES ('outer')")
    local ok = pcall(db.transaction, db, function()
      db:run("INSERT INTO t(name) VALUES ('inner')")
      error("inner failure")
    end)
    t.eq(ok, false)
    db:transaction(function() db:run("INSERT INTO t(name) VALUES ('inner2')") end)
  end)
  local names = {}
  for _, r in ipairs(db:query("SELECT name FROM t ORDER BY id")) do names[#names + 1] = r.name end
  t.eq(table.concat(names, ","), "outer,inner2")
end)

t.test("a function given to transaction cannot wait, and the transaction rolls back", function()
  local db = mem()
  local err = t.raises(function()
    db:transaction(function()
      db:run("INSERT INTO t(name) VALUES ('x')")
      task.sleep(1)
    end)
  end, "must not wait")
  t.ok(tostring(err):find("task.sleep"), tostring(err))
  t.eq(db:first("SELECT count(*) AS n FROM t").n, 0)
end)

t.test("transaction checks its argument", function()
  local db = mem()
  t.raises(function() db:transaction("BEGIN") end, "bad argument #1")
end)

t.test("a file database uses WAL with synchronous NORMAL by default", function()
  local db = sqlite.open(scratch_db())
  t.eq(db:first("PRAGMA journal_mode").journal_mode, "wal")
  t.eq(db:first("PRAGMA synchronous").synchronous, 1)
  db:close()
end)

t.test("wal = false keeps the default rollback journal", function()
  local db = sqlite.open(scratch_db(), { wal = false })
  t.eq(db:first("PRAGMA journal_mode").journal_mode, "delete")
  db:close()
end)

t.test("readonly refuses writes but reads", function()
  local path = scratch_db()
  local w = sqlite.open(path)
  w:exec("CREATE TABLE k(v); INSERT INTO k VALUES (1)")
  local r = sqlite.open(path, { readonly = true })
  t.eq(r:first("SELECT v FROM k").v, 1)
  t.raises(function() r:run("INSERT INTO k VALUES (2)") end, "readonly")
  r:close()
  w:close()
end)

t.test("two connections share a file; a writer waits out the busy timeout", function()
  local path = scratch_db()
  local a = sqlite.open(path)
  local b = sqlite.open(path, { busy_timeout_ms = 50 })
  a:exec("CREATE TABLE k(v)")
  b:run("INSERT INTO k VALUES (1)")
  t.eq(a:first("SELECT count(*) AS n FROM k").n, 1)
  a:transaction(function()
    a:run("INSERT INTO k VALUES (2)")
    t.raises(function() b:run("INSERT INTO k VALUES (3)") end, "database is locked")
    t.eq(b:first("SELECT count(*) AS n FROM k").n, 1, "readers see the last commit")
  end)
  t.eq(b:first("SELECT count(*) AS n FROM k").n, 2)
  a:close(); b:close()
end)

t.test("another process can write while this one holds the file open", function()
  local path = scratch_db()
  local db = sqlite.open(path)
  db:exec("CREATE TABLE k(who)")
  db:run("INSERT INTO k VALUES ('parent')")
  local script = fs.join(fs.dirname(path), "child.lua")
  fs.write(script, ([[
    local db = sqlite.open(%q)
    db:exec("BEGIN IMMEDIATE")
    db:run("INSERT INTO k VALUES ('child')")
    fs.write(%q, "locked")
    task.sleep(300)
    db:exec("COMMIT")
  ]]):format(path, path .. ".marker"))
  local h = task.spawn(function()
    return proc.run{ argv = { "/proc/self/exe", "run", "--trusted", script }, timeout_ms = 20000,
      env = { MOONLOOP_LUA_DIR = os.getenv("MOONLOOP_LUA_DIR") } }
  end)
  while not fs.exists(path .. ".marker") do task.sleep(5) end
  -- The child holds the write lock for 300 ms: this insert waits for it (busy timeout).
  db:run("INSERT INTO k VALUES ('parent again')")
  local r = h:join()
  t.eq(r.code, 0, r.stderr)
  t.eq(db:first("SELECT group_concat(who, ',') AS w FROM k").w, "parent,child,parent again")
  db:close()
end)

t.test("close is idempotent and later use is an error naming the file", function()
  local path = scratch_db()
  local db = sqlite.open(path)
  db:close()
  db:close()
  t.raises(function() db:query("SELECT 1") end, "is closed")
  t.ok(tostring(db):find("closed"), tostring(db))
end)

t.test("a <close> variable closes the database at the end of its scope", function()
  local path = scratch_db()
  local keep
  do
    local db <close> = sqlite.open(path)
    keep = db
    db:exec("CREATE TABLE x(v)")
  end
  t.raises(function() keep:exec("SELECT 1") end, "is closed")
end)

t.test("closing inside a transaction is reported, not ignored", function()
  local db = mem()
  t.raises(function() db:transaction(function() db:close() end) end,
    "closed inside the transaction")
end)

t.test("garbage collection closes an abandoned connection", function()
  local path = scratch_db()
  do sqlite.open(path):exec("CREATE TABLE g(v)") end
  collectgarbage(); collectgarbage()
  local db = sqlite.open(path)
  t.eq(#db:query("SELECT * FROM g"), 0)
  db:close()
end)

t.test("open reports a path it cannot open, and unknown options", function()
  local err = t.raises(function() sqlite.open("/nonexistent-dir/x.db") end)
  local msg = tostring(err)
  t.ok(msg:find("sqlite.open: cannot open '/nonexistent-dir/x.db'", 1, true), msg)
  t.raises(function() sqlite.open(":memory:", { wall = true }) end, "unknown option 'wall'")
  t.raises(function() sqlite.open(":memory:", { busy_timeout_ms = -1 }) end, "busy_timeout_ms")
  t.raises(function() sqlite.open(":memory:", { wal = "yes" }) end, "wal must be a boolean")
  t.raises(function() sqlite.open("a\0b") end, "NUL byte")
end)

t.test("methods check that they are called on a database", function()
  local db = mem()
  t.raises(function() db.query({}, "SELECT 1") end, "bad argument #1")
  t.raises(function() db:query({}) end, "bad argument")
end)

for _, d in ipairs(made) do proc.run{ argv = { "rm", "-rf", d } } end
t.done()

#!/usr/bin/env bash
# How `moonloop run` ends. By default the runtime is let go the quick way (every Lua
# finalizer runs, stdio is flushed, memory and idle connections are left to the kernel);
# MOONLOOP_FULL_TEARDOWN=1 frees everything. Either way nothing a script wrote may be
# lost: a file it never closed, a database it never closed (WAL mode: the -wal file goes
# away only when SQLite closes the database), a finalizer's own output. The exit code must
# be the same both ways, and the mock server must have answered every request.
source "$(dirname "$0")/lib.sh"
cd "$SCRATCH"
start_mock exit
cat >cfg.lua <<LUA
return { providers = { mock = { kind = "openai", base_url = "$MOCK_URL", max_inflight = 40 } } }
LUA

cat >leave.lua <<'LUA'
local dir = arg[1]
-- Buffered in the C FILE, never closed: only a finalizer or a flush writes it.
local f = io.open(dir .. "/unclosed.txt", "w")
f:write(("x"):rep(100), "\n")
-- A database in WAL mode with a committed row, never closed.
local db = sqlite.open(dir .. "/left.db", { wal = true })
db:exec("CREATE TABLE t (v TEXT)")
db:exec("INSERT INTO t VALUES ('kept')")
-- A finalizer that writes a file of its own while the state closes.
KEEP = setmetatable({}, { __gc = function()
  local g = assert(io.open(dir .. "/finalized.txt", "w"))
  g:write("finalizer ran\n")
  g:close()
end })
-- 40 requests side by side: 40 idle keep-alive connections are open at the end.
local done = 0
local group = {}
for i = 1, 40 do
  group[i] = task.spawn(function()
    local r = llm.chat{ model = "m", prompt = "hi " .. i }
    if r.text then done = done + 1 end
  end)
end
for _, t in ipairs(group) do t:join() end
print("answered " .. done)
if arg[2] == "fail" then error("failing on purpose", 0) end
LUA

check_mode() { # LABEL ENV_VALUE
  local label=$1 d=$SCRATCH/$1 rc=0
  mkdir -p "$d"
  MOONLOOP_FULL_TEARDOWN=$2 "$MOONLOOP" run --trusted --config cfg.lua leave.lua "$d" \
    >"$d.out" 2>&1 || rc=$?
  [ "$rc" = 0 ] && grep -qx "answered 40" "$d.out" &&
    pass "$label: exit 0 after 40 answers" || fail "$label: exit 0 after 40 answers" "exit $rc: $(cat "$d.out")"
  [ "$(cat "$d/unclosed.txt" 2>/dev/null)" = "$(printf 'x%.0s' $(seq 100))" ] &&
    pass "$label: a file never closed is written whole" ||
    fail "$label: a file never closed is written whole" "got $(wc -c <"$d/unclosed.txt" 2>/dev/null) bytes"
  [ "$(cat "$d/finalized.txt" 2>/dev/null)" = "finalizer ran" ] &&
    pass "$label: finalizers run at exit" || fail "$label: finalizers run at exit" "no finalized.txt"
  [ -e "$d/left.db" ] && [ ! -e "$d/left.db-wal" ] &&
    pass "$label: a database never closed is closed (no -wal left)" ||
    fail "$label: a database never closed is closed (no -wal left)" "$(ls -l "$d")"
  python3 -c 'import sqlite3,sys; r=sqlite3.connect(sys.argv[1]).execute("select v from t").fetchall(); sys.exit(r != [("kept",)])' \
    "$d/left.db" && pass "$label: its committed row is there" || fail "$label: its committed row is there"
  rc=0
  mkdir -p "$d-fail"
  MOONLOOP_FULL_TEARDOWN=$2 "$MOONLOOP" run --trusted --config cfg.lua leave.lua "$d-fail" fail \
    >"$d.fail.out" 2>&1 || rc=$?
  [ "$rc" = 1 ] && grep -q "failing on purpose" "$d.fail.out" &&
    pass "$label: a failing script still exits 1 with its error" ||
    fail "$label: a failing script still exits 1 with its error" "exit $rc: $(cat "$d.fail.out")"
}
check_mode quick ""
check_mode full 1

# The server saw 4 x 40 requests and every one was answered.
n=$(grep -c '"status":200' "$SCRATCH/exit.log" || true)
[ "$n" = 160 ] && pass "the mock server answered all 160 requests" ||
  fail "the mock server answered all 160 requests" "it logged $n with status 200"
finish

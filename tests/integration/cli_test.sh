#!/usr/bin/env bash
# moonloop run as a user meets it: help, version, exit codes, tracebacks that name file
# and line, deadlock reports, Ctrl-C.
source "$(dirname "$0")/lib.sh"
cd "$SCRATCH"

"$MOONLOOP" --help >help.out && expect_contains "--help lists run" help.out "moonloop run"
"$MOONLOOP" --version >version.out && expect_contains "--version" version.out "moonloop 0."
"$MOONLOOP" run --help >runhelp.out && expect_contains "run --help explains exit codes" runhelp.out "Exit codes"

set +e
"$MOONLOOP" frobnicate >bad.out 2>&1; code=$?
set -e
[ $code -eq 2 ] && pass "unknown command exits 2" || fail "unknown command exits 2" "got $code"

printf 'print("ok")\nlocal x = = 1\n' >syntax.lua
set +e; "$MOONLOOP" run syntax.lua >syntax.out 2>&1; code=$?; set -e
[ $code -eq 2 ] && pass "a syntax error exits 2" || fail "a syntax error exits 2" "got $code"
expect_contains "a syntax error names file and line" syntax.out "syntax.lua:2:"

printf 'local function f()\n  error("it broke")\nend\ntask.sleep(1)\nf()\n' >runtime.lua
set +e; "$MOONLOOP" run runtime.lua >runtime.out 2>&1; code=$?; set -e
[ $code -eq 1 ] && pass "a runtime error exits 1" || fail "a runtime error exits 1" "got $code"
expect_contains "the error names file and line" runtime.out "runtime.lua:2: it broke"
expect_contains "the traceback shows the caller" runtime.out "runtime.lua:5:"

printf 'task.spawn(function() task.sleep(5); error("background failure") end)\nprint("main done")\n' >bg.lua
set +e; "$MOONLOOP" run bg.lua >bg.out 2>&1; code=$?; set -e
[ $code -eq 1 ] && pass "an unjoined background failure exits 1" || fail "background failure exits 1" "got $code"
expect_contains "the background failure is reported" bg.out "bg.lua:1: background failure"

printf 'local sem = task.semaphore(0)\nsem:acquire()\n' >deadlock.lua
set +e; timeout 10 "$MOONLOOP" run deadlock.lua >deadlock.out 2>&1; code=$?; set -e
[ $code -eq 1 ] && pass "a deadlock exits 1" || fail "a deadlock exits 1" "got $code"
expect_contains "a deadlock names what waits and where" deadlock.out "task.park"

printf 'print(#arg, arg[0], arg[1], ...)\n' >args.lua
"$MOONLOOP" run args.lua a b >args.out 2>&1
expect_contains "script arguments reach arg and ..." args.out "2	args.lua	a	a	b"

printf 'print("started")\ntask.sleep(60000)\n' >sleepy.lua
"$MOONLOOP" run sleepy.lua >sigint.out 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q started sigint.out 2>/dev/null && break; sleep 0.05; done
kill -INT $pid
set +e; wait $pid; code=$?; set -e
[ $code -eq 130 ] && pass "Ctrl-C exits 130" || fail "Ctrl-C exits 130" "got $code"
expect_contains "Ctrl-C says what it cancels" sigint.out "interrupted"

printf 'print(llm.chat{ prompt = "hello offline" }.text)\n' >offline.lua
env -u OPENAI_API_KEY -u OPENAI_BASE_URL HOME=/nonexistent XDG_CONFIG_HOME=/nonexistent \
  "$MOONLOOP" run offline.lua >offline.out 2>&1
expect_contains "zero config says it uses the simulator" offline.out "offline simulator"

printf 'return { providers = { p = { kind = "openia" } } }\n' >badcfg.lua
set +e; "$MOONLOOP" run --config badcfg.lua offline.lua >badcfg.out 2>&1; code=$?; set -e
[ $code -eq 2 ] && pass "a bad config exits 2" || fail "a bad config exits 2" "got $code"
expect_contains "a bad config names file and key" badcfg.out "badcfg.lua: providers.p: kind \"openia\""
finish

"""moonloop repl in a real terminal (tmux): an expression, a multi-line function, completion,
history recalled after a restart, Ctrl-C at the prompt and of a slow request against the mock
server, background output while a line is being typed, and a run attached, paused and
resumed, then left resumable with Ctrl-D."""
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from harness import SOURCE, Mock, Term, base_env, check, finish

env = base_env()


def screen_tail(t, n=12):
    return "\n".join(t.screen().split("\n")[-n:])


# --- editing, evaluation, completion, Ctrl-C at the prompt ------------------------------
t = Term(["--offline"], env)
try:
    check("banner and prompt", t.wait_for(r"REPL.*\n(.*\n)*>$") is not None and t.wait_prompt(), t.screen())
    t.line("1 + 2")
    check("expression", t.wait_for(r"^> 1 \+ 2\n3\n>$") is not None, screen_tail(t))
    t.line("function sq(x)")
    check("continuation prompt", t.wait_for(r"^>>$") is not None, screen_tail(t))
    t.line("  return x * x")
    t.line("end")
    t.line("sq(9)")
    check("multi-line function", t.wait_for(r"^> sq\(9\)\n81\n>$") is not None, screen_tail(t))

    t.type("string.forma")
    t.wait_last_line("> string.forma")
    t.keys("Tab")
    check("Tab completes a table field", t.wait_for(r"^> string\.format$") is not None, screen_tail(t))
    t.line('("%03d", 7)')
    check("completed line runs", t.wait_for(r"^007$") is not None, screen_tail(t))
    t.type("ta")
    t.wait_last_line("> ta")
    t.keys("Tab")
    time.sleep(0.2)
    t.keys("Tab")
    check("second Tab lists the candidates", t.wait_for(r"table\s+task") is not None, screen_tail(t))
    t.keys("C-u")
    t.wait_prompt()

    t.type("half a line")
    t.wait_last_line("> half a line")
    t.keys("C-c")
    check("Ctrl-C drops the line being typed", t.wait_for(r"^> half a line\^C\n>$") is not None, screen_tail(t))
    t.wait_prompt()
    t.keys("C-c")
    check("Ctrl-C at an empty prompt says how to leave",
          t.wait_for(r"to leave, press Ctrl-D or type :quit") is not None, screen_tail(t))
    t.wait_prompt()
    t.line("while true do end")
    time.sleep(0.5)
    t.keys("C-c")
    check("Ctrl-C stops a line stuck in pure Lua", t.wait_for(r"cancelled: task #\d+ was cancelled\n>$") is not None,
          screen_tail(t))

    # Background output while typing: the line being typed survives, the cursor too.
    t.line(':bg for i = 1, 3 do task.sleep(250) print("tick " .. i) end')
    t.wait_for(r"\[bg \d+\] started")
    t.type('typed = "abc')
    check("background output appears while typing", t.wait_for(r"^tick 3\n(.*\n)*> typed = \"abc$", timeout=10) is not None,
          screen_tail(t))
    check("the line being typed is redrawn intact under it", t.wait_last_line('> typed = "abc'),
          repr(t.last_line()) + "\n" + screen_tail(t))
    t.type('def"')
    t.keys("Enter")
    t.line("typed")
    check("what was typed before the output reached Lua intact", t.wait_for(r"^abcdef$") is not None, screen_tail(t))
    t.line("history_marker_" + str(os.getpid()) + " = 1")
    t.wait_prompt()
    t.keys("C-d")
    check("Ctrl-D leaves with status 0", t.wait_for(r"^\[exited 0\]$") is not None, screen_tail(t))
finally:
    t.close()

# --- history after a restart ------------------------------------------------------------
t = Term(["--offline"], env)
try:
    t.wait_prompt()
    t.keys("Up")
    check("history recalled after a restart",
          t.wait_for(r"^> history_marker_%d = 1$" % os.getpid()) is not None, screen_tail(t))
    t.keys("C-u")
    t.keys("C-d")
    t.wait_for(r"^\[exited 0\]$")
finally:
    t.close()

# --- Ctrl-C of a slow request against the mock server -----------------------------------
mock = Mock("slow", "--latency", "30000")
try:
    t = Term([], base_env(OPENAI_BASE_URL=mock.url, OPENAI_API_KEY="sk-test-not-a-key"))
    try:
        t.wait_prompt()
        t.line('r = llm.chat{model = "weak", prompt = "take your time"}')
        time.sleep(0.8)
        check("the request is pending (no prompt)", t.last_line() != ">", screen_tail(t))
        t0 = time.time()
        t.keys("C-c")
        m = t.wait_for(r"cancelled: .*\n>$", timeout=5)
        elapsed = time.time() - t0
        check("Ctrl-C returns from llm.chat at once with a cancelled error (%.2f s)" % elapsed,
              m is not None and elapsed < 3, screen_tail(t))
        t.line("llm.stats().in_flight, r")
        check("nothing left in flight", t.wait_for(r"^0\s+nil$") is not None, screen_tail(t))
        t.keys("C-d")
        t.wait_for(r"^\[exited 0\]$")
    finally:
        t.close()
finally:
    mock.close()

# --- a run attached, paused and resumed, then left with Ctrl-D --------------------------
mock = Mock("sim", "--sim", "--latency", "200")
run_dir = os.path.join(os.path.dirname(env["XDG_STATE_HOME"]), "run_tty")
try:
    t = Term([os.path.join(SOURCE, "recipes", "agentic_self_instruct.lua"), "--out", run_dir,
              "--concurrency", "2", "--set", "batch=4", "--set", "max_rounds=2"],
             base_env(OPENAI_BASE_URL=mock.url, OPENAI_API_KEY="sk-test-not-a-key"))
    try:
        check("run started in the background, prompt live",
              t.wait_for(r"run of agentic_self_instruct started") is not None and t.wait_prompt(), screen_tail(t))
        t.line(":status")
        check(":status while running", t.wait_for(r"run agentic_self_instruct: running") is not None, screen_tail(t))
        t.line(":pause")
        t.wait_for(r"^paused")
        t.line("ctl = require('moonloop.repl').attached().ctl")
        t.line("while ctl:status().in_flight_items > 0 do task.sleep(20) end d1 = ctl:status().done return 'd1', d1")
        m = t.wait_for(r"^d1\s+(\d+)$", timeout=20)
        check("paused: the items in flight finish", m is not None, screen_tail(t))
        t.line("task.sleep(600) return 'still', ctl:status().done == d1, d1 < ctl:status().total")
        check("paused: no new item starts", t.wait_for(r"^still\s+true\s+true$") is not None, screen_tail(t))
        t.line(":status")
        check(":status says paused", t.wait_for(r"run agentic_self_instruct: paused") is not None, screen_tail(t))
        t.line(":resume")
        t.wait_for(r"^resumed$")
        t.line("task.sleep(50) return 'moved', not ctl:status().paused and ctl:status().in_flight_items > 0")
        check("resumed: work goes on", t.wait_for(r"^moved\s+true$") is not None, screen_tail(t))
        t.line(":pause")
        t.wait_for(r"^paused")
        t.wait_prompt()
        t.keys("C-d")
        check("Ctrl-D stops the run, resumable", t.wait_for(r"resume it with: moonloop repl --resume") is not None,
              screen_tail(t))
        check("exit 0", t.wait_for(r"^\[exited 0\]$") is not None, screen_tail(t))
        check("run files kept", os.path.exists(os.path.join(run_dir, "run.db")), run_dir)
    finally:
        t.close()
finally:
    mock.close()

finish()

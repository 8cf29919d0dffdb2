"""moonloop repl without a terminal: lines on stdin, results on stdout. Evaluation, the pretty
printer, errors, background lines, a recipe run attached (paused, stepped, resumed, edited,
reverted), leaving a run resumable, Ctrl-C (SIGINT) of a slow request, and :limits."""
import json
import os
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from harness import (MOONLOOP, SCRATCH, SOURCE, Mock, base_env, check, finish, run_pipe)

ASI = os.path.join(SOURCE, "recipes", "agentic_self_instruct.lua")
SMALL = ["--concurrency", "2", "--set", "batch=4", "--set", "max_rounds=2"]

# --- Lua lines -------------------------------------------------------------------------
code, out, err = run_pipe(["--offline"], "\n".join([
    "1 + 1",
    "t = {1, 2, {a = 1}, name = 'n'}",
    "t",
    "local c = {} c.self = c return c",
    "function sq(x)",
    "  return x * x",
    "end",
    "sq(12)",
    "{{{{{{1}}}}}}",
    "local big = {} for i = 1, 100 do big[i] = i end return big",
    "'top level', {'nested\\nline'}",
    "=2 * 21",
    "error('boom')",
    "nil + 1",
    "for i = 1, 2 do",
    "  print('loop', i)",
    "end",
    "llm.chat{model = 'weak', prompt = 'hi'}.text ~= nil",
    ":bg task.sleep(50) return 'bg result'",
    "task.sleep(200)",
    ":nosuchcommand",
    "after = 'still here'",
    "after",
]) + "\n")
check("exit 0 at end of input", code == 0, err)
check("expression", "\n2\n" in "\n" + out, out)
check("table printed on one line", "{ 1, 2, { a = 1 }, name = \"n\" }" in out, out)
check("cycle marked", "{ self = <cycle> }" in out, out)
check("multi-line function, then a call", "\n144\n" in out, out)
check("depth bounded", "{ { { { {...1} } } } }" in out, out)
check("width bounded", "...(60 more)" in out, out)
check("top-level strings raw, nested quoted", "top level\t{ \"nested\\nline\" }" in out, out)
check("=expr", "\n42\n" in out, out)
check("error with location and traceback", "stdin:1: boom" in err and "stack traceback" in err, err)
check("runtime error", "attempt to perform arithmetic on a nil value" in err, err)
check("statement output", "loop\t1\nloop\t2" in out, out)
check("llm.chat at the prompt", "\ntrue\n" in out, out)
check(":bg result printed when done", "[bg 1] started" in out and "[bg 1] bg result" in out, out)
check("unknown command says so", "unknown command :nosuchcommand" in err, err)
check("lines after an error still run", "still here" in out, out)

# --- :help and :status without a run ----------------------------------------------------
code, out, err = run_pipe(["--offline"], ":help\n:status\n:pause\n")
check(":help lists the commands", all(":" + c in out for c in (
    "status", "pause", "resume", "step", "concurrency", "limits", "versions", "show", "diff",
    "edit", "revert", "failures", "cost", "bg", "run", "quit")), out)
check(":status without a run", "no run attached" in out, out)
check(":pause without a run is an error", "no run attached" in err, err)

# --- a run attached: paused, stepped, resumed, edited, reverted ------------------------
editor = os.path.join(SCRATCH, "editor.sh")
with open(editor, "w") as f:
    f.write("#!/bin/sh\nsed -i 's/You are writing one test question/You are writing one hard test question/' \"$1\"\n")
os.chmod(editor, 0o755)
frozen_editor = os.path.join(SCRATCH, "frozen_editor.sh")
with open(frozen_editor, "w") as f:
    f.write("#!/bin/sh\nsed -i 's/max_rounds = 8/max_rounds = 9/' \"$1\"\n")
os.chmod(frozen_editor, 0o755)

run1 = os.path.join(SCRATCH, "run1")
script = "\n".join([
    "ctl = require('moonloop.repl').attached().ctl",
    "task.sleep(200)",
    "'paused', ctl:status().paused, ctl:status().done",
    ":step",
    "task.sleep(20) while ctl:status().in_flight_items > 0 or not ctl:status().paused do task.sleep(20) end",
    "'stepped', ctl:status().done, ctl:status().iteration",
    ":status",
    ":edit",
    ":versions",
    ":diff 2",
    ":concurrency 3",
    "ctl.concurrency",
    ":resume",
    ":wait",
    "'finished', ctl:status().done == ctl:status().total",
    ":failures 3",
    ":revert 1",
    ":show",
])
code, out, err = run_pipe(["--offline", "--paused", ASI, "--out", run1] + SMALL, script + "\n",
                          env=base_env(EDITOR=editor))
check("run attached paused", "attached, paused" in out and "paused\ttrue\t0" in out, out + err)
check(":step runs one iteration (4 items) and pauses", "stepped\t4\t1" in out, out + err)
check(":status shows the run", "run agentic_self_instruct: paused" in out and "items 4/12 done" in out, out)
check(":edit saves a checked version", "saved as v2, now current" in out, out + err)
check(":versions marks the current one", "* v2 kept" in out, out)
check(":diff shows the edit", "+You are writing one hard test question" in out, out)
check(":concurrency changes the control", "concurrency 3\n3\n" in out, out)
check(":resume then :wait finishes the run", "finished\ttrue" in out and "run finished" in out, out + err)
check(":revert makes a new version", "v3 (the text of v1) is now current" in out, out)
check(":show prints the current source", "You are writing one test question" in out.split("v3 (the text")[1], out)
with open(os.path.join(run1, "dataset.jsonl")) as f:
    rows = [json.loads(l) for l in f if l.strip()]
check("dataset written", len(rows) > 0 and "messages" in rows[0], str(len(rows)))

code, out, err = run_pipe(["--offline", "--paused", ASI, "--out", os.path.join(SCRATCH, "run_frozen")] + SMALL,
                          ":edit\n:versions\n", env=base_env(EDITOR=frozen_editor))
check(":edit refuses a change outside the editable regions", "not saved" in err and "* v1 root" in out,
      out + err)

# --- leaving with a run in flight leaves it resumable ----------------------------------
run2 = os.path.join(SCRATCH, "run2")
code, out, err = run_pipe(["--offline", "--paused", ASI, "--out", run2] + SMALL,
                          ":step\ntask.sleep(30)\n")
check("leaving stops the run and says how to resume",
      code == 0 and "leaving: stopping the run" in out and "moonloop repl --resume " + run2 in out, out + err)
check("the stopped run's files are written", os.path.exists(os.path.join(run2, "dataset.jsonl")), err)
code, out, err = run_pipe(["--offline", "--resume", run2],
                          ":resume\n:wait\nc = require('moonloop.repl').attached().ctl:status()\n'resumed', c.done, c.total\n")
check("--resume continues the run to the end", "resumed\t12\t12" in out, out + err)

# --- Ctrl-C (SIGINT) cancels a slow request, not the process ----------------------------
mock = Mock("slow", "--latency", "30000")
try:
    env = base_env(OPENAI_BASE_URL=mock.url, OPENAI_API_KEY="sk-test-not-a-key")
    p = subprocess.Popen([MOONLOOP, "repl"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env, cwd=SOURCE)
    p.stdin.write("r = llm.chat{model = 'weak', prompt = 'slow'}\n")
    p.stdin.flush()
    time.sleep(0.8)
    t0 = time.time()
    p.send_signal(signal.SIGINT)
    p.stdin.write("'after ctrl-c', llm.stats().in_flight, r == nil\n")
    p.stdin.write(":limits inflight=5\n")
    p.stdin.write(":limits rpm=120 tpm=90000\n")
    p.stdin.flush()
    out, err = p.communicate(timeout=20)
    elapsed = time.time() - t0
    check("SIGINT cancels the pending llm.chat", "cancelled" in err, err)
    check("the REPL goes on after SIGINT", "after ctrl-c\t0\ttrue" in out and p.returncode == 0, out + err)
    check("cancelled quickly (%.2f s)" % elapsed, elapsed < 5, "")
    check(":limits applies the in-flight cap to the model in use",
          "max_inflight = 5" in out and "cap = 5" in out, out + err)
    check(":limits applies rpm and tpm to the model in use",
          "rpm = 120.0, tpm = 90000.0" in out, out + err)
finally:
    mock.close()

finish()

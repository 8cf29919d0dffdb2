"""Helpers for the REPL tests: checks that count, a mock server on a free loopback port, and a
real terminal through tmux (send-keys to type, capture-pane to read the screen).

Environment (set by tests/CMakeLists.txt): MOONLOOP (the binary), MOONLOOP_LUA_DIR,
ML_SOURCE_DIR (the repository), ML_SCRATCH (a scratch directory)."""
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

MOONLOOP = os.environ["MOONLOOP"]
SOURCE = os.environ.get("ML_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
SCRATCH = os.path.join(os.environ.get("ML_SCRATCH", "/tmp/moonloop-it"),
                       "%s.%d" % (os.path.basename(sys.argv[0]).replace(".py", ""), os.getpid()))
os.makedirs(SCRATCH, exist_ok=True)

passes = 0
fails = 0


def check(name, ok, detail=""):
    global passes, fails
    if ok:
        passes += 1
        print("ok   " + name, flush=True)
    else:
        fails += 1
        print("FAIL " + name, flush=True)
        if detail:
            print("     " + detail.replace("\n", "\n     "), flush=True)
    return ok


def finish():
    print("%d passed, %d failed" % (passes, fails), flush=True)
    sys.exit(1 if fails else 0)


def base_env(**extra):
    env = dict(os.environ)
    for k in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL",
              "XDG_CONFIG_HOME", "MOONLOOP_MODEL"):
        env.pop(k, None)
    env["XDG_STATE_HOME"] = os.path.join(SCRATCH, "state")
    env["HOME"] = SCRATCH  # no ~/.editrc or config of the machine's user
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Mock:
    """moonloop mock-server on a free port; .url is its /v1 base URL."""

    def __init__(self, name, *flags):
        port_file = os.path.join(SCRATCH, name + ".port")
        if os.path.exists(port_file):
            os.remove(port_file)
        self.log = os.path.join(SCRATCH, name + ".log")
        self.proc = subprocess.Popen(
            [MOONLOOP, "mock-server", "--port", "0", "--port-file", port_file, "--log", self.log]
            + list(flags), stdout=subprocess.DEVNULL, stderr=open(os.path.join(SCRATCH, name + ".err"), "w"))
        for _ in range(500):
            if os.path.exists(port_file) and open(port_file).read().strip():
                break
            if self.proc.poll() is not None:
                raise RuntimeError("mock server %s died" % name)
            time.sleep(0.02)
        self.url = "http://127.0.0.1:%s/v1" % open(port_file).read().strip()

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def run_pipe(args, stdin_text, env=None, timeout=60, cwd=None):
    """moonloop repl without a terminal: lines on stdin, results on stdout."""
    p = subprocess.run([MOONLOOP, "repl"] + args, input=stdin_text, capture_output=True,
                       text=True, env=env or base_env(), timeout=timeout, cwd=cwd or SOURCE)
    return p.returncode, p.stdout, p.stderr


class Term:
    """A moonloop process in a tmux pane of its own (a private tmux server per object)."""
    count = 0

    def __init__(self, args, env, width=110, height=40, cwd=None):
        if shutil.which("tmux") is None:
            raise RuntimeError("tmux is not installed (vendor/packages.txt lists it)")
        Term.count += 1
        self.sock = "mlrepl-%d-%d" % (os.getpid(), Term.count)
        assigns = " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in env.items()
                           if k in ("MOONLOOP_LUA_DIR", "XDG_STATE_HOME", "HOME", "OPENAI_BASE_URL",
                                    "OPENAI_API_KEY", "EDITOR", "PATH"))
        cmd = "cd %s && env -u OPENAI_API_KEY -u OPENAI_BASE_URL %s %s repl %s; echo \"[exited $?]\"; sleep 600" % (
            shlex.quote(cwd or SOURCE), assigns, shlex.quote(MOONLOOP),
            " ".join(shlex.quote(a) for a in args))
        subprocess.run(["tmux", "-L", self.sock, "-f", "/dev/null", "new-session", "-d",
                        "-x", str(width), "-y", str(height), cmd], check=True, env=env)

    def tmux(self, *args):
        return subprocess.run(["tmux", "-L", self.sock] + list(args), capture_output=True,
                              text=True)

    def type(self, text):
        self.tmux("send-keys", "-l", text)

    def keys(self, *keys):
        self.tmux("send-keys", *keys)

    def line(self, text):
        self.type(text)
        self.keys("Enter")

    def screen(self):
        out = self.tmux("capture-pane", "-p", "-J").stdout
        return "\n".join(l.rstrip() for l in out.rstrip("\n").split("\n"))

    def last_line(self):
        lines = self.screen().split("\n")
        return lines[-1] if lines else ""

    def wait_for(self, pattern, timeout=15.0):
        """Wait until the screen matches the regex; returns the match or None."""
        deadline = time.time() + timeout
        rx = re.compile(pattern, re.M)
        while True:
            m = rx.search(self.screen())
            if m or time.time() > deadline:
                return m
            time.sleep(0.05)

    def wait_last_line(self, text, timeout=10.0):
        """Wait until the last line of the screen is exactly text; returns whether it was."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.last_line() == text:
                return True
            time.sleep(0.05)
        return False

    def wait_prompt(self, timeout=15.0):
        """Wait for an empty prompt on the last line."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.last_line() == ">":
                return True
            time.sleep(0.05)
        return False

    def close(self):
        self.tmux("kill-server")
        path = os.path.join(os.environ.get("TMUX_TMPDIR", "/tmp"), "tmux-%d" % os.getuid(), self.sock)
        try:
            os.remove(path)  # tmux may leave its socket file behind
        except OSError:
            pass

#!/usr/bin/env bash
# The report as a browser sees it: headless Chromium opens report.html (a simulator run
# with a lineage of versions and hostile example text), and the test fails on any console
# message (an error, an uncaught exception, a blocked resource), on a page whose DOM lost
# charts to a parse problem, or when no screenshot comes out.
# Skipped (exit 77) where Chromium is not installed: `make deps` installs Debian's chromium.
source "$(dirname "$0")/lib.sh"
ML_SOURCE_DIR=${ML_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$SCRATCH"

CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROMIUM" ]; then
  echo "SKIP: chromium is not installed (make deps installs it; apt-get install chromium)"
  exit 77
fi

# chromium_run NAME ARGS...: headless, no sandbox (CI runs as root), no GPU, a private
# profile, page console messages logged to NAME.err.
chromium_run() {
  local name=$1; shift
  timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --no-first-run --disable-extensions --disable-background-networking \
    --user-data-dir="$SCRATCH/profile-$name" --enable-logging=stderr --v=0 "$@" \
    >"$name.out" 2>"$name.err"
}

# console_messages NAME: the page's console lines from a run (Chromium logs each as
# "...:INFO:CONSOLE(line)] "message", source: ...").
console_messages() { grep -a ':CONSOLE' "$1.err" || true; }

"$MOONLOOP" run --offline -q "$ML_SOURCE_DIR/recipes/agentic_self_instruct.lua" --out run \
  --iterations 2 --set batch=3 >run.out 2>&1 || { fail "simulator run" "$(tail -5 run.out)"; finish; }
"$MOONLOOP" run --trusted "$HERE/report_fixture.lua" run >fx.out 2>&1 || fail "fixture" "$(cat fx.out)"
"$MOONLOOP" report run >rep.out 2>&1 || { fail "moonloop report" "$(cat rep.out)"; finish; }
pass "report.html written"
page="file://$SCRATCH/run/report.html"

# The check itself must be able to fail: a page with a broken script is caught.
cat >broken.html <<'EOF'
<!DOCTYPE html><html><head><meta charset="utf-8"><title>broken</title></head>
<body><p>broken on purpose</p><script>undefined_function_of_the_test();</script></body></html>
EOF
chromium_run broken --dump-dom "file://$SCRATCH/broken.html" || true
if [ -n "$(console_messages broken)" ]; then
  pass "a page with a broken script is caught ($(console_messages broken | head -1 | sed 's/.*CONSOLE[^]]*] //' | cut -c1-70))"
else
  fail "the console check missed a broken script" "$(tail -5 broken.err)"
fi

chromium_run shot --screenshot="$SCRATCH/report.png" --window-size=1280,3000 "$page" ||
  fail "chromium --screenshot exited non-zero" "$(tail -5 shot.err)"
msgs=$(console_messages shot)
[ -z "$msgs" ] && pass "no console message while rendering" || fail "console messages" "$msgs"
if [ -s report.png ] && [ "$(head -c 8 report.png | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ]; then
  pass "a PNG screenshot came out ($(wc -c <report.png) bytes, in $SCRATCH)"
else
  fail "no PNG screenshot" "$(tail -5 shot.err)"
fi

chromium_run dom --dump-dom "$page" || fail "chromium --dump-dom exited non-zero" "$(tail -5 dom.err)"
msgs=$(console_messages dom)
[ -z "$msgs" ] && pass "no console message while parsing" || fail "console messages" "$msgs"
python3 - run/report.html dom.out <<'EOF' && pass "the parsed page keeps every chart and section" || fail "parsed DOM" "see above"
import sys
src = open(sys.argv[1], encoding="utf-8").read()
dom = open(sys.argv[2], encoding="utf-8", errors="replace").read()
bad = []
if src.count("<svg") != dom.count("<svg"): bad.append("svg: %d in the file, %d parsed" % (src.count("<svg"), dom.count("<svg")))
for sid in ["scores", "lineage", "cost", "latency", "failures", "examples"]:
    if 'id="%s"' % sid not in dom: bad.append("section %s lost" % sid)
if "<script" in dom.lower(): bad.append("a script element in the parsed page")
if "&lt;script&gt;alert(1)&lt;/script&gt;" not in dom: bad.append("the hostile question is not shown as text")
for b in bad: print("     " + b)
sys.exit(1 if bad else 0)
EOF

finish

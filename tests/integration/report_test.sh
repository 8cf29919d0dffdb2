#!/usr/bin/env bash
# moonloop report on real runs: a fresh simulator run, a fixture with a lineage of recipe
# versions and hostile model output, an old store without version rows, a run that is
# still going, and bad directories; then the request trace and its key scrubbing.
source "$(dirname "$0")/lib.sh"
ML_SOURCE_DIR=${ML_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
RECIPE=$ML_SOURCE_DIR/recipes/agentic_self_instruct.lua
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$SCRATCH"

"$MOONLOOP" run --offline -q "$RECIPE" --out run --iterations 2 --set batch=3 >run.out 2>&1 ||
  { fail "simulator run" "$(tail -5 run.out)"; finish; }
pass "a simulator run to report on"

# --- report on a fresh run -------------------------------------------------------------
if "$MOONLOOP" report run >rep.out 2>rep.err; then pass "moonloop report exits 0"; else fail "moonloop report" "$(cat rep.err)"; fi
expect_contains "it prints where the report is" rep.out "report: run/report.html"
expect_contains "it prints a short summary" rep.out "accepted examples: weak"
[ -s run/report.html ] && pass "report.html is written" || fail "no report.html"
ls run/report.html.tmp-* >/dev/null 2>&1 && fail "a temporary file was left behind" || pass "no temporary file left behind"
for id in scores lineage cost latency failures examples; do
  expect_contains "section $id" run/report.html "<section id=\"$id\">"
done
python3 - run/report.html <<'EOF' && pass "self-contained: no script, no external resource, valid UTF-8, bounded size" || fail "self-contained" "see above"
import re, sys
raw = open(sys.argv[1], "rb").read()
html = raw.decode("utf-8")  # raises on invalid UTF-8
bad = []
if re.search(r"<script", html, re.I): bad.append("a <script> element")
if re.search(r"""\b(src|href)\s*=\s*["']?(https?:)?//""", html, re.I): bad.append("an external src/href")
if re.search(r"@import|url\(", html, re.I): bad.append("a CSS import or url()")
if len(raw) > 2_000_000: bad.append("%d bytes" % len(raw))
if html.count("<svg") < 8: bad.append("only %d charts" % html.count("<svg"))
print("     %d bytes, %d svg elements" % (len(raw), html.count("<svg")))
if bad: print("     " + "; ".join(bad)); sys.exit(1)
EOF

# --- the text summary holds the numbers that are in run.db ------------------------------
inode=$(stat -c %i run/report.html)
"$MOONLOOP" report run --text >text.out 2>text.err || fail "report --text" "$(cat text.err)"
[ "$(stat -c %i run/report.html)" = "$inode" ] && pass "--text writes nothing" || fail "--text rewrote report.html"
python3 - run/run.db text.out <<'EOF' && pass "--text numbers match run.db" || fail "--text numbers" "see above"
import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
text = open(sys.argv[2]).read()
q = lambda s: db.execute(s).fetchone()
items, acc, exh = q("SELECT COUNT(*), SUM(status='accepted'), SUM(status='exhausted') FROM items")
weak, strong, gap = q("SELECT AVG(weak_mean), AVG(strong_mean), AVG(gap) FROM examples")
rounds = q("SELECT COUNT(*) FROM rounds")[0]
calls, tin, tout = q("SELECT COUNT(*), SUM(input_tokens), SUM(output_tokens) FROM journal")
judge = q("SELECT COUNT(*), SUM(input_tokens), SUM(output_tokens) FROM journal WHERE role='judge'")
it1 = q("SELECT COUNT(*), SUM(status='accepted') FROM items WHERE iteration = 1")
want = [
  "items: %d; accepted %d" % (items, acc),
  "exhausted %d" % exh,
  "weak %.2f, strong %.2f, gap %.2f" % (weak, strong, gap),
  "rounds: %d (" % rounds,
  "LLM calls: %d; tokens %d in, %d out" % (calls, tin, tout),
]
missing = [w for w in want if w not in text]
rows, section = {}, None
for l in text.splitlines():
    if l and not l.startswith(" "): section = l.split()[0] if l.split() else None
    elif l.strip() and section in ("Per", "By"): rows.setdefault(l.split()[0], l.split())
jr = rows.get("judge")
if not jr or jr[1:4] != [str(judge[0]), str(judge[1]), str(judge[2])]: missing.append("judge row %r" % (jr,))
r1 = rows.get("1")
if not r1 or r1[1] != str(it1[0]) or r1[3] != str(it1[1]): missing.append("iteration 1 row %r" % (r1,))
for m in missing: print("     missing: %s" % m)
sys.exit(1 if missing else 0)
EOF

# --- a lineage of versions and hostile model output --------------------------------------
mkdir -p fx && cp run/run.db fx/
"$MOONLOOP" run --trusted "$HERE/report_fixture.lua" fx >fx.out 2>&1 || fail "fixture" "$(cat fx.out)"
"$MOONLOOP" report fx >fxrep.out 2>fxrep.err || fail "report on the fixture" "$(cat fxrep.err)"
expect_contains "the summary counts kept and rejected versions" fxrep.out "recipe versions: 13 (4 kept, 8 rejected); current v12"
python3 - fx/report.html <<'EOF' && pass "lineage drawn; hostile text escaped" || fail "fixture report" "see above"
import sys
html = open(sys.argv[1], "rb").read().decode("utf-8")
bad = []
for raw in ["<script>alert(1)", "<script>alert(4)", "]]>", "onerror=alert(2)>", "<svg onload", "<b>multi-step</b>", "</div><svg"]:
    if raw in html: bad.append("raw %r" % raw)
for esc in ["&lt;script&gt;alert(1)&lt;/script&gt;", "]]&gt;", "&lt;img src=x onerror=alert(2)&gt;", "\ufffd"]:
    if esc not in html: bad.append("missing %r" % esc)
for want in ["Pass rate per recipe version", "Scores per recipe version", "v12 · kept · current", "v13 · rejected", 'class="tree"']:
    if want not in html: bad.append("missing %r" % want)
if html.count("<g><title>") != 13: bad.append("%d lineage nodes, want 13" % html.count("<g><title>"))
for b in bad: print("     " + b)
sys.exit(1 if bad else 0)
EOF
"$MOONLOOP" report fx --text >fxtext.out 2>&1 || fail "report --text on the fixture" "$(cat fxtext.out)"
expect_contains "the text lineage shows a rejected version and why" fxtext.out "v13 rejected  pass 45%"
expect_contains "the text lineage shows the kept line and the current version" fxtext.out "v12 kept (from v9), current  pass 90%"
if grep -q $'\xff' fxtext.out; then fail "invalid UTF-8 reached the text summary"; else pass "the text summary is valid UTF-8"; fi

# --- an older store: no recipe_versions rows, no evolution columns -----------------------
mkdir -p old && cp run/run.db old/
python3 -c 'import sqlite3,sys; db=sqlite3.connect(sys.argv[1]); db.execute("DROP TABLE recipe_versions"); db.commit()' old/run.db ||
  fail "could not make the old store"
if "$MOONLOOP" report old >old.out 2>old.err; then pass "a store without recipe_versions still reports"; else fail "old store" "$(cat old.err)"; fi
expect_contains "its one version comes from the items" old.out "recipe versions: 1"

# --- bad directories -----------------------------------------------------------------------
code=0; "$MOONLOOP" report does-not-exist >bad.out 2>bad.err || code=$?
[ "$code" -eq 2 ] && pass "a missing directory exits 2" || fail "missing directory exit code" "$code"
expect_contains "and says so" bad.err "does-not-exist: No such file or directory"
mkdir -p empty; code=0; "$MOONLOOP" report empty >bad.out 2>bad.err || code=$?
[ "$code" -eq 2 ] && pass "a directory without run.db exits 2" || fail "no run.db exit code" "$code"
expect_contains "and says it is not a run directory" bad.err "empty is not a run directory (it has no run.db"
mkdir -p junk && echo "not sqlite" >junk/run.db; code=0; "$MOONLOOP" report junk >bad.out 2>bad.err || code=$?
[ "$code" -eq 2 ] && pass "a run.db that is not a database exits 2" || fail "junk run.db exit code" "$code"
expect_contains "and names the file" bad.err "junk/run.db: cannot read"
code=0; "$MOONLOOP" report >bad.out 2>bad.err || code=$?
[ "$code" -eq 2 ] && pass "no directory is bad usage" || fail "no argument exit code" "$code"
code=0; "$MOONLOOP" report run --nope >bad.out 2>bad.err || code=$?
[ "$code" -eq 2 ] && pass "an unknown option is bad usage" || fail "unknown option exit code" "$code"
"$MOONLOOP" --help | grep -q "moonloop report RUN_DIR" && pass "--help lists report" || fail "--help lists report"

# --- a run that is still going --------------------------------------------------------------
start_mock live --sim --latency 40
cat >live.lua <<EOF
return { providers = { mock = { kind = "openai", base_url = "$MOCK_URL" } }, default_provider = "mock" }
EOF
"$MOONLOOP" run -q "$RECIPE" --config live.lua --out live --iterations 1 --set batch=4 >live.out 2>&1 &
run_pid=$!
for _ in $(seq 200); do
  [ -s live/run.db ] && python3 -c 'import sqlite3,sys; sys.exit(0 if sqlite3.connect("file:live/run.db?mode=ro", uri=True).execute("SELECT COUNT(*) FROM journal").fetchone()[0] > 5 else 1)' 2>/dev/null && break
  sleep 0.05
done
mid=0
for _ in 1 2 3; do
  if "$MOONLOOP" report live >>live-rep.out 2>>live-rep.err; then mid=$((mid + 1)); fi
  sleep 0.2
done
running=0; kill -0 "$run_pid" 2>/dev/null && running=1
[ "$mid" -eq 3 ] && pass "report works while the run writes (run still going: $running)" || fail "mid-run report" "$(cat live-rep.err)"
grep -q "not finished" live-rep.out && pass "the mid-run summary says what is not finished" || fail "mid-run summary" "$(head -3 live-rep.out)"
if wait "$run_pid"; then pass "the run finished normally alongside the reports"; else fail "the live run failed" "$(tail -5 live.out)"; fi
"$MOONLOOP" report live >live-end.out 2>&1 && expect_contains "and the final report counts the finished iteration" live-end.out "4 of 12 items done"

# --- the request trace --------------------------------------------------------------------
cat >trace.lua <<'EOF'
local trace = require "moonloop.trace"
local dir, key = arg[1], os.getenv("REPORT_TEST_API_KEY")
local t = trace.open(dir)
t:record{ role = "weak", model = "weak", provider = "sim", item = 3, round = 2, sample = 1,
  system = "key " .. key, recipe_version = 2, latency_ms = 12.5, usage = { input = 10, output = 4 },
  cache_hit = true, replayed = false, headers = { Authorization = "Bearer " .. key },
  messages = { { role = "user", content = "my key " .. key .. ", Bearer abcdefghijklmnopqrstuvwxyz0123, sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX" } },
  response = "echo " .. key .. " and bad bytes \255 here" }
local f = io.open(dir .. "/trace.jsonl", "rb")
local _, lines = f:read("a"):gsub("\n", "")
f:close()
print("flushed lines before close: " .. lines)
t:record{ role = "judge", model = "judge", messages = "a plain prompt", replayed = true,
  error = setmetatable({}, { __tostring = function() return "HTTP 401, x-api-key: " .. key end }) }
t:close()
EOF
mkdir -p tr
REPORT_TEST_API_KEY=fake-key-4f9a0c1e77b2d3 "$MOONLOOP" run --trusted trace.lua tr >trace.out 2>&1 || fail "trace script" "$(cat trace.out)"
expect_contains "each line is flushed as it is written" trace.out "flushed lines before close: 1"
if [ ! -s tr/trace.jsonl ]; then
  fail "no trace.jsonl was written"
elif grep -q "fake-key-4f9a0c1e77b2d3\|abcdefghijklmnopqrstuvwxyz0123\|sk-proj-ABCD" tr/trace.jsonl; then
  fail "a key reached trace.jsonl" "$(cat tr/trace.jsonl)"
else
  pass "no key, bearer token or sk- key in trace.jsonl"
fi
python3 - tr/trace.jsonl <<'EOF' && pass "trace lines parse and hold the request" || fail "trace lines" "see above"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
bad = []
if len(lines) != 2: bad.append("%d lines" % len(lines))
a = lines[0]
for k, v in [("role", "weak"), ("model", "weak"), ("item", 3), ("round", 2), ("recipe_version", 2),
             ("latency_ms", 12.5), ("cache_hit", True), ("replayed", False), ("usage", {"input": 10, "output": 4})]:
    if a.get(k) != v: bad.append("%s = %r" % (k, a.get(k)))
if "headers" in a: bad.append("headers were written")
if "[redacted]" not in a["messages"][0]["content"]: bad.append("prompt not scrubbed")
if not a["response"].startswith("echo [redacted]"): bad.append("response %r" % a["response"])
b = lines[1]
if b["messages"] != [{"role": "user", "content": "a plain prompt"}] or not b["replayed"]: bad.append("second line %r" % b)
if "[redacted]" not in b.get("error", ""): bad.append("error not scrubbed")
for x in bad: print("     " + x)
sys.exit(1 if bad else 0)
EOF
echo 'print("trace option: " .. tostring(package.loaded["moonloop.cli"].trace))' >opt.lua
"$MOONLOOP" run --offline --trusted --trace opt.lua >opt.out 2>&1 || true
expect_contains "moonloop run --trace reaches the run options" opt.out "trace option: true"
"$MOONLOOP" run --help | grep -q -- "--trace" && pass "run --help documents --trace" || fail "run --help lacks --trace"

finish

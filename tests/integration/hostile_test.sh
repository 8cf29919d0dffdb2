#!/usr/bin/env bash
# Hostile input: malformed configs and recipes, huge and endless responses, bytes that are
# not UTF-8, deeply nested JSON, a recipe that floods memory or loops, and a model that
# answers with a Lua program that tries to escape. Each case checks its own specific error
# (and that nothing crashed, hung or grew without bound).
#
# A case marked KNOWN documents a defect that is reported but not fixed yet (in a file owned
# by someone else): it prints "known" and does not fail the suite while the defect is there,
# and prints "ok" once it is fixed. HOSTILE_STRICT=1 turns every KNOWN into a failure.
source "$(dirname "$0")/lib.sh"
ML_SOURCE_DIR=${ML_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
HOSTILE=$ML_SOURCE_DIR/tests/integration/hostile
FLAGSHIP=$ML_SOURCE_DIR/recipes/agentic_self_instruct.lua
cd "$SCRATCH"
export OPENAI_API_KEY=sk-hostile-test
KNOWN=0
# Memory ceilings are checked only on a plain build: AddressSanitizer's shadow memory and
# quarantine inflate RSS by hundreds of MiB.
PLAIN=1
if ldd "$MOONLOOP" 2>/dev/null | grep -qE 'libasan|libubsan'; then PLAIN=0; fi
under() { [ "$PLAIN" = 0 ] || [ "$1" -lt "$2" ]; } # under PEAK_KIB LIMIT_KIB
known() { # known NAME DETAIL: a reported defect still present
  if [ "${HOSTILE_STRICT:-0}" = 1 ]; then fail "$1" "$2"; else
    KNOWN=$((KNOWN + 1)); echo "known $1"; echo "     $2"; fi
}

# run_case NAME WANT_EXIT PATTERN -- CMD...: the command exits with WANT_EXIT ("nonzero" for
# any failure) and its output matches the extended regex PATTERN. Output in NAME.out.
run_case() {
  local name=$1 want=$2 pattern=$3
  shift 4
  local code=0 out="${name// /_}.out"
  timeout 60 "$@" >"$out" 2>&1 || code=$?
  local ok=1
  if [ "$want" = nonzero ]; then [ "$code" -ne 0 ] && [ "$code" -lt 124 ] || ok=0;
  else [ "$code" -eq "$want" ] || ok=0; fi
  if [ $ok -eq 1 ] && grep -qE -- "$pattern" "$out"; then
    pass "$name"
  else
    fail "$name" "exit $code (want $want), want /$pattern/ in: $(head -c 400 "$out")"
  fi
}

# peak_kib CMD...: runs CMD with its output in peak.out and prints its peak resident
# memory in KiB.
peak_kib() {
  python3 - "$@" <<'EOF'
import resource, subprocess, sys
with open("peak.out", "wb") as out:
    subprocess.run(sys.argv[1:], stdout=out, stderr=subprocess.STDOUT, timeout=120)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
EOF
}

echo 'print("script ran")' >script.lua

# ---- configs: each refused with exit 2 and a message naming the file and the key --------
cfg() { printf '%s\n' "$2" >"$1.cfg.lua"; }
cfg syntax 'return { providers = { a = { kind = "sim" }'
run_case "config: syntax error" 2 "syntax.cfg.lua:[0-9]+: .*expected" -- \
  "$MOONLOOP" run --config syntax.cfg.lua script.lua
cfg notable 'return "openai"'
run_case "config: returns a string" 2 "notable.cfg.lua: \(file\): must return a table \(got string\)" -- \
  "$MOONLOOP" run --config notable.cfg.lua script.lua
cfg unknown 'return { providers = { a = { kind = "sim" } }, modles = {} }'
run_case "config: unknown top-level key" 2 "unknown key 'modles' \(known keys: providers, models" -- \
  "$MOONLOOP" run --config unknown.cfg.lua script.lua
cfg wrongtype 'return { providers = { a = { kind = "openai", base_url = 42 } } }'
run_case "config: base_url of the wrong type" 2 "providers.a: 'base_url' must be a string" -- \
  "$MOONLOOP" run --config wrongtype.cfg.lua script.lua
cfg scheme 'return { providers = { a = { kind = "openai", base_url = "file:///etc/passwd" } } }'
run_case "config: base_url that is not http(s)" 2 'base_url "file:///etc/passwd" must start with http:// or https://' -- \
  "$MOONLOOP" run --config scheme.cfg.lua script.lua
cfg nan 'return { providers = { a = { kind = "openai", base_url = "http://127.0.0.1:9/v1", timeout_ms = 0/0 } } }'
run_case "config: NaN timeout" 2 "providers.a: 'timeout_ms' must be a non-negative number" -- \
  "$MOONLOOP" run --config nan.cfg.lua script.lua
cfg huge 'return { providers = { a = { kind = "sim", max_inflight = 1e300 } } }'
run_case "config: 1e300 in an int field" 2 "providers.a: 'max_inflight' is too large" -- \
  "$MOONLOOP" run --config huge.cfg.lua script.lua
cfg badutf8 "return { providers = { a = { kind = 'sim', model = 'sim\\255x' } } }"
run_case "config: a model name that is not UTF-8" 2 "providers.a: 'model' is not valid UTF-8 \(byte 4\)" -- \
  "$MOONLOOP" run --config badutf8.cfg.lua script.lua
cfg meta 'return setmetatable({ providers = { a = { kind = "sim" } } },
  { __index = function(_, k) error("no field " .. k) end })'
run_case "config: a metatable that raises (was an abort)" 2 "meta.cfg.lua: error while reading the returned table: meta.cfg.lua:2: no field" -- \
  "$MOONLOOP" run --config meta.cfg.lua script.lua
cfg noglobals 'table = nil; string = nil; return { providers = { b = { kind = "sim" }, a = { kind = "sim" } }, default_provider = "a" }'
run_case "config: removes the global table (was an abort)" 0 "script ran" -- \
  "$MOONLOOP" run --config noglobals.cfg.lua script.lua
cfg loop 'local n = 0
while true do n = n + 1 end'
run_case "config: an endless loop is stopped" 2 "loop.cfg.lua:2: the config ran for more than 500 million instructions" -- \
  "$MOONLOOP" run --config loop.cfg.lua script.lua
cfg flood 'local t = {}
for i = 1, 1e9 do t[i] = ("x"):rep(1000) .. i end'
run_case "config: a memory flood is stopped" 2 "flood.cfg.lua: the config used more than 64 MiB of memory" -- \
  "$MOONLOOP" run --config flood.cfg.lua script.lua
python3 -c 'print("return " + "{" * 100000 + "}" * 100000)' >deep.cfg.lua
run_case "config: nested 100,000 deep" 2 "deep.cfg.lua:.*(overflow|too many)" -- \
  "$MOONLOOP" run --config deep.cfg.lua script.lua
printf '\033Lua\124\000garbage' >bytecode.cfg.lua
run_case "config: precompiled bytecode is refused" 2 "bytecode.cfg.lua: .*attempt to load a binary chunk" -- \
  "$MOONLOOP" run --config bytecode.cfg.lua script.lua

# ---- recipes ------------------------------------------------------------------------------
mkdir -p rdata
printf 'Write-ahead logging: every change is appended to the log before the page is written.\n' >rdata/good.txt
recipe() { # recipe FILE SOURCES [sed expression]: the flagship with other sources
  sed -e "s|^  sources = \"data/\*.txt\",|  sources = \"$2\",|" ${3:+-e "$3"} "$FLAGSHIP" >"$1"
}
recipe typo.lua "rdata/*.txt" 's|^  max_rounds = |  max_rundos = |'
run_case "recipe: unknown field" 2 'typo.lua:[0-9]+: recipe agentic_self_instruct: unknown field "max_rundos"' -- \
  "$MOONLOOP" run --offline typo.lua --out r-typo
recipe type.lua "rdata/*.txt" 's|^  max_rounds = [0-9]*|  max_rounds = "many"|'
run_case "recipe: a field of the wrong type" 2 'type.lua:[0-9]+: recipe agentic_self_instruct: field "max_rounds" must be a number, got string' -- \
  "$MOONLOOP" run --offline type.lua --out r-type
printf 'local asi = require "moonloop.asi"\nreturn asi.recipe { name = "x",\n' >cut.lua
run_case "recipe: cut off mid-table" 2 "cut.lua:3: .*near <eof>" -- "$MOONLOOP" run --offline cut.lua --out r-cut
recipe nomatch.lua "nothing/*.txt"
run_case "recipe: sources that match nothing" nonzero 'sources "nothing/\*.txt" matched no file' -- \
  "$MOONLOOP" run --offline nomatch.lua --out r-nomatch
recipe nan.lua "rdata/*.txt" 's|gap_min = 0.20|gap_min = 0/0|'
code=0; timeout 60 "$MOONLOOP" run --offline nan.lua --out r-nan --set max_rounds=1 >nan.out 2>&1 || code=$?
if [ "$code" -eq 2 ] && grep -qE "nan.lua:[0-9]+: .*gap_min" nan.out; then pass "recipe: a NaN threshold"; else
  known "recipe: a NaN threshold is accepted (exit $code)" "accept.gap_min = 0/0 makes every comparison false; asi.recipe should refuse it with the file and line like any other bad threshold"; fi

# A recipe that floods memory or loops forever is killed by the sandbox, with its line, and
# the kill cannot be caught by its own pcall.
cat >flood.lua <<'EOF'
local asi = require "moonloop.asi"
local hog = {}
local ok = pcall(function()
  for i = 1, 1024 do hog[i] = string.rep("x", 1 << 20) .. i end -- 1 GiB unless stopped
end)
hog = nil
return asi.recipe { name = "flood-caught-" .. tostring(ok) }
EOF
peak=$(peak_kib "$MOONLOOP" run --offline flood.lua --out r-flood)
if grep -qE "flood.lua:[0-9]+: killed: memory limit of [0-9]+ MiB exceeded" peak.out &&
  ! grep -q "flood-caught" peak.out && under "$peak" 400000; then
  pass "recipe: a memory flood is killed at its line, through pcall (peak RSS $((peak / 1024)) MiB)"
else
  fail "recipe memory flood" "peak ${peak} KiB: $(head -c 400 peak.out)"
fi
mkdir -p fdata
cp rdata/good.txt fdata/
recipe hook.lua "fdata/*.txt" 's|^  max_rounds = |  check_example = function() local t = {} for i = 1, 1024 do t[i] = ("y"):rep(1 << 20) .. i end return { pass = true } end,\n  max_rounds = |'
peak=$(peak_kib "$MOONLOOP" run --offline hook.lua --out r-hook)
if grep -qE "item 1 \(good.txt\) failed: hook.lua:[0-9]+: killed: memory limit of [0-9]+ MiB exceeded" peak.out &&
  under "$peak" 400000; then
  pass "recipe: a hook that floods memory at run time fails its item with the kill (peak $((peak / 1024)) MiB)"
else
  fail "recipe hook memory flood" "peak ${peak} KiB: $(head -c 400 peak.out)"
fi
printf 'local asi = require "moonloop.asi"\nwhile true do end\n' >spin.lua
run_case "recipe: an endless loop is killed" nonzero "spin.lua:2: killed: instruction limit" -- \
  "$MOONLOOP" run --offline spin.lua --out r-spin

# Source files with bytes that are not UTF-8: that item fails with a message naming the file
# and the problem; the other items still run, and every line written is valid UTF-8 JSON.
printf 'Some text \377\376 with \342\202 broken sequences and an overlong \300\257 slash.\n' >rdata/bad.txt
recipe utf8.lua "rdata/*.txt"
code=0; "$MOONLOOP" run --offline utf8.lua --out r-utf8 --set max_rounds=2 >utf8.out 2>&1 || code=$?
if [ "$code" -eq 0 ] && grep -qE "item [0-9]+ \(bad.txt\) failed: .*invalid UTF-8" utf8.out &&
  python3 - <<'EOF'
import json, sqlite3
for name in ("r-utf8/dataset.jsonl", "r-utf8/rejected.jsonl"):
    for line in open(name, "rb"):
        json.loads(line.decode("utf-8"))  # raises on bytes that are not UTF-8
db = sqlite3.connect("r-utf8/run.db")
done = db.execute("SELECT count(*) FROM items WHERE status != 'failed'").fetchone()[0]
assert done >= 1, "the good file's item did not run"
EOF
then pass "recipe: a source with invalid UTF-8 fails alone, with its name; the files stay valid"
else fail "recipe with an invalid UTF-8 source" "exit $code: $(grep -i "utf\|error" utf8.out | head -3)"; fi

# ---- hostile servers ----------------------------------------------------------------------
export HOSTILE_MARK=$SCRATCH/escaped-marker
start_mock hostile --answer "$HOSTILE/answers.lua"
MOCKH=$MOCK_URL
python3 "$HOSTILE/server.py" >raw.port 2>raw.stderr &
MOCK_PIDS+=($!)
for _ in $(seq 100); do [ -s raw.port ] && break; sleep 0.05; done
RAW="http://127.0.0.1:$(cat raw.port)/v1"
cat >hostile.cfg.lua <<LUA
return { providers = {
  mock = { kind = "openai", base_url = "$MOCKH", api_key_env = "OPENAI_API_KEY", max_attempts = 1 },
  raw = { kind = "openai", base_url = "$RAW", api_key_env = "OPENAI_API_KEY", max_attempts = 1,
          timeout_ms = 30000 } }, default_provider = "mock" }
LUA
# One line per case: "CASE name ok <bytes> <encodes>" or "CASE name err <message>". Run
# trusted: these scripts name providers directly ("raw/m"), which sandboxed code cannot.
cat >calls.lua <<'EOF'
local cases = {
  { "huge", "mock/m", "HUGE" }, { "huge_stream", "mock/m", "HUGE", true },
  { "deepjson", "mock/m", "DEEPJSON" }, { "rawutf8", "raw/m", "RAWUTF8" },
  { "rawutf8_stream", "raw/m", "RAWUTF8", true }, { "deepbody", "raw/m", "DEEPBODY" },
  { "endless", "raw/m", "ENDLESS" }, { "hugeerror", "raw/m", "HUGEERROR" },
  { "headerflood", "raw/m", "HEADERFLOOD" },
}
for _, c in ipairs(cases) do
  local ok, r = pcall(llm.chat, { model = c[2], prompt = c[3], stream = c[4] and function() end or nil })
  if ok then
    local enc = pcall(json.encode, { text = r.text })
    print(("CASE %s ok %d %s"):format(c[1], #r.text, enc and "encodes" or "does-not-encode"))
    if c[1] == "deepjson" then
      print("CASE deepjson_decode " .. select(2, pcall(json.decode, r.text)))
      print("CASE deepjson_extract " .. select(2, pcall(json.extract, r.text)))
    end
  else
    print(("CASE %s err %s"):format(c[1], tostring(r):gsub("\n", " ")))
  end
end
local deep = {}
local t = deep
for _ = 1, 100000 do t[1] = {}; t = t[1] end
print("CASE encode_deep " .. select(2, pcall(json.encode, deep)))
print("CASE decode_deep " .. select(2, pcall(json.decode, ("["):rep(1e6) .. ("]"):rep(1e6))))
EOF
peak=$(peak_kib "$MOONLOOP" run --trusted --config hostile.cfg.lua calls.lua)
cp peak.out calls.out
case_line() { sed -n "s/^CASE $1 //p" calls.out | head -1; }
expect_case() { # expect_case NAME REGEX DESCRIPTION
  local got; got=$(case_line "$1")
  if grep -qE -- "$2" <<<"$got"; then pass "$3"; else fail "$3" "got: ${got:-(no line; $(tail -3 calls.out))}"; fi
}
expect_case huge "^err .*response larger than the 33554432-byte limit" "a 40 MiB answer is cut at the 32 MiB cap with a clear error"
expect_case huge_stream "^err .*exceeds the configured limit" "a streamed answer with 5 MiB events is refused (event size limit)"
expect_case endless "^err .*response larger than the 33554432-byte limit" "an endless body stops at the 32 MiB cap"
expect_case hugeerror "^err .*HTTP 500.*response larger than the 33554432-byte limit" "a 40 MiB error body is capped too"
expect_case deepbody "^err .*unusable answer.*not valid JSON" "a response body nested 100,000 deep is an unusable answer, not a stack overflow"
expect_case headerflood "^err .*transport error" "20,000 response headers end in a transport error"
expect_case deepjson "^ok 200000 encodes" "an answer nested 100,000 deep arrives as text"
expect_case deepjson_decode "nested deeper than 200" "json.decode of it: nested deeper than 200"
expect_case deepjson_extract "nested deeper than 200" "json.extract of it: nested deeper than 200"
expect_case encode_deep "nested deeper than 200" "json.encode of a table nested 100,000 deep is refused"
expect_case decode_deep "nested deeper than 200" "json.decode of 1,000,000 brackets is refused"
under "$peak" 600000 && pass "all of it within $((peak / 1024)) MiB of memory" ||
  fail "memory while reading hostile responses" "peak ${peak} KiB"
for c in rawutf8 rawutf8_stream; do
  got=$(case_line $c)
  if grep -qE "^err .*UTF-8|^ok [0-9]+ encodes" <<<"$got"; then
    pass "$c: text that is not UTF-8 is refused or repaired"
  else
    known "$c: llm.chat returns text that is not UTF-8 ($got)" "the answer passes through and fails later in json.encode (dataset, journal); openai.c/anthropic.c should refuse it as an unusable answer naming the byte, or replace it"
  fi
done

# An endless event stream must stop at the response cap like a plain body.
cat >sse.lua <<'EOF'
local ok, r = pcall(llm.chat, { model = "raw/m", prompt = "ENDLESSSSE", stream = function() end })
print("CASE endless_sse " .. (ok and ("ok " .. #r.text) or ("err " .. tostring(r))))
EOF
peak=$(peak_kib "$MOONLOOP" run --trusted --config hostile.cfg.lua sse.lua)
got=$(sed -n 's/^CASE endless_sse //p' peak.out)
if grep -qE "^err .*larger than the 33554432-byte limit" <<<"$got"; then
  pass "an endless event stream stops at the 32 MiB cap"
else
  known "an endless event stream is not capped: ${got:0:160} (peak $((peak / 1024)) MiB)" "engine.c checks max_body only for plain bodies; the SSE branch of on_write should count bytes_in against it too, else a server can grow the text without bound"
fi

# ---- a model that answers with a Lua program that tries to escape -------------------------
# The code_verified path: the answer's code is run by verify.code. It must not reach the
# host: no marker file, no file read, no passing score.
cat >escape.lua <<'EOF'
local verify = require "moonloop.verify"
local r = llm.chat { model = "mock/m", prompt = "ESCAPE" }
local v = verify.code { source = verify.extract_code(r.text), tests = { { args = {}, expected = 1 } } }
print(("CASE escape passed=%s error=%s"):format(v.passed, tostring(v.error)))
EOF
"$MOONLOOP" run --trusted --config hostile.cfg.lua escape.lua >escape.out 2>&1 || true
got=$(sed -n 's/^CASE escape //p' escape.out)
if [ ! -e "$HOSTILE_MARK" ] && grep -q "^passed=0" <<<"$got"; then
  pass "verify.code: an escaping answer reaches nothing ($got)"
elif [ -z "$got" ]; then
  fail "verify.code on an escaping answer" "$(tail -5 escape.out)"
else
  known "verify.code: an answer's code escapes (marker written: $([ -e "$HOSTILE_MARK" ] && echo yes || echo no); $got)" "the harness dofile()s solution.lua with the full standard library (moonloop run --trusted in the child); it should load the solution in the sandbox"
  rm -f "$HOSTILE_MARK"
fi

# The self-edit path: an analyst answer that rewrites a region with escaping code. edit.apply
# may accept the text (it only edits the region), but loading the new recipe in the sandbox
# must fail without touching the host.
if [ -f "$ML_SOURCE_DIR/lua/moonloop/edit.lua" ]; then
  cat >selfedit.lua <<EOF
local edit = require "moonloop.edit"
local sandbox = require "moonloop.sandbox"
local f = assert(io.open("$FLAGSHIP", "rb")); local source = f:read("a"); f:close()
local answer = table.concat({
  "<<<<<<< SEARCH challenger_prompt",
  source:match("%-%- @editable challenger_prompt\n(.-)\n[^\n]*%-%- @end"),
  "=======",
  '  challenger_prompt = (function() os.execute("touch $HOSTILE_MARK"); io.open("$HOSTILE_MARK", "w") return "x" end)(),',
  ">>>>>>> REPLACE" }, "\n")
local new, err = edit.apply(source, answer, {})
if not new then print("CASE selfedit refused " .. tostring(err)); return end
local ok, e = pcall(sandbox.load_recipe, new, "edited.lua")
print("CASE selfedit " .. (ok and "loaded" or ("failed " .. tostring(e):gsub("\n", " "))))
EOF
  "$MOONLOOP" run --trusted --offline selfedit.lua >selfedit.out 2>&1 || true
  got=$(sed -n 's/^CASE selfedit //p' selfedit.out)
  if [ ! -e "$HOSTILE_MARK" ] && grep -qE "^(refused|failed .*(execute|nil value))" <<<"$got"; then
    pass "self-edit: escaping code in a region is refused or fails in the sandbox ($got)"
  else
    fail "self-edit with escaping code" "marker: $([ -e "$HOSTILE_MARK" ] && echo written || echo absent); ${got:-$(tail -3 selfedit.out)}"
  fi
else
  echo "     (lua/moonloop/edit.lua is not in this tree yet: the self-edit escape case is skipped)"
fi

echo "     $KNOWN known defect(s) reported above"
finish

#!/usr/bin/env bash
# Recipes end to end on the simulator, in-process and through the mock server; --json
# events; moonloop check; broken recipes reported with file and line.
source "$(dirname "$0")/lib.sh"
ML_SOURCE_DIR=${ML_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
R=$ML_SOURCE_DIR/recipes
cd "$SCRATCH"

"$MOONLOOP" run --offline -q "$R/agentic_self_instruct.lua" --out inproc --seed 3 >inproc.out 2>&1 &&
  pass "the flagship runs in-process on the simulator" || fail "in-process run" "$(tail -5 inproc.out)"
n=$(wc -l <inproc/dataset.jsonl)
[ "$n" -gt 0 ] && pass "it accepts examples ($n of 12 items)" || fail "no example accepted"
python3 - inproc/dataset.jsonl <<'PY' && pass "every example has chat messages, a rubric and provenance" || fail "dataset records are incomplete"
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    assert [m["role"] for m in e["messages"]] == ["user", "assistant"], e["messages"]
    assert len(e["rubric"]) >= 2
    p = e["provenance"]
    for k in ("recipe", "recipe_version", "models", "weak_scores", "strong_scores", "rounds", "gap"):
        assert k in p, k
    assert p["weak_mean"] <= 0.65 + 1e-9 and p["gap"] >= 0.2 - 1e-9 and 0.6 <= p["strong_mean"] < 0.95
PY
python3 - inproc/rejected.jsonl <<'PY' && pass "rejected rounds carry a category and a reason" || fail "rejected rounds lack categories"
import json, sys
cats = set()
for line in open(sys.argv[1]):
    r = json.loads(line)
    assert r["reason"], r
    cats.add(r["category"])
assert cats <= {"too_easy", "failed_on_strong", "failed_quality", "error"}, cats
assert "too_easy" in cats, cats
PY
[ -s inproc/recipes/v0001.lua ] && pass "the recipe version is stored in the run directory" || fail "recipes/v0001.lua missing"

start_mock sim --sim --latency 2
OPENAI_BASE_URL=$MOCK_URL OPENAI_API_KEY=x "$MOONLOOP" run -q "$R/agentic_self_instruct.lua" --out http --seed 3 >http.out 2>&1 &&
  pass "the flagship runs through the mock server" || fail "run through the mock server" "$(tail -5 http.out)"
cmp -s inproc/dataset.jsonl http/dataset.jsonl && pass "in-process and HTTP give the same dataset for a seed" ||
  fail "in-process and HTTP datasets differ"

"$MOONLOOP" run --offline "$R/cot_self_instruct.lua" --out json --json >json.out 2>json.err &&
  python3 - json.out <<'PY' && pass "--json writes item events and a summary on stdout" || fail "--json events" "$(head -3 json.out)"
import json, sys
events = [json.loads(l) for l in open(sys.argv[1])]
kinds = {e["event"] for e in events}
assert "item" in kinds and events[-1]["event"] == "summary", kinds
s = events[-1]
assert s["accepted"] > 0 and abs(s["gap"]) < 0.2, s
PY

"$MOONLOOP" run --offline -q "$R/code_verified.lua" --out code >code.out 2>&1 &&
  pass "code_verified runs, checking code in subprocesses" || fail "code_verified" "$(tail -5 code.out)"
python3 - code/dataset.jsonl <<'PY' && pass "code_verified keeps tasks the weak code fails and the strong code passes" || fail "code_verified dataset"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert rows, "no accepted task"
for e in rows:
    assert e["tests"] and "solve" in e["reference_answer"], e
    p = e["provenance"]
    assert p["weak_mean"] <= 0.65 + 1e-9 and p["strong_mean"] >= 0.6 - 1e-9, p
PY

"$MOONLOOP" check "$R/agentic_self_instruct.lua" >check.out 2>&1 && pass "moonloop check passes the flagship" ||
  fail "moonloop check" "$(cat check.out)"
expect_contains "check lists the editable region" check.out "challenger_prompt"
expect_contains "check bounds one iteration" check.out "at most 1344 calls"

mkdir -p bad/data && cp "$R/data/bloom_filters.txt" bad/data/
printf 'local asi = require "moonloop.asi"\nreturn asi.recipe {\n  name = "broken",\n  sources = "data/*.txt"\n  challenger_prompt = "x",\n}\n' >bad/syntax.lua
set +e; "$MOONLOOP" run --offline bad/syntax.lua >syntax.out 2>&1; code=$?; set -e
[ $code -eq 2 ] && pass "a recipe with a syntax error exits 2" || fail "syntax error exit code" "got $code"
expect_contains "the syntax error names file and line" syntax.out "syntax.lua:5:"
printf 'local asi = require "moonloop.asi"\nreturn asi.recipe {\n  name = "broken",\n  sources = "data/*.txt",\n  challenger_prompt = "x",\n  max_round = 3,\n}\n' >bad/field.lua
set +e; "$MOONLOOP" run --offline bad/field.lua >field.out 2>&1; code=$?; set -e
[ $code -eq 2 ] && pass "a recipe with an unknown field exits 2" || fail "unknown field exit code" "got $code"
expect_contains "the recipe error names file, line and field" field.out 'field.lua:6: recipe broken: unknown field "max_round"'
printf 'local asi = require "moonloop.asi"\nlocal r = asi.recipe { name = "rt", sources = "data/*.txt", challenger_prompt = "x" }\nlocal n = nil\nreturn n.field\n' >bad/runtime.lua
set +e; "$MOONLOOP" run --offline bad/runtime.lua >runtime.out 2>&1; code=$?; set -e
[ $code -eq 1 ] && pass "a recipe with a runtime error exits 1" || fail "runtime error exit code" "got $code"
expect_contains "the runtime error names file and line" runtime.out "runtime.lua:4:"
[ ! -e runs ] && pass "a recipe that fails to load leaves no run directory behind" || fail "a failed load created runs/"
finish

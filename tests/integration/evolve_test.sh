#!/usr/bin/env bash
# Evolution survives kill -9: a run killed several times while its generations are under
# way, and resumed each time, ends with the same recipe lineage (every version, status,
# score and reason) and the same dataset as an uninterrupted run of the same seed. Also
# checks `moonloop recipe log|show|diff|revert` on the result.
source "$(dirname "$0")/lib.sh"
ML_SOURCE_DIR=${ML_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
RECIPE=$ML_SOURCE_DIR/recipes/evolve_demo.lua
cd "$SCRATCH"
unset OPENAI_API_KEY OPENAI_BASE_URL ANTHROPIC_API_KEY
SETS=(--set evolve.validation=6 --set evolve.rounds=3 --set max_rounds=3)

"$MOONLOOP" run -q --offline "$RECIPE" --out ref --seed 11 "${SETS[@]}" >ref.out 2>&1 ||
  { fail "reference run" "$(tail -5 ref.out)"; finish; }
"$MOONLOOP" recipe log ref >ref.log
kept=$(grep -c ' kept ' ref.log || true)
rejected=$(grep -c ' rejected ' ref.log || true)
[ "$kept" -ge 1 ] && [ "$rejected" -ge 1 ] && pass "reference run: $kept kept, $rejected rejected versions" ||
  fail "reference lineage" "$(cat ref.log)"

kills=0
for delay in 0.3 0.5 0.7 0.9 1.1 1.3; do
  if [ -d crash ]; then args=(--resume crash); else args=("$RECIPE" --out crash --seed 11 "${SETS[@]}"); fi
  "$MOONLOOP" run -q --offline "${args[@]}" >>crash.out 2>&1 &
  pid=$!
  sleep "$delay"
  if kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
  wait "$pid" 2>/dev/null || true
done
"$MOONLOOP" run -q --offline --resume crash >>crash.out 2>&1 ||
  { fail "final resume" "$(tail -5 crash.out)"; finish; }
[ "$kills" -ge 3 ] && pass "killed the run $kills times" || fail "killed the run only $kills times" "the run finished too fast"
"$MOONLOOP" recipe log crash >crash.log
if cmp -s ref.log crash.log; then
  pass "the resumed lineage equals the uninterrupted one ($(tail -1 crash.log))"
else
  fail "lineage differs after kills" "$(diff ref.log crash.log | head -8)"
fi
cmp -s ref/dataset.jsonl crash/dataset.jsonl && pass "the dataset is the same too" ||
  fail "dataset differs" "$(wc -l ref/dataset.jsonl crash/dataset.jsonl)"

# Every version file holds the text run.db has for it.
bad=0
for f in crash/recipes/v*.lua; do
  v=$(basename "$f" .lua); v=${v#v}; v=$((10#$v))
  "$MOONLOOP" recipe show crash "$v" | cmp -s - "$f" || bad=$((bad + 1))
done
[ "$bad" -eq 0 ] && pass "recipe show matches every recipes/vNNNN.lua" || fail "recipe show differs" "$bad files"

"$MOONLOOP" recipe diff crash 2 >d.out && grep -q '^@@' d.out && pass "recipe diff shows a hunk" ||
  fail "recipe diff" "$(head -5 d.out)"
out=$("$MOONLOOP" recipe revert crash 1) && n=$(echo "$out" | sed -n 's/^v\([0-9]*\) is now.*/\1/p')
"$MOONLOOP" recipe show crash "$n" | cmp -s - "$RECIPE" && pass "revert to v1 restores the recipe file's bytes (as v$n)" ||
  fail "revert" "$out"
code=0; "$MOONLOOP" recipe show crash 999 >/dev/null 2>err.out || code=$?
[ "$code" -eq 2 ] && grep -q 'no version 999' err.out && pass "a missing version is a usage error naming it" ||
  fail "missing version" "exit $code: $(cat err.out)"
finish

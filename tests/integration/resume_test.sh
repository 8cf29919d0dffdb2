#!/usr/bin/env bash
# Resume after kill -9: a run killed at several moments and resumed each time ends with
# exactly the dataset of an uninterrupted run of the same seed: nothing lost, nothing
# duplicated, and answered requests are replayed from the journal instead of re-sent.
source "$(dirname "$0")/lib.sh"
ML_SOURCE_DIR=${ML_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
RECIPE=$ML_SOURCE_DIR/recipes/agentic_self_instruct.lua
cd "$SCRATCH"
export OPENAI_API_KEY=sk-resume-test

start_mock ref --sim --latency uniform:10:40
OPENAI_BASE_URL=$MOCK_URL "$MOONLOOP" run -q "$RECIPE" --out ref --seed 7 >ref.out 2>&1 ||
  { fail "reference run" "$(tail -5 ref.out)"; finish; }
pass "reference run: $(wc -l <ref/dataset.jsonl) accepted examples"

start_mock crash --sim --latency uniform:10:40
kills=0
for delay in 0.3 0.6 0.9 1.2 1.5; do
  if [ -d crash ]; then args=(--resume crash); else args=("$RECIPE" --out crash --seed 7); fi
  OPENAI_BASE_URL=$MOCK_URL "$MOONLOOP" run -q "${args[@]}" --concurrency 2 >>crash.out 2>&1 &
  pid=$!
  sleep "$delay"
  if kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
  wait "$pid" 2>/dev/null || true
done
OPENAI_BASE_URL=$MOCK_URL "$MOONLOOP" run -q --resume crash >>crash.out 2>&1 ||
  { fail "final resume" "$(tail -5 crash.out)"; finish; }
[ "$kills" -ge 3 ] && pass "killed the run $kills times" || fail "killed the run only $kills times" "the run finished too fast"

expect_same_dataset ref crash

dups=$(python3 -c '
import json, sys
items = [json.loads(l)["provenance"]["item"] for l in open("crash/dataset.jsonl")]
print(len(items) - len(set(items)))')
[ "$dups" -eq 0 ] && pass "no example is duplicated" || fail "duplicated examples" "$dups"

# Requests the server completed more than once: only those answered while the client was
# being killed (answered, but not yet written to the journal) may repeat. That is at most
# what can be in flight at once: 2 items (--concurrency 2) x 3 samples solved side by side
# (the recipe's samples per side). A journal that failed to replay would repeat whole
# items' worth of requests per kill instead.
read -r completed repeated < <(python3 -c '
import json, collections
c = collections.Counter()
for l in open("crash.log"):
    r = json.loads(l)
    if r.get("completed") and r.get("path", "").endswith("/chat/completions"):
        c[r["body_hash"]] += 1
print(sum(c.values()), sum(n - 1 for n in c.values() if n > 1))')
ref_requests=$(python3 -c '
import json
print(sum(1 for l in open("ref.log") if json.loads(l).get("completed")))')
echo "     server completed $completed requests over $kills kills and resumes ($repeated repeated); the uninterrupted run needed $ref_requests"
in_flight_max=$((2 * 3))
if [ "$repeated" -le $((kills * in_flight_max)) ]; then
  pass "answered requests are not sent again ($repeated repeats for $kills kills, at most $in_flight_max in flight at each)"
else
  fail "requests sent again after resume" "$repeated repeats for $kills kills (at most $in_flight_max per kill were in flight)"
fi
# The key given in the environment is in no file of the run directories or the logs.
if grep -rlF "$OPENAI_API_KEY" "$SCRATCH" >/dev/null 2>&1; then
  fail "the API key was written to a file" "$(grep -rlF "$OPENAI_API_KEY" "$SCRATCH")"
else
  pass "the API key is in no file: run.db, dataset, journal, logs"
fi

# A run stopped by its request cap exits 3 and resumes to the same dataset.
set +e
OPENAI_BASE_URL=$MOCK_URL "$MOONLOOP" run -q "$RECIPE" --out capped --seed 7 --max-requests 120 >capped.out 2>&1; code=$?
set -e
[ $code -eq 3 ] && pass "a run that reaches --max-requests exits 3" || fail "request cap exit code" "got $code: $(tail -3 capped.out)"
OPENAI_BASE_URL=$MOCK_URL "$MOONLOOP" run -q --resume capped >>capped.out 2>&1 ||
  fail "resuming a capped run" "$(tail -3 capped.out)"
cmp -s ref/dataset.jsonl capped/dataset.jsonl && pass "the capped and resumed run has the uninterrupted dataset" ||
  fail "capped run dataset differs"
finish

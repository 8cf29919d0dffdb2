# Shared helpers for integration tests: start mock servers on free loopback ports and
# clean them up, run moonloop against them, and check results with readable failures.
set -euo pipefail
: "${MOONLOOP:?set MOONLOOP to the moonloop binary}"
SCRATCH=${ML_SCRATCH:-/tmp/moonloop-it}/$(basename "$0" .sh).$$
mkdir -p "$SCRATCH"
MOCK_PIDS=()
FAILS=0
PASSES=0

cleanup() {
  for pid in "${MOCK_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# start_mock NAME [flags...]: starts a mock server; sets MOCK_URL (…/v1) and MOCK_PID.
start_mock() {
  local name=$1; shift
  rm -f "$SCRATCH/$name.port"
  "$MOONLOOP" mock-server --port 0 --port-file "$SCRATCH/$name.port" \
    --log "$SCRATCH/$name.log" "$@" 2>"$SCRATCH/$name.stderr" &
  MOCK_PID=$!
  MOCK_PIDS+=("$MOCK_PID")
  for _ in $(seq 200); do
    [ -s "$SCRATCH/$name.port" ] && break
    kill -0 "$MOCK_PID" 2>/dev/null || { echo "mock server $name died:"; cat "$SCRATCH/$name.stderr"; exit 1; }
    sleep 0.02
  done
  MOCK_URL="http://127.0.0.1:$(cat "$SCRATCH/$name.port")/v1"
}

pass() { PASSES=$((PASSES + 1)); echo "ok   $1"; }
fail() { FAILS=$((FAILS + 1)); echo "FAIL $1"; [ $# -gt 1 ] && echo "     $2"; return 0; }

# expect_contains NAME FILE TEXT
expect_contains() {
  if grep -qF -- "$3" "$2"; then pass "$1"; else fail "$1" "missing '$3' in: $(head -c 600 "$2")"; fi
}

# expect_same_dataset REF_DIR RUN_DIR: a resumed run wrote the same dataset and the same
# rejected rounds, line for line, as the uninterrupted run in REF_DIR.
expect_same_dataset() {
  if cmp -s "$1/dataset.jsonl" "$2/dataset.jsonl"; then
    pass "the resumed dataset equals the uninterrupted one ($(wc -l <"$2/dataset.jsonl") examples)"
  else
    fail "resumed dataset differs" \
      "$(diff <(cut -c1-120 "$1/dataset.jsonl") <(cut -c1-120 "$2/dataset.jsonl") | head -5)"
  fi
  if cmp -s "$1/rejected.jsonl" "$2/rejected.jsonl"; then
    pass "the rejected rounds are the same too"
  else
    fail "rejected rounds differ" "$(wc -l "$1/rejected.jsonl" "$2/rejected.jsonl")"
  fi
}

finish() {
  echo "$PASSES passed, $FAILS failed"
  [ "$FAILS" -eq 0 ]
}

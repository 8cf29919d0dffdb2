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

finish() {
  echo "$PASSES passed, $FAILS failed"
  [ "$FAILS" -eq 0 ]
}

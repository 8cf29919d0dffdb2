#!/usr/bin/env bash
# Fault soak (about 10 minutes; not part of CI). Two recipe runs at once, each against its
# own `moonloop mock-server --sim` with exponential latency and injected faults:
#
#   main       the flagship over SOAK_ITEMS work items with SOAK_CONCURRENCY (1,000) items
#              in flight, against a server that fails requests in every way that is not
#              push-back: 500s, resets, stalls, truncated bodies, malformed JSON and SSE;
#   throttled  SOAK_THROTTLED_ITEMS items against a server that adds 429s, 529s, 503s and
#              error events. moonloop answers push-back by halving its requests in flight
#              (AIMD), so no well-behaved client keeps 1,000 requests in flight against it;
#              this run checks that throttling on top of the same faults still ends every item.
#
# Every SOAK_SAMPLE_S seconds it samples the resident memory and open descriptors of both
# moonloop processes and both servers, and prints the curves. Passes when both runs exit 0
# (no crash), moonloop's RSS is flat after warm-up (the samples after the first quarter
# stay within 25% of their median and grow by less than SOAK_MAX_GROWTH_MIB), descriptors
# stay bounded, and every item ended accepted, exhausted (rejected, with the reasons of its
# rounds) or in error with a message, none left pending.
#
# Usage: tests/soak/fault_soak.sh [MOONLOOP_BINARY]
# Env:   SOAK_ANALYZE_ONLY=1 with SOAK_DIR: print the report of a finished soak again.
#        SOAK_ITEMS (8000), SOAK_CONCURRENCY (1000), SOAK_THROTTLED_ITEMS (100),
#        SOAK_LATENCY (exp:400), SOAK_SAMPLE_S (10), SOAK_MAX_GROWTH_MIB (64),
#        SOAK_DIR (default: a fresh temporary directory)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${1:-$SRC/build/moonloop}
[ -x "$BIN" ] || { echo "fault_soak: no moonloop binary at $BIN (build it or pass its path)"; exit 2; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
ITEMS=${SOAK_ITEMS:-8000}
CONC=${SOAK_CONCURRENCY:-1000}
TITEMS=${SOAK_THROTTLED_ITEMS:-100}
LATENCY=${SOAK_LATENCY:-exp:400}
SAMPLE=${SOAK_SAMPLE_S:-10}
GROWTH=${SOAK_MAX_GROWTH_MIB:-64}
DIR=${SOAK_DIR:-$(mktemp -d /tmp/moonloop-soak.XXXXXX)}
mkdir -p "$DIR"
cd "$DIR"
export MOONLOOP_LUA_DIR=${MOONLOOP_LUA_DIR:-$SRC/lua}
export SOAK_KEY=sk-soak-not-a-key
if [ -n "${SOAK_ANALYZE_ONLY:-}" ]; then
  # Print the report of an earlier soak again: SOAK_ANALYZE_ONLY=1 SOAK_DIR=DIR.
  [ -f codes.txt ] || { echo "fault_soak: no finished soak in $DIR"; exit 2; }
fi
echo "fault_soak: main $ITEMS items, $CONC in flight; throttled $TITEMS items; latency $LATENCY; in $DIR"

# A directory per run: the flagship as it is, and one source file per item (the twelve
# bundled notes, each copy headed by its own number so that every request is distinct).
make_run_dir() {
  mkdir -p "$1/data"
  cp "$SRC/recipes/agentic_self_instruct.lua" "$1/soak.lua"
  python3 -c '
import os, sys
src, n, out, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
notes = sorted(f for f in os.listdir(src) if f.endswith(".txt"))
texts = [open(os.path.join(src, f)).read()[:3500] for f in notes]
for i in range(n):
    with open(os.path.join(out, "item%05d.txt" % i), "w") as f:
        f.write("%s note %d, a copy of %s.\n\n%s" % (tag, i, notes[i % len(notes)], texts[i % len(texts)]))
' "$SRC/recipes/data" "$2" "$1/data" "$1"
}
if [ -z "${SOAK_ANALYZE_ONLY:-}" ]; then
make_run_dir main "$ITEMS"
make_run_dir throttled "$TITEMS"

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

start_mock() { # start_mock NAME FAULTS...: sets PORT and MOCK_PID
  local name=$1
  shift
  "$BIN" mock-server --sim --port 0 --port-file "$name.port" --log "$name.log" \
    --latency "$LATENCY" --seed 11 --retry-after 1 --max-connections 20000 "$@" 2>"$name.stderr" &
  MOCK_PID=$!
  PIDS+=("$MOCK_PID")
  for _ in $(seq 200); do [ -s "$name.port" ] && break; sleep 0.05; done
  [ -s "$name.port" ] || { echo "fault_soak: mock $name did not start"; cat "$name.stderr"; exit 1; }
  PORT=$(cat "$name.port")
}
NOPUSHBACK=(--fault 500=0.02 --fault reset=0.02 --fault stall=0.005 --fault truncate=0.02
  --fault badjson=0.02 --fault badsse=0.01)
start_mock mock-main "${NOPUSHBACK[@]}"
MAIN_MOCK=$MOCK_PID
MAIN_PORT=$PORT
start_mock mock-throttled "${NOPUSHBACK[@]}" --fault 429=0.03 --fault 529=0.01 --fault 503=0.01 \
  --fault sse_error=0.01
THR_MOCK=$MOCK_PID
THR_PORT=$PORT
config() { # config PORT: a provider with short stall detection and patient retries
  cat <<LUA
return { providers = { mock = { kind = "openai", base_url = "http://127.0.0.1:$1/v1",
  api_key_env = "SOAK_KEY", max_attempts = 8, idle_timeout_ms = 10000, timeout_ms = 60000,
  breaker_threshold = 1000000 } } }
LUA
}
config "$MAIN_PORT" >main.cfg.lua
config "$THR_PORT" >throttled.cfg.lua
fi

if [ -n "${SOAK_ANALYZE_ONLY:-}" ]; then
  read -r main_code thr_code <codes.txt
else
start=$(date +%s)
"$BIN" run --config main.cfg.lua main/soak.lua --out main/run --seed 5 --concurrency "$CONC" \
  --set "batch=$ITEMS" --progress-ms 30000 >main.stdout 2>main.stderr &
MAIN=$!
PIDS+=("$MAIN")
"$BIN" run --config throttled.cfg.lua throttled/soak.lua --out throttled/run --seed 5 \
  --concurrency "$TITEMS" --set "batch=$TITEMS" --progress-ms 30000 >throttled.stdout \
  2>throttled.stderr &
THR=$!
PIDS+=("$THR")

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
echo "t_s,main_rss_kib,main_fds,mock_main_rss_kib,mock_main_fds,main_requests,thr_rss_kib,thr_fds,mock_thr_rss_kib,thr_requests" >rss.csv
while kill -0 "$MAIN" 2>/dev/null || kill -0 "$THR" 2>/dev/null; do
  t=$(($(date +%s) - start))
  echo "$t,$(rss_kib $MAIN),$(fds $MAIN),$(rss_kib $MAIN_MOCK),$(fds $MAIN_MOCK),$(wc -l <mock-main.log),$(rss_kib $THR),$(fds $THR),$(rss_kib $THR_MOCK),$(wc -l <mock-throttled.log)" >>rss.csv
  sleep "$SAMPLE"
done
set +e
wait "$MAIN"
main_code=$?
wait "$THR"
thr_code=$?
set -e
elapsed=$(($(date +%s) - start))
echo "fault_soak: main exited $main_code, throttled exited $thr_code, after ${elapsed}s"
for r in main throttled; do
  echo "--- $r:"
  tail -8 "$r.stderr" | sed 's/^/  | /'
  grep -o "in flight [0-9]*" "$r.stderr" | awk -v r="$r" '$3 > m { m = $3 } END { print "  " r ": at most " m + 0 " requests in flight in its progress lines" }'
done
echo "$main_code $thr_code" >codes.txt
fi

python3 - "$main_code" "$thr_code" "$GROWTH" <<'EOF'
import csv, json, sqlite3, statistics, sys, collections
codes = {"main": int(sys.argv[1]), "throttled": int(sys.argv[2])}
growth_limit = float(sys.argv[3])
rows = list(csv.DictReader(open("rss.csv")))
failures = []
print("\nRSS (MiB) and open descriptors per sample; the bar is main's RSS:")
print("   t_s   main  fds  mock  fds  requests | thrott  fds  mock  requests")
peak = max([int(r["main_rss_kib"]) for r in rows] + [1])
for r in rows:
    mib = lambda k: int(r[k]) / 1024
    print("%6s %6.1f %4s %5.1f %4s %9s | %6.1f %4s %5.1f %9s  %s" % (
        r["t_s"], mib("main_rss_kib"), r["main_fds"], mib("mock_main_rss_kib"), r["mock_main_fds"],
        r["main_requests"], mib("thr_rss_kib"), r["thr_fds"], mib("mock_thr_rss_kib"),
        r["thr_requests"], "#" * int(40 * int(r["main_rss_kib"]) / peak)))


def flat(name, key, fdkey, reqkey):
    live = [r for r in rows if int(r[key]) > 0]
    # The steady state ends with the last sample in which the server still got a fair share
    # of requests (1% of the busiest interval; the last stragglers are retries of stalled
    # requests); after it the run writes its summary and report.html, judged apart.
    deltas = [0] + [int(live[i][reqkey]) - int(live[i - 1][reqkey]) for i in range(1, len(live))]
    busiest = max(deltas + [1])
    last = max([i for i, d in enumerate(deltas) if d > 0.01 * busiest] + [0])
    closing = live[last + 1:]
    live = live[:last + 1]
    if closing:
        print("%s closing phase (summary and report.html, %d samples): peak %.1f MiB" % (
            name, len(closing), max(int(r[key]) for r in closing) / 1024))
    if len(live) < 8:
        failures.append("%s: too few samples (%d) to judge the RSS curve" % (name, len(live)))
        return
    post = live[len(live) // 4:]
    vals = [int(r[key]) / 1024 for r in post]
    med = statistics.median(vals)
    growth = max(vals) - vals[0]
    print("%s steady state after warm-up (%d samples): median %.1f MiB, min %.1f, max %.1f, growth %+.1f MiB"
          % (name, len(vals), med, min(vals), max(vals), growth))
    if max(vals) > 1.25 * med:
        failures.append("%s: RSS is not flat: max %.1f MiB vs median %.1f" % (name, max(vals), med))
    if growth > growth_limit:
        failures.append("%s: RSS grew %.1f MiB after warm-up (limit %.0f)" % (name, growth, growth_limit))
    fds = [int(r[fdkey]) for r in post]
    if max(fds) > 2 * max(fds[: max(1, len(fds) // 4)]) + 64:
        failures.append("%s: open descriptors keep growing: %d..%d" % (name, min(fds), max(fds)))


print()
flat("main", "main_rss_kib", "main_fds", "main_requests")
flat("throttled", "thr_rss_kib", "thr_fds", "thr_requests")
for name, code in codes.items():
    if code != 0:
        failures.append("%s: moonloop exited %d" % (name, code))

for name in ("main", "throttled"):
    faults = collections.Counter()
    for line in open("mock-%s.log" % name):
        r = json.loads(line)
        if "chat" in r.get("path", ""):
            faults[r.get("fault", "none")] += 1
    print("\n%s: the mock server answered %d chat requests; faults injected: %s" % (
        name, sum(faults.values()),
        ", ".join("%s %d" % kv for kv in sorted(faults.items()) if kv[0] != "none")))
    db = sqlite3.connect("%s/run/run.db" % name)
    by = dict(db.execute("SELECT status, count(*) FROM items GROUP BY status").fetchall())
    print("%s items: %d: %s" % (name, sum(by.values()), ", ".join("%s %d" % kv for kv in sorted(by.items()))))
    open_items = sum(n for s, n in by.items() if s not in ("accepted", "exhausted", "error"))
    if open_items:
        failures.append("%s: %d items did not end (pending or running)" % (name, open_items))
    no_reason = db.execute("""SELECT count(*) FROM items i WHERE i.status = 'exhausted' AND NOT EXISTS
      (SELECT 1 FROM rounds r WHERE r.item_id = i.id AND coalesce(r.reason, '') != '')""").fetchone()[0]
    if no_reason:
        failures.append("%s: %d exhausted items have no round with a reason" % (name, no_reason))
    err_no_msg = db.execute(
        "SELECT count(*) FROM items WHERE status = 'error' AND coalesce(error, '') = ''").fetchone()[0]
    if err_no_msg:
        failures.append("%s: %d items in error without a message" % (name, err_no_msg))
    for (e, n) in db.execute("""SELECT substr(error, 1, 120), count(*) FROM items WHERE status = 'error'
                                 GROUP BY 1 ORDER BY 2 DESC LIMIT 4"""):
        print("  error x%d: %s" % (n, e))
    cats = db.execute("SELECT category, count(*) FROM rounds GROUP BY 1 ORDER BY 2 DESC").fetchall()
    print("  rounds by category: " + ", ".join("%s %d" % (c, n) for c, n in cats))
if failures:
    print("\nFAIL: " + "; ".join(failures))
    sys.exit(1)
print("\nfault_soak: PASS (no crash, RSS flat after warm-up, every item ended with a reason)")
EOF

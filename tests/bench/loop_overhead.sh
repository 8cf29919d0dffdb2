#!/usr/bin/env bash
# The loop itself: what the runtime spends per LLM call when the model costs nothing.
# Runs the flagship recipe (recipes/agentic_self_instruct.lua) over ITEMS work items against
# `moonloop mock-server --sim` (the simulator, no latency) in its own process, so the
# client's CPU is the runtime's own work: recipe and runner Lua, request bodies, HTTP,
# answer parsing, the run store. Prints a report and one machine-readable LOOP line.
#
#   tests/bench/loop_overhead.sh BINARY [ITEMS]      (default 10,000 items, about 1-2 minutes)
#
# Environment: BENCH_LOOP_ITEMS, BENCH_LOOP_CONCURRENCY (64), BENCH_KEEP=1 (keep the scratch
# dir and the run), BENCH_PERF=0 (no perf profile; by default one is taken when perf works,
# for the split of CPU by library).
#
# The items are 400-byte windows of recipes/data/*.txt (chunk.size=400, overlap=396, so
# 10,000 of them exist), one round each with one weak and one strong sample: the per-call
# cost does not depend on how many calls an item makes, and this keeps the run short.
set -euo pipefail

if [ $# -lt 1 ] || [ ! -x "$1" ]; then
  echo "usage: $0 path/to/moonloop [ITEMS]" >&2
  exit 2
fi
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
ITEMS=${2:-${BENCH_LOOP_ITEMS:-10000}}
CONC=${BENCH_LOOP_CONCURRENCY:-64}
RECIPE=$ROOT/recipes/agentic_self_instruct.lua
TIME=/usr/bin/time
case $ITEMS in '' | *[!0-9]* | 0) echo "loop: ITEMS must be a positive integer" >&2; exit 2 ;; esac
command -v "$TIME" >/dev/null || { echo "loop: GNU time (/usr/bin/time) is needed" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/moonloop-loop.XXXXXX")
SERVER_PID='' CLIENT_PID=''
cleanup() {
  if [ -n "$CLIENT_PID" ]; then kill "$CLIENT_PID" 2>/dev/null || true; fi
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "loop: scratch files kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
log() { printf '%s\n' "$*" >&2; }

"$BIN" mock-server --sim --port 0 --port-file "$WORK/port" 2>"$WORK/server.stderr" &
SERVER_PID=$!
for _ in $(seq 250); do
  [ -s "$WORK/port" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "loop: mock server died: $(cat "$WORK/server.stderr")" >&2; exit 1; }
  sleep 0.02
done
[ -s "$WORK/port" ] || { echo "loop: mock server wrote no port file" >&2; exit 1; }
PORT=$(cat "$WORK/port")

# One provider for every role; a cap far above what the items keep in flight.
cat >"$WORK/config.lua" <<EOF
return { providers = { sim = { kind = "openai", base_url = "http://127.0.0.1:$PORT/v1",
                               max_inflight = 100000 } } }
EOF

# CPU seconds (user + system) a process has used so far, from /proc.
TICKS=$(getconf CLK_TCK 2>/dev/null || echo 100)
proc_cpu() { awk -v t="$TICKS" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$1/stat" 2>/dev/null || echo 0; }

PERF=()
if [ "${BENCH_PERF:-1}" = 1 ] && command -v perf >/dev/null &&
   perf record -q -o "$WORK/probe.perf" -- true >/dev/null 2>&1; then
  PERF=(perf record -q -F 499 -o "$WORK/loop.perf" --)
fi

log "loop: $ITEMS items of the flagship recipe, concurrency $CONC, simulator on 127.0.0.1:$PORT ..."
export XDG_CONFIG_HOME=$WORK/xdg
s0=$(proc_cpu "$SERVER_PID")
t0=$(date +%s%N)
rc=0
(cd "$WORK" && exec "${PERF[@]}" "$TIME" -f '%U %S %M' -o "$WORK/time" \
  "$BIN" run "$RECIPE" --config "$WORK/config.lua" --out "$WORK/run" --json \
  --set max_items="$ITEMS" --set chunk.size=400 --set chunk.overlap=396 \
  --set max_rounds=1 --set samples.weak=1 --set samples.strong=1 \
  --concurrency "$CONC" --progress-ms 600000) >"$WORK/stdout" 2>"$WORK/stderr" &
CLIENT_PID=$!
wait "$CLIENT_PID" || rc=$?
CLIENT_PID=
t1=$(date +%s%N)
s1=$(proc_cpu "$SERVER_PID")
if [ "$rc" -ne 0 ]; then
  log "loop: moonloop exited with $rc: $(tail -3 "$WORK/stderr" | tr '\n' ' ')"
  echo "LOOP ok=0"
  exit 1
fi

summary=$(grep '"event":"summary"' "$WORK/stdout" | tail -1)
calls=$(printf '%s' "$summary" | sed -n 's/.*"calls_sent":\([0-9]*\).*/\1/p')
items=$(printf '%s' "$summary" | sed -n 's/.*"items":\([0-9]*\).*/\1/p')
read -r user sys rss <"$WORK/time"
if [ -z "$calls" ] || [ "$calls" -eq 0 ]; then
  log "loop: no summary with calls_sent in the output"
  echo "LOOP ok=0"
  exit 1
fi

split="perf not available"
if [ ${#PERF[@]} -gt 0 ] && [ -s "$WORK/loop.perf" ]; then
  # Samples of the moonloop process by library: where one call's CPU goes.
  split=$(perf report -q -i "$WORK/loop.perf" --comm moonloop --no-children --sort dso \
            -g none 2>/dev/null |
          awk '$1 ~ /%$/ { p = $1 + 0; d = $2; gsub(/^\[|\]$/, "", d); sub(/\.so.*/, "", d);
                           if (p >= 1) printf "%s%s %.0f%%", (n++ ? ", " : ""), d, p }')
  [ -n "$split" ] || split="perf gave no samples"
fi

awk -v calls="$calls" -v items="$items" -v u="$user" -v s="$sys" -v rss="$rss" \
    -v w0="$t0" -v w1="$t1" -v s0="$s0" -v s1="$s1" -v where="$split" 'BEGIN {
  wall = (w1 - w0) / 1e9; cpu = u + s
  printf "loop: %d items, %d LLM calls in %.1f s (%.0f calls/s)\n", items, calls, wall, calls / wall > "/dev/stderr"
  printf "  runtime CPU per call   %.3f ms (user %.3f, system %.3f), peak RSS %d KB\n", 1000 * cpu / calls, 1000 * u / calls, 1000 * s / calls, rss > "/dev/stderr"
  printf "  simulator CPU per call %.3f ms (its own process, not counted above)\n", 1000 * (s1 - s0) / calls > "/dev/stderr"
  printf "  where the runtime CPU goes: %s\n", where > "/dev/stderr"
  printf "LOOP ok=1 items=%d calls=%d wall_s=%.3f cpu_s=%.3f user_s=%.3f sys_s=%.3f rss_kb=%d sim_cpu_s=%.2f split=\"%s\"\n", items, calls, wall, cpu, u, s, rss, s1 - s0, where
}'

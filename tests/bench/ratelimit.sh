#!/usr/bin/env bash
# Rate-limit adherence: does moonloop stay just under a provider's limits on its own? Queues
# 500 requests at once against `moonloop mock-server --rpm 600 --tpm 200000 --latency 800`
# (a server that enforces the limits per key, as a hosted API does) with the provider's rpm
# and tpm given in the config, then reports the rate the server admitted after the first
# 10 s as a share of the limit, the share of requests that ever got a 429, errors by kind
# and wall time. Usage: tests/bench/ratelimit.sh BINARY   (see tests/bench/README.md)
#
# Environment: BENCH_RL_N (requests, default 500), BENCH_RL_LIMIT (task.map limit, default
# 500), BENCH_KEEP=1 (keep the scratch directory with the server log and /stats).
set -euo pipefail

if [ $# -ne 1 ] || [ ! -x "$1" ]; then
  echo "usage: $0 path/to/moonloop" >&2
  exit 2
fi
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
HERE=$(cd "$(dirname "$0")" && pwd)
N=${BENCH_RL_N:-500}
LIMIT=${BENCH_RL_LIMIT:-500}
RPM=600
TPM=200000
LATENCY=800
WARMUP=10 # seconds left out of the achieved rate: a full bucket allows a first burst

for tool in curl python3 timeout; do
  command -v "$tool" >/dev/null || { echo "bench: '$tool' is needed" >&2; exit 2; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/moonloop-ratelimit.XXXXXX")
SERVER_PID=
CLIENT_PID=
cleanup() {
  local pid
  for pid in $CLIENT_PID $SERVER_PID; do kill "$pid" 2>/dev/null || true; done
  for pid in $CLIENT_PID $SERVER_PID; do wait "$pid" 2>/dev/null || true; done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "bench: scratch files kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
log() { printf '%s\n' "$*" >&2; }

"$BIN" mock-server --port 0 --port-file "$WORK/port" --log "$WORK/server.jsonl" \
  --rpm "$RPM" --tpm "$TPM" --latency "$LATENCY" 2>"$WORK/server.stderr" &
SERVER_PID=$!
for _ in $(seq 250); do
  [ -s "$WORK/port" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "bench: mock server died: $(cat "$WORK/server.stderr")" >&2; exit 1; }
  sleep 0.02
done
[ -s "$WORK/port" ] || { echo "bench: mock server wrote no port file" >&2; exit 1; }
BASE=http://127.0.0.1:$(cat "$WORK/port")
if ! curl -sf "$BASE/stats" -o "$WORK/stats0.json"; then
  echo "bench: $BIN mock-server has no GET /stats (is it older than --rpm/--tpm?)" >&2
  exit 1
fi
log "mock server (--rpm $RPM --tpm $TPM --latency $LATENCY) on $BASE"

# The limits reach moonloop only through a config file: OPENAI_BASE_URL cannot carry them.
cat >"$WORK/config.lua" <<EOF
return {
  providers = {
    mock = {
      kind = "openai",
      base_url = "$BASE/v1",
      api_key_env = "OPENAI_API_KEY",
      model = "m",
      rpm = $RPM,
      tpm = $TPM,
    },
  },
}
EOF

# No moonloop.lua or user config may interfere: run from the scratch dir.
export XDG_CONFIG_HOME=$WORK/xdg OPENAI_API_KEY=bench-ratelimit
log "moonloop: $N requests through task.map (limit $LIMIT) ..."
t0=$(date +%s%N)
rc=0
(cd "$WORK" && exec timeout -k 5 600 "$BIN" run --trusted --quiet --config "$WORK/config.lua" \
  "$HERE/ratelimit.lua" "$N" "$LIMIT") >"$WORK/client.stdout" 2>"$WORK/client.stderr" &
CLIENT_PID=$!
wait "$CLIENT_PID" || rc=$?
CLIENT_PID=
t1=$(date +%s%N)
curl -sf "$BASE/stats" -o "$WORK/stats1.json" || { echo "bench: GET /stats failed" >&2; exit 1; }
kill "$SERVER_PID" 2>/dev/null || true
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=

if [ "$rc" -ne 0 ]; then
  log "moonloop exited with $rc: $(tail -3 "$WORK/client.stderr" | tr '\n' ' ')"
fi
grep -h '^ratelimit.lua: first' "$WORK/client.stderr" >&2 || true

python3 - "$WORK" "$((t1 - t0))" "$N" "$LIMIT" "$RPM" "$TPM" "$LATENCY" "$WARMUP" "$rc" <<'EOF'
import json, sys

work, wall_ns, n, limit, rpm, tpm, latency, warmup, rc = sys.argv[1:]
n, limit, rpm, tpm, warmup = int(n), int(limit), int(rpm), int(tpm), int(warmup)
wall = int(wall_ns) / 1e9
s0 = json.load(open(work + "/stats0.json"))
s1 = json.load(open(work + "/stats1.json"))

# The client's own count: RATELIMIT ok=.. failed=.. errors=kind:count,...
client = {}
for line in open(work + "/client.stdout"):
    if line.startswith("RATELIMIT "):
        client = dict(kv.split("=", 1) for kv in line.split()[1:])

# Every chat attempt in the server log; a request is its body (each prompt is unique), so
# a retry of request i has the same body_hash as request i.
attempts, throttled, ever429 = 0, 0, {}
for line in open(work + "/server.jsonl"):
    e = json.loads(line)
    if not e["path"].startswith("/v1/chat/completions"):
        continue
    attempts += 1
    hit = e["status"] == 429
    throttled += hit
    ever429[e["body_hash"]] = ever429.get(e["body_hash"], False) or hit
distinct = len(ever429)
hit429 = sum(ever429.values())

# Achieved rate: admissions per second from /stats, from WARMUP s after the client started
# up to the last second anything was admitted (left out when there are others: it is
# partial, and would make the rate look lower than it was).
p = s1["per_second"]
start = s0["per_second"]["now_s"]
sec = {p["start_s"] + i: (a, t) for i, (a, t) in enumerate(zip(p["admitted"], p["tokens"]))}
busy = [x for x in sorted(sec) if x >= start and sec[x][0] > 0]
tokens = None
if start < p["start_s"]:
    achieved = "n/a: the run outlasted the 120 s of /stats history"
elif not busy or busy[-1] < start + warmup:
    last = (busy[-1] - start + 1) if busy else 0
    achieved = "n/a: nothing was admitted after the first %d s (last admission in second %d)" % (
        warmup, last)
else:
    first = start + warmup
    window = range(first, busy[-1] if busy[-1] > first else busy[-1] + 1)
    reqs = sum(sec.get(x, (0, 0))[0] for x in window) * 60.0 / len(window)
    toks = sum(sec.get(x, (0, 0))[1] for x in window) * 60.0 / len(window)
    achieved = "%.0f requests/min = %.1f%% of rpm %d, over %d s" % (
        reqs, 100.0 * reqs / rpm, rpm, len(window))
    tokens = "%.0f tokens/min = %.1f%% of tpm %d" % (toks, 100.0 * toks / tpm, tpm)

share = 100.0 * hit429 / n
print("rate-limit adherence: mock-server --rpm %d --tpm %d --latency %s, %d requests, "
      "task.map limit %d" % (rpm, tpm, latency, n, limit))
print("  wall time            %.1f s%s" % (wall, "" if rc == "0" else " (moonloop exited %s)" % rc))
print("  answered             %s of %d; errors by kind: %s" % (
    client.get("ok", "?"), n, client.get("errors", "? (no RATELIMIT line)")))
print("  HTTP attempts        %d (%d answered 429 by the limiter)" % (attempts, throttled))
print("  requests ever 429    %d of %d (%.1f%%)   target < 2%%" % (hit429, n, share))
if distinct != n:
    print("  note: the server saw %d distinct request bodies, not %d" % (distinct, n))
print("  achieved after %ds   %s   target >= 95%%" % (warmup, achieved))
if tokens:
    print("  tokens after %ds     %s (above 100%% is possible while the token bucket's "
          "first full minute lasts)" % (warmup, tokens))
EOF

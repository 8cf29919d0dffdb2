#!/usr/bin/env bash
# make demo: the flagship recipe (Agentic Self-Instruct) on the simulator, served over
# HTTP by the mock server on a free loopback port with realistic latency, so the run shows
# its progress line and ends with its summary and where the dataset and report are.
set -euo pipefail
bin=${1:-build/moonloop}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
mock_pid=
trap '[ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null; rm -rf "$work"' EXIT
"$bin" mock-server --sim --port 0 --port-file "$work/port" --latency exp:120 --seed 7 \
  2>"$work/mock.log" &
mock_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
port=$(cat "$work/port")
out="runs/demo-$(date -u +%Y%m%dT%H%M%SZ)"
echo "== the simulated world answers on http://127.0.0.1:$port (challenger, checker, weak and"
echo "   strong solvers, judge; about 120 ms a call). Nothing leaves this machine."
echo "== moonloop run recipes/agentic_self_instruct.lua --out $out"
OPENAI_BASE_URL="http://127.0.0.1:$port/v1" OPENAI_API_KEY=demo-not-a-real-key \
  "$bin" run "$here/recipes/agentic_self_instruct.lua" --out "$out" --progress-ms 1000
echo
echo "== first accepted example:"
head -n 1 "$out/dataset.jsonl" | python3 -c '
import json, sys
for line in sys.stdin:
    e = json.loads(line)
    p = e["provenance"]
    print("   question:", e["question"][:300])
    print("   weak %.2f, strong %.2f, gap %.2f after %d rounds" % (p["weak_mean"], p["strong_mean"], p["gap"], p["rounds"]))
' 2>/dev/null || true
echo "== compare with the single-pass baseline: make compare"

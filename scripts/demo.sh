#!/usr/bin/env bash
# make demo: start the mock server on a free loopback port (random latency, a few
# injected faults), point moonloop at it through OPENAI_BASE_URL, run recipes/demo.lua.
set -euo pipefail
bin=${1:-build/moonloop}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'kill "$mock_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin" mock-server --port 0 --port-file "$work/port" --latency uniform:50:400 \
  --fault 500=0.02 --fault 429=0.02 --seed 7 2>"$work/mock.log" &
mock_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
port=$(cat "$work/port")
echo "== mock server on http://127.0.0.1:$port (latency 50-400 ms, 2% HTTP 500, 2% HTTP 429)"
echo "== moonloop run recipes/demo.lua"
OPENAI_BASE_URL="http://127.0.0.1:$port/v1" OPENAI_API_KEY=demo-not-a-real-key \
  "$bin" run "$here/recipes/demo.lua"
echo "== done. Try the README's first script: $bin run recipes/hello.lua (offline simulator)"

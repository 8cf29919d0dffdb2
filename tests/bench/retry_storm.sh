#!/usr/bin/env bash
# Retry storm check: 30% injected 503s at 500 in flight; prints how many sends each
# request took. The policy allows at most 5 (max_attempts).
set -euo pipefail
bin=${1:-build/moonloop}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin" mock-server --port 0 --port-file "$work/port" --latency 200 --fault 503=0.3 --seed 9 2>/dev/null &
pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
echo "== retry storm: 2000 requests, 500 in flight, 30% of answers are 503"
OPENAI_BASE_URL="http://127.0.0.1:$(cat "$work/port")/v1" OPENAI_API_KEY=bench \
  "$bin" run --trusted "$here/retry_storm.lua" 2000 500

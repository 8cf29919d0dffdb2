#!/usr/bin/env bash
# CI's fuzz step (`make fuzz-ci`): build the libFuzzer targets with clang and run each one
# for a fixed time from its committed seed corpus (tests/fuzz/corpus/NAME, plus
# tests/fuzz/NAME.dict when there is one). New inputs go to a scratch copy, never into the
# repository. A crash, a leak, a timeout or an out-of-memory stops that target and fails the
# step; the input that did it is kept under BUILD_DIR/fuzz-artifacts/.
#
# Usage: tests/fuzz/run_ci.sh [BUILD_DIR] [SECONDS_PER_TARGET] [TARGET_REGEX]
#   defaults: build-fuzz, 30, every target
# Longer local runs: tests/fuzz/run_ci.sh build-fuzz 600 config   (one target at a time)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-build-fuzz}
SECS=${2:-30}
FILTER=${3:-.}
cd "$SRC"
CC=${CC:-clang}
command -v "$CC" >/dev/null || { echo "fuzz: $CC not found (apt-get install clang)"; exit 2; }

# name:corpus pairs; the Lua-level targets need the module they load.
TARGETS=(fuzz_sse:sse fuzz_json_extract:json_extract fuzz_http_req:http_req
  fuzz_anthropic:anthropic fuzz_config:config fuzz_edit:edit fuzz_regions:regions)
want=()
for spec in "${TARGETS[@]}"; do
  [[ ${spec%%:*} =~ $FILTER ]] && want+=("$spec")
done
[ ${#want[@]} -gt 0 ] || { echo "fuzz: no target matches '$FILTER'"; exit 2; }

CC=$CC cmake -S . -B "$BUILD" -DML_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target "${want[@]%%:*}" >"$BUILD/fuzz-build.log" 2>&1 ||
  { tail -30 "$BUILD/fuzz-build.log"; echo "fuzz: build failed"; exit 1; }

WORK=$(mktemp -d /tmp/moonloop-fuzz.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
ART=$SRC/$BUILD/fuzz-artifacts
mkdir -p "$ART"
passed=0
failed=0
skipped=0
printf '%-18s %10s %8s %10s %8s  %s\n' target runs seconds exec/s corpus result
for spec in "${want[@]}"; do
  t=${spec%%:*}
  c=${spec##*:}
  if [[ $t == fuzz_edit || $t == fuzz_regions ]] && [ ! -f lua/moonloop/edit.lua ]; then
    printf '%-18s %10s %8s %10s %8s  %s\n' "$t" - - - - "skipped (no lua/moonloop/edit.lua)"
    skipped=$((skipped + 1))
    continue
  fi
  mkdir -p "$WORK/$c" "$ART/$t"
  dict=()
  [ -f "tests/fuzz/$c.dict" ] && dict=("-dict=tests/fuzz/$c.dict")
  log=$BUILD/$t.ci.log
  start=$(date +%s)
  set +e
  "$BUILD/tests/fuzz/$t" -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=25 \
    -print_final_stats=1 -artifact_prefix="$ART/$t/" "${dict[@]}" "$WORK/$c" "tests/fuzz/corpus/$c" \
    >"$log" 2>&1
  code=$?
  set -e
  secs=$(($(date +%s) - start))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  corpus=$(ls "$WORK/$c" | wc -l)
  if [ "$code" -eq 0 ]; then
    result=ok
    passed=$((passed + 1))
  else
    result="FAILED (exit $code): $(grep -m1 -E 'ERROR|SUMMARY|fuzz_|check failed' "$log" | cut -c1-120)"
    failed=$((failed + 1))
  fi
  printf '%-18s %10s %8s %10s %8s  %s\n' "$t" "${runs:-?}" "$secs" "${rate:-?}" "$corpus" "$result"
  if [ "$code" -ne 0 ]; then
    grep -E -A12 'ERROR|check failed|fuzz_[a-z]+:' "$log" | head -40 | sed 's/^/    /'
    echo "    reproduce: $BUILD/tests/fuzz/$t $(ls "$ART/$t"/* 2>/dev/null | head -1)"
  fi
done
echo "fuzz: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# The integration tests (and the Lua tests) with every moonloop process, clients and mock
# servers alike, under valgrind memcheck: definite and indirect leaks and memory errors
# (invalid reads and writes, uses of uninitialised values, bad frees) fail the run.
#
# Usage: tests/valgrind/run.sh BUILD_DIR [TEST_NAME_REGEX]
#   e.g. tests/valgrind/run.sh build 'mock_server|lua\.text'
#   (names are integration.NAME_test and lua.NAME_test, as in ctest)
# Env:   VALGRIND_TIMEOUT (seconds per test, 600), VALGRIND_KEEP=1 keeps the logs of clean
#        processes too, VALGRIND_SKIP (a regex of names not to run; default
#        'lua\.sqlite_test', see below).
#
# How: the integration tests run whatever $MOONLOOP names, so MOONLOOP points at a wrapper
# that execs valgrind on the real binary with one log file per process. A process killed
# with SIGKILL (the crash and resume tests do that on purpose) writes no summary and is not
# judged. Children that moonloop spawns itself (verify.code) run natively; a test that
# spawns "/proc/self/exe" gets valgrind's own binary instead and cannot work (sqlite_test's
# two-process case waits for its child until the timeout). Tests that depend on timing
# (kill moments, latencies, instruction limits against a clock) can fail because valgrind
# makes everything 20-50x slower; such a test is reported as skipped, and only valgrind's
# findings fail the run. A self-check first proves that a leak in a small C program is seen.
set -uo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:?usage: tests/valgrind/run.sh BUILD_DIR [TEST_NAME_REGEX]}
FILTER=${2:-.}
SKIP=${VALGRIND_SKIP-lua\.sqlite_test}
BIN=$(cd "$BUILD" && pwd)/moonloop
[ -x "$BIN" ] || { echo "valgrind: no moonloop binary in $BUILD"; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind: not installed (apt-get install valgrind)"; exit 2; }
OUT=$(cd "$BUILD" && pwd)/valgrind
rm -rf "$OUT"
mkdir -p "$OUT/logs" "$OUT/scratch"
VG=(valgrind --leak-check=full --show-leak-kinds=definite,indirect
  --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --track-fds=no
  "--suppressions=$SRC/tests/valgrind/moonloop.supp" --num-callers=30)
WRAP=$OUT/moonloop-under-valgrind
# MOONLOOP_FULL_TEARDOWN: the CLI frees everything at exit (by default it leaves memory to
# the kernel, which valgrind would rightly call leaks); set in the wrapper so that it wins
# over a test's own setting.
{
  echo '#!/bin/sh'
  echo 'MOONLOOP_FULL_TEARDOWN=1; export MOONLOOP_FULL_TEARDOWN'
  echo "exec ${VG[*]} --log-file=$OUT/logs/vg.%p.log $BIN \"\$@\""
} >"$WRAP"
chmod +x "$WRAP"
export MOONLOOP_LUA_DIR=$SRC/lua

# A log is dirty when valgrind counted an error (leaks of the kinds above count as errors)
# or reported a leak or a bad access in any form.
dirty() {
  grep -qE "ERROR SUMMARY: [1-9]|are (definitely|indirectly) lost|Invalid (read|write|free)|uninitialised|Mismatched free" "$1"
}

# Self-check: a program that loses 64 bytes must come out dirty, else nothing below means
# anything.
printf '%s\n' '#include <stdlib.h>' '#include <string.h>' 'int main(void) {' \
  '  char *p = malloc(64);' '  memset(p, 1, 64);' '  return p[0] - 1;' '}' >"$OUT/leak.c"
if cc -g -O0 -o "$OUT/leak" "$OUT/leak.c" 2>/dev/null; then
  "${VG[@]}" --log-file="$OUT/leak.log" "$OUT/leak" >/dev/null 2>&1
  if ! dirty "$OUT/leak.log"; then
    echo "valgrind: the self-check missed a known leak (see $OUT/leak.log)"
    exit 1
  fi
  echo "ok   self-check: a 64-byte leak in a test program is reported"
fi

tests=()
for t in "$SRC"/tests/integration/*_test.sh; do
  name=integration.$(basename "$t" .sh)
  [[ $name =~ $FILTER ]] && ! [[ -n $SKIP && $name =~ $SKIP ]] && tests+=("$t")
done
for t in "$SRC"/tests/lua/*_test.lua; do
  name=lua.$(basename "$t" .lua)
  [[ $name =~ $FILTER ]] && ! [[ -n $SKIP && $name =~ $SKIP ]] && tests+=("$t")
done
[ ${#tests[@]} -gt 0 ] || { echo "valgrind: no test matches '$FILTER'"; exit 2; }

failed_tests=()
dirty_tests=()
for t in "${tests[@]}"; do
  base=$(basename "$t")
  mark=$OUT/logs/.before
  touch "$mark"
  start=$(date +%s)
  if [[ $t == *.sh ]]; then
    (cd "$SRC/tests/integration" && MOONLOOP=$WRAP ML_SOURCE_DIR=$SRC ML_SCRATCH=$OUT/scratch \
      timeout "${VALGRIND_TIMEOUT:-600}" bash "$t") >"$OUT/$base.out" 2>&1
  else
    (cd "$SRC/tests/lua" && MOONLOOP_TEST_LIB=$SRC/tests/lua/lib \
      timeout "${VALGRIND_TIMEOUT:-600}" "$WRAP" run --trusted "$t") >"$OUT/$base.out" 2>&1
  fi
  code=$?
  secs=$(($(date +%s) - start))
  # This test's processes: the logs written since it started.
  logs=$(find "$OUT/logs" -name 'vg.*.log' -newer "$mark")
  nproc=$(wc -w <<<"$logs")
  bad=""
  for l in $logs; do
    if dirty "$l"; then
      bad="$bad $l"
    elif [ "${VALGRIND_KEEP:-0}" != 1 ] && ! grep -q "Process terminating" "$l"; then
      rm -f "$l"
    fi
  done
  if [ -n "$bad" ]; then
    dirty_tests+=("$base")
    echo "DIRTY $base (${secs}s, $nproc processes): valgrind errors in$bad"
    for l in $bad; do
      echo "  --- $l"
      grep -E "^==[0-9]+== (Invalid|Conditional|Use of|Mismatched|[0-9,]+ .*(definitely|indirectly) lost|   (at|by) )" "$l" | head -24 | sed 's/^/  /'
    done
  elif [ $code -ne 0 ]; then
    failed_tests+=("$base")
    echo "slow $base (${secs}s, $nproc processes): no valgrind error; the test itself exited $code under valgrind:"
    grep -E "^FAIL" "$OUT/$base.out" | head -3 | sed 's/^/  /'
  else
    echo "ok   $base (${secs}s, $nproc processes): no leak, no memory error"
  fi
done
[ ${#failed_tests[@]} -eq 0 ] ||
  echo "valgrind: clean, but the test itself failed under valgrind (not judged): ${failed_tests[*]}"
echo "valgrind: logs in $OUT"
# Passed: clean and the test passed; failed: valgrind errors; skipped: clean, but the test
# did not pass under valgrind, so not every path it covers ran.
echo "valgrind: $((${#tests[@]} - ${#dirty_tests[@]} - ${#failed_tests[@]})) passed, ${#dirty_tests[@]} failed, ${#failed_tests[@]} skipped"
[ ${#dirty_tests[@]} -eq 0 ]

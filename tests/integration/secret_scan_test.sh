#!/usr/bin/env bash
# Secret scan: everything runs with fake API keys (OpenAI and Anthropic style, from the
# environment and named by a config file), through success, faults, retries, resume, the
# cache, verbose logging and failing scripts. Afterwards no file under the scratch
# directory (run directories, run.db and its WAL, the cache, mock logs, traces and reports
# when they exist, every captured stdout and stderr) may contain either key, nor a
# 16-character piece of one. The scan itself is checked first on a file that does hold it.
source "$(dirname "$0")/lib.sh"
ML_SOURCE_DIR=${ML_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
RECIPE=$ML_SOURCE_DIR/recipes/agentic_self_instruct.lua
cd "$SCRATCH"
rand() { od -An -N12 -tx1 /dev/urandom | tr -d ' \n'; }
OKEY="sk-proj-scan$(rand)"
AKEY="sk-ant-api03-scan$(rand)"
export OPENAI_API_KEY=$OKEY ANTHROPIC_API_KEY=$AKEY ML_SCAN_OKEY=$OKEY ML_SCAN_AKEY=$AKEY
export HOME=$SCRATCH/home XDG_CACHE_HOME=$SCRATCH/home/.cache XDG_CONFIG_HOME=$SCRATCH/home/.config
mkdir -p "$HOME" out

# The needles: each key whole and a 16-byte piece from its middle (a key cut or padded in
# a message is still a leak).
NEEDLES=("$OKEY" "$AKEY" "${OKEY:12:16}" "${AKEY:17:16}")
leaks() { # leaks DIR: files under DIR holding a needle, one per line
  for n in "${NEEDLES[@]}"; do grep -rlaF -- "$n" "$1" 2>/dev/null || true; done | sort -u
}
mkdir -p control && printf 'Authorization: Bearer %s\n' "$OKEY" >control/leaky.txt
printf 'x-api-key: ...%s...\n' "${AKEY:17:16}" >control/partial.txt
if [ "$(leaks control | wc -l)" -eq 2 ]; then pass "the scan finds a key, whole and in part"; else
  fail "the scan misses planted keys" "$(leaks control)"; finish; fi
rm -rf control

# 1. Zero config from OPENAI_API_KEY: a full recipe run, verbose, with JSON events.
start_mock plain --sim --latency uniform:0:5
OPENAI_BASE_URL=$MOCK_URL "$MOONLOOP" run --verbose --json "$RECIPE" --out run-zero --seed 3 \
  >out/zero.stdout 2>out/zero.stderr && pass "zero-config recipe run" ||
  fail "zero-config recipe run" "$(tail -3 out/zero.stderr)"

# 2. A config with an OpenAI and an Anthropic provider (keys named by api_key_env), the
#    roles split across both, a response cache, and a mock that fails one request in ten
#    in every way it can; killed once and resumed.
start_mock faulty --sim --seed 5 --fault 429=0.02 --fault 500=0.02 --fault reset=0.02 \
  --fault truncate=0.02 --fault badjson=0.01 --fault 529=0.01 --retry-after 0
FAULTY=$MOCK_URL
cat >two.cfg.lua <<LUA
return {
  providers = {
    oa = { kind = "openai", base_url = "$FAULTY", api_key_env = "ML_SCAN_OKEY", max_attempts = 8 },
    an = { kind = "anthropic", base_url = "$FAULTY", api_key_env = "ML_SCAN_AKEY", max_attempts = 8 },
  },
  default_provider = "oa",
  models = { strong = "oa/sim-strong", weak = "an/sim-weak", judge = "an/sim-judge",
             challenger = "oa/sim-strong", checker = "an/sim-judge" },
  cache = { path = "$SCRATCH/cache/responses.db", mode = "readwrite" },
}
LUA
"$MOONLOOP" run --config two.cfg.lua --verbose "$RECIPE" --out run-two --seed 4 --concurrency 4 \
  >out/two.stdout 2>out/two.stderr &
pid=$!
# Killed once the run directory is complete (a kill inside its creation is a known defect
# covered by crash_test.sh), then a little into the run.
for _ in $(seq 400); do [ -s run-two/recipes/v0001.lua ] && break; sleep 0.05; done
sleep 0.4
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
"$MOONLOOP" run --config two.cfg.lua --verbose --resume run-two >out/two-resume.stdout \
  2>out/two-resume.stderr && pass "two providers with faults, killed and resumed" ||
  fail "two-provider run" "$(tail -3 out/two-resume.stderr)"
# The same recipe again into a new directory: answers come from the cache this time.
"$MOONLOOP" run --config two.cfg.lua "$RECIPE" --out run-cached --seed 4 >out/cached.stdout \
  2>out/cached.stderr && pass "a second run served from the cache" ||
  fail "cached run" "$(tail -3 out/cached.stderr)"
[ -s cache/responses.db ] && pass "the cache file was written ($(du -k cache/responses.db | cut -f1) KiB)" ||
  fail "no cache file to scan" "$(ls -la cache 2>&1)"

# 3. Errors printed by scripts: every fault kind with no retry, a refused connection, an
#    uncaught error with its traceback. Trusted, to name providers directly (sandboxed
#    scripts name roles only).
start_mock errs --seed 9 --fault 500=0.1 --fault reset=0.1 --fault truncate=0.1 \
  --fault badjson=0.1 --fault badsse=0.1 --fault sse_error=0.1 --retry-after 0
cat >errors.cfg.lua <<LUA
return { providers = {
  oa = { kind = "openai", base_url = "$MOCK_URL", api_key_env = "ML_SCAN_OKEY", max_attempts = 1 },
  an = { kind = "anthropic", base_url = "$MOCK_URL", api_key_env = "ML_SCAN_AKEY", max_attempts = 1 },
  dead = { kind = "openai", base_url = "http://127.0.0.1:9/v1", api_key_env = "ML_SCAN_OKEY",
           max_attempts = 1, connect_timeout_ms = 2000 } }, default_provider = "oa" }
LUA
cat >errors.lua <<'LUA'
local n = 0
for i = 1, 40 do
  for _, m in ipairs({ "oa/m", "an/m" }) do
    local ok, err = pcall(llm.chat, { model = m, prompt = "error path " .. i, stream = i % 2 == 0 })
    if not ok then n = n + 1; print("error: " .. tostring(err)) end
  end
end
local ok, err = pcall(llm.chat, { model = "dead/m", prompt = "nobody there" })
print("refused: " .. tostring(err))
assert(not ok, "the dead provider answered")
print("errors seen: " .. n)
llm.chat { model = "dead/m", prompt = "uncaught" }
LUA
set +e
"$MOONLOOP" run --trusted --config errors.cfg.lua --verbose errors.lua >out/errors.stdout 2>out/errors.stderr
code=$?
set -e
nerr=$(sed -n 's/^errors seen: //p' out/errors.stdout)
if [ "$code" -eq 1 ] && [ "${nerr:-0}" -ge 10 ] && [ "${nerr:-0}" -le 60 ] &&
  grep -q "refused: .*connect" out/errors.stdout; then
  pass "error messages printed: $nerr failed calls, a refused connection, a traceback"
else
  fail "error script" "exit $code, errors seen '${nerr}': $(tail -3 out/errors.stderr)"
fi
"$MOONLOOP" check --config two.cfg.lua "$RECIPE" >out/check.stdout 2>out/check.stderr &&
  pass "moonloop check with the config" || fail "moonloop check" "$(tail -3 out/check.stderr)"

# 4. Code run for verification gets a clean environment: no key reaches a child process.
cat >child.lua <<'LUA'
local r = proc.run { argv = { "env" } }
assert(r.code == 0, "env failed")
io.write(r.stdout)
LUA
"$MOONLOOP" run --trusted child.lua >out/child.stdout 2>out/child.stderr && [ -s out/child.stdout ] &&
  pass "a child process ran (its environment is scanned too)" || fail "child process" "$(cat out/child.stderr)"

# 5. Traces and the report, where this build has them.
if "$MOONLOOP" run --help 2>&1 | grep -q -- "--trace"; then
  OPENAI_BASE_URL=$FAULTY "$MOONLOOP" run --trace "$RECIPE" --out run-trace --seed 5 \
    >out/trace.stdout 2>out/trace.stderr && pass "a traced run" || fail "traced run" "$(tail -3 out/trace.stderr)"
  ls run-trace/*trace* >/dev/null 2>&1 && pass "a trace file to scan" || fail "no trace file" "$(ls run-trace)"
else
  echo "     (this build has no run --trace yet: traces not scanned)"
fi
if "$MOONLOOP" report --help >/dev/null 2>&1; then
  for d in run-zero run-two; do
    "$MOONLOOP" report "$d" >"out/report-$d.stdout" 2>"out/report-$d.stderr" ||
      fail "report of $d" "$(tail -3 "out/report-$d.stderr")"
  done
  pass "reports written for the runs"
else
  echo "     (this build has no moonloop report yet: reports not scanned)"
fi

# Stop the mock servers so their logs are complete, then scan everything.
cleanup
MOCK_PIDS=()
files=$(find "$SCRATCH" -type f | wc -l)
bytes=$(du -sk "$SCRATCH" | cut -f1)
found=$(leaks "$SCRATCH")
if [ -z "$found" ]; then
  pass "no key in any of $files files ($bytes KiB: run dirs, run.db, cache, mock logs, outputs)"
else
  fail "a key leaked into $(wc -l <<<"$found") file(s)" "$(head -5 <<<"$found" | sed "s|$SCRATCH/||")"
fi
finish

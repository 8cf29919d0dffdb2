#!/usr/bin/env bash
# llm.chat over real HTTP against `moonloop mock-server`: results and streaming, every
# injected fault as the right error kind, deadlines, cancellation, and 10,000 requests
# with 2,000 in flight.
source "$(dirname "$0")/lib.sh"
export OPENAI_API_KEY=sk-integration-test-key-do-not-print
export ML_SOURCE_DIR=${ML_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$SCRATCH"

start_mock plain
if OPENAI_BASE_URL=$MOCK_URL "$MOONLOOP" run --trusted "$ML_SOURCE_DIR/tests/integration/llm_cases.lua" \
    >cases.out 2>&1; then
  pass "llm.chat cases ($(grep -c '^ok' cases.out) checks)"
else
  fail "llm.chat cases" "$(grep -A1 FAIL cases.out | head -20; tail -5 cases.out)"
fi

for fault in 429 500 503 reset stall truncate badjson; do
  start_mock "f$fault" --fault "$fault=1" --retry-after 2
  if OPENAI_BASE_URL=$MOCK_URL "$MOONLOOP" run --trusted "$ML_SOURCE_DIR/tests/integration/llm_faults.lua" \
      "$fault" >"f$fault.out" 2>&1; then
    pass "fault $fault: $(head -1 "f$fault.out")"
  else
    fail "fault $fault" "$(cat "f$fault.out")"
  fi
done
for fault in stall truncate badsse reset; do
  start_mock "s$fault" --fault "$fault=1"
  if OPENAI_BASE_URL=$MOCK_URL "$MOONLOOP" run --trusted "$ML_SOURCE_DIR/tests/integration/llm_faults.lua" \
      "$fault" stream >"s$fault.out" 2>&1; then
    pass "fault $fault in a stream: $(head -1 "s$fault.out")"
  else
    fail "fault $fault in a stream" "$(cat "s$fault.out")"
  fi
done

# Retries: one loop in the engine. Half the answers fail with 500: every request succeeds.
start_mock flaky --fault 503=0.3 --seed 3
cat >retry.lua <<'LUA'
local items = {}
for i = 1, 200 do items[i] = i end
task.map(items, function(i) return llm.chat{ prompt = "flaky " .. i }.text end, { limit = 50 })
local s = llm.stats()
print(("ok=%d sent=%d retries=%d errors=%d"):format(s.ok, s.sent, s.retries, s.errors))
assert(s.ok == 200 and s.errors == 0 and s.retries > 30 and s.sent == 200 + s.retries)
LUA
if OPENAI_BASE_URL=$MOCK_URL timeout 120 "$MOONLOOP" run --trusted retry.lua >retry.out 2>&1; then
  pass "30% 503s are retried until every request succeeds: $(tail -1 retry.out)"
else
  fail "retries on 503" "$(tail -5 retry.out)"
fi
# A 429 with Retry-After: 1 s is honoured, and the final error says how many attempts.
start_mock limited --fault 429=1 --retry-after 1
cat >retry429.lua <<'LUA'
local t0 = os.time()
local clock0 = llm.stats()
local ok, err = pcall(llm.chat, { prompt = "always limited", attempts = 3 })
local waited = os.time() - t0
assert(not ok and err.kind == "rate_limited", tostring(err))
assert(err.attempts == 3, "attempts " .. tostring(err.attempts))
assert(tostring(err):find("after 3 attempts", 1, true), tostring(err))
assert(waited >= 1, "waited " .. waited .. " s: Retry-After was not honoured")
print(tostring(err))
LUA
if OPENAI_BASE_URL=$MOCK_URL timeout 60 "$MOONLOOP" run --trusted retry429.lua >retry429.out 2>&1; then
  pass "Retry-After is honoured and the final error counts the attempts"
else
  fail "Retry-After" "$(tail -5 retry429.out)"
fi
# A 404 is the caller's mistake: never retried.
cat >noretry.lua <<'LUA'
local ok, err = pcall(llm.chat, { prompt = "x" })
assert(not ok and err.kind == "http" and err.status == 404 and err.attempts == 1, tostring(err))
assert(llm.stats().sent == 1)
LUA
if OPENAI_BASE_URL=${MOCK_URL%/v1}/nowhere timeout 30 "$MOONLOOP" run --trusted noretry.lua >noretry.out 2>&1; then
  pass "a 404 is not retried"
else
  fail "404 not retried" "$(tail -5 noretry.out)"
fi

# Nothing listening: a transport error that says so.
cat >refused.lua <<'LUA'
local ok, err = pcall(llm.chat, { prompt = "anyone there?", attempts = 1 })
assert(not ok and err.kind == "transport", tostring(err))
assert(tostring(err):find("could not connect"), tostring(err))
print(tostring(err))
LUA
if OPENAI_BASE_URL=http://127.0.0.1:9/v1 "$MOONLOOP" run --trusted refused.lua >refused.out 2>&1; then
  pass "connection refused is a transport error: $(head -1 refused.out)"
else
  fail "connection refused" "$(cat refused.out)"
fi

# The only transfer in flight times out: the deadline must fire and the process end.
start_mock slow --latency 10000
cat >last_timeout.lua <<'LUA'
local t0 = os.time()
local ok, err = pcall(llm.chat, { prompt = "slow", timeout_ms = 300, attempts = 1 })
assert(not ok and err.kind == "timeout", tostring(err))
assert(tostring(err):find("300 ms"), tostring(err))
print(tostring(err))
LUA
if OPENAI_BASE_URL=$MOCK_URL timeout 10 "$MOONLOOP" run --trusted last_timeout.lua >last_timeout.out 2>&1; then
  pass "the last transfer's deadline fires: $(head -1 last_timeout.out)"
else
  fail "last transfer timeout" "$(cat last_timeout.out)"
fi

# A stream that goes quiet: the idle deadline fires long before the total one.
start_mock quiet --fault stall=1
cat >idle.cfg.lua <<LUA
return { providers = { mock = { kind = "openai", base_url = "$MOCK_URL",
                                idle_timeout_ms = 300, timeout_ms = 60000 } } }
LUA
cat >idle.lua <<'LUA'
local ok, err = pcall(llm.chat, { prompt = "quiet", stream = function() end, attempts = 1 })
assert(not ok and err.kind == "timeout", tostring(err))
assert(tostring(err):find("no data from the server for 300 ms"), tostring(err))
print(tostring(err))
LUA
if timeout 10 "$MOONLOOP" run --trusted --config idle.cfg.lua idle.lua >idle.out 2>&1; then
  pass "the stream idle deadline fires: $(head -1 idle.out)"
else
  fail "stream idle deadline" "$(cat idle.out)"
fi

# Cancelling a task that waits on a request removes the transfer at once.
cat >cancel.lua <<'LUA'
local h = task.spawn(function() return llm.chat{ prompt = "never answered in time" } end)
task.sleep(100)
assert(llm.stats().in_flight == 1, "one request in flight before the cancel")
h:cancel()
assert(llm.stats().in_flight == 0, "the transfer is gone right after cancel()")
local ok, err = pcall(h.join, h)
assert(not ok and err.kind == "cancelled", tostring(err))
print("cancelled: " .. tostring(err))
LUA
if OPENAI_BASE_URL=$MOCK_URL timeout 10 "$MOONLOOP" run --trusted cancel.lua >cancel.out 2>&1; then
  pass "cancel removes the transfer at once"
else
  fail "cancel removes the transfer" "$(cat cancel.out)"
fi

# task.timeout around llm.chat cancels the request.
cat >task_timeout.lua <<'LUA'
local ok, err = pcall(task.timeout, 200, function() return llm.chat{ prompt = "slow" } end)
assert(not ok and err.kind == "timeout", tostring(err))
assert(llm.stats().in_flight == 0, "no transfer left behind")
LUA
if OPENAI_BASE_URL=$MOCK_URL timeout 10 "$MOONLOOP" run --trusted task_timeout.lua >task_timeout.out 2>&1; then
  pass "task.timeout around llm.chat cancels the request"
else
  fail "task.timeout around llm.chat" "$(cat task_timeout.out)"
fi

# 10,000 requests, 2,000 in flight, all complete.
start_mock load --latency 200
cat >load.lua <<'LUA'
local N, K = 10000, 2000
local items = {}
for i = 1, N do items[i] = i end
local ok = 0
task.map(items, function(i)
  local r = llm.chat{ prompt = "load " .. i, max_tokens = 8 }
  if #r.text > 0 then ok = ok + 1 end
end, { limit = K })
local s = llm.stats()
print(("ok=%d requests=%d errors=%d peak_in_flight=%d connections=%d"):format(
  ok, s.requests, s.errors, s.in_flight_peak, s.connections_opened))
assert(ok == N, "all answered")
assert(s.in_flight_peak == K, "peak in flight " .. s.in_flight_peak)
LUA
if OPENAI_BASE_URL=$MOCK_URL timeout 120 "$MOONLOOP" run --trusted load.lua >load.out 2>&1; then
  pass "10,000 requests with 2,000 in flight: $(tail -1 load.out)"
else
  fail "10,000 requests with 2,000 in flight" "$(tail -5 load.out)"
fi

# llama.cpp's /props: with no max_inflight configured, its total_slots caps requests in flight.
start_mock slots --slots 3 --latency 100
cat >slots.lua <<'LUA'
local items = {}
for i = 1, 30 do items[i] = i end
task.map(items, function(i) return llm.chat{ prompt = "slot " .. i }.text end, { limit = 30 })
local s = llm.stats()
local lim = s.limits["openai/gpt-4o-mini"]
print(("peak in flight %d, cap %d"):format(s.in_flight_peak, lim.cap))
assert(s.ok == 30 and lim.cap == 3 and s.in_flight_peak <= 3, "capped by the server's slots")
LUA
if OPENAI_BASE_URL=$MOCK_URL timeout 60 "$MOONLOOP" run --trusted slots.lua >slots.out 2>&1; then
  pass "llama.cpp /props slots cap the requests in flight: $(tail -1 slots.out)"
else
  fail "/props slots" "$(tail -5 slots.out)"
fi

# Budgets: a request cap and a dollar budget stop new work and cancel what is in flight.
cat >budget.lua <<'LUA'
local items = {}
for i = 1, 300 do items[i] = i end
task.map(items, function(i) return llm.chat{ model = "priced", prompt = "budget " .. i }.text end, { limit = 20 })
print("not reached")
LUA
set +e
OPENAI_BASE_URL=$MOCK_URL timeout 30 "$MOONLOOP" run --trusted budget.lua --max-requests 40 >budget_req.out 2>&1; code=$?
set -e
if [ $code -eq 3 ] && grep -q "40 requests sent of 40 allowed" budget_req.out && ! grep -q "not reached" budget_req.out; then
  pass "--max-requests stops new work, cancels the rest and exits 3"
else
  fail "--max-requests" "exit $code: $(cat budget_req.out)"
fi
cat >budget.cfg.lua <<LUA
return { providers = { mock = { kind = "openai", base_url = "$MOCK_URL" } },
         models = { priced = { provider = "mock", model = "m", price = { input = 1000, output = 1000 } } } }
LUA
set +e
timeout 30 "$MOONLOOP" run --trusted --config budget.cfg.lua budget.lua --budget-usd 1 >budget_usd.out 2>&1; code=$?
set -e
if [ $code -eq 3 ] && grep -q "spent of a \$1.00 budget" budget_usd.out; then
  pass "--budget-usd stops the run once the priced cost passes it: $(grep -o '\$[0-9.]* spent of a \$1.00 budget' budget_usd.out)"
else
  fail "--budget-usd" "exit $code: $(cat budget_usd.out)"
fi

# The key given in the environment is in no output.
if grep -rqF "$OPENAI_API_KEY" "$SCRATCH"/*.out; then
  fail "the API key appears in output" "$(grep -rlF "$OPENAI_API_KEY" "$SCRATCH"/*.out)"
else
  pass "the API key appears in no output"
fi
finish

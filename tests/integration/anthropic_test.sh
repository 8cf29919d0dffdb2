#!/usr/bin/env bash
# llm.chat with kind = "anthropic" against the mock server's Messages API: results,
# streaming, the headers it requires, faults mapped to error kinds, retries of 529, and
# zero config from ANTHROPIC_API_KEY.
source "$(dirname "$0")/lib.sh"
cd "$SCRATCH"
export ANTHROPIC_API_KEY=sk-ant-integration-test-do-not-print

start_mock anth
cat >anth.cfg.lua <<LUA
return { providers = { claude = { kind = "anthropic", base_url = "$MOCK_URL",
                                  api_key_env = "ANTHROPIC_API_KEY", model = "claude-test" } } }
LUA
cat >anth.lua <<'LUA'
local r = llm.chat{ system = "be brief", prompt = "What does a write-ahead log guarantee?", max_tokens = 200 }
assert(#r.text > 0 and r.finish_reason == "stop", r.finish_reason)
assert(r.usage.input > 0 and r.usage.output > 0, "usage")
assert(r.provider == "claude")
local parts = {}
local s = llm.chat{ prompt = "stream please", stream = function(d) parts[#parts + 1] = d end }
assert(#parts >= 2 and table.concat(parts) == s.text, "stream deltas add up")
assert(s.usage.output > 0, "stream usage from message_delta")
local cut = llm.chat{ prompt = "a long answer please", max_tokens = 3 }
assert(cut.finish_reason == "length", cut.finish_reason)
local ok, err = pcall(llm.chat, { prompt = "x", n = 2 })
assert(not ok and tostring(err):find("n > 1 is not supported"), tostring(err))
print("ok: " .. r.text:sub(1, 60))
LUA
if timeout 30 "$MOONLOOP" run --trusted --config anth.cfg.lua anth.lua >anth.out 2>&1; then
  pass "Messages API: text, usage, stop reasons, streaming"
else
  fail "Messages API" "$(cat anth.out)"
fi

for fault in 429 529 500 truncate badsse sse_error; do
  start_mock "a$fault" --fault "$fault=1" --retry-after 1
  cat >"a$fault.cfg.lua" <<LUA
return { providers = { claude = { kind = "anthropic", base_url = "$MOCK_URL",
                                  api_key_env = "ANTHROPIC_API_KEY" } } }
LUA
  cat >"a$fault.lua" <<LUA
local want = ({ ["429"] = "rate_limited", ["529"] = "http", ["500"] = "http",
  truncate = "transport", badsse = "parse", sse_error = "http" })["$fault"]
local ok, err = pcall(llm.chat, { prompt = "x", attempts = 1,
  stream = ("$fault" == "truncate" or "$fault" == "badsse" or "$fault" == "sse_error") and function() end or nil })
assert(not ok and err.kind == want, "$fault: " .. tostring(err))
assert(not tostring(err):find(os.getenv("ANTHROPIC_API_KEY"), 1, true), "key leaked")
print(tostring(err))
LUA
  if timeout 30 "$MOONLOOP" run --trusted --config "a$fault.cfg.lua" "a$fault.lua" >"a$fault.out" 2>&1; then
    pass "fault $fault: $(head -1 "a$fault.out" | cut -c1-150)"
  else
    fail "fault $fault" "$(cat "a$fault.out")"
  fi
done

# 529 overloaded 30% of the time: retried until every request succeeds (sequential requests,
# so the seed fixes which ones fail).
start_mock a529half --fault 529=0.3 --seed 5
cat >a529half.cfg.lua <<LUA
return { providers = { claude = { kind = "anthropic", base_url = "$MOCK_URL",
                                  api_key_env = "ANTHROPIC_API_KEY" } } }
LUA
cat >a529half.lua <<'LUA'
local items = {}
for i = 1, 40 do items[i] = i end
task.map(items, function(i) return llm.chat{ prompt = "q" .. i }.text end, { limit = 1 })
local s = llm.stats()
assert(s.ok == 40 and s.retries > 0, ("ok=%d retries=%d"):format(s.ok, s.retries))
print(("ok=%d retries=%d"):format(s.ok, s.retries))
LUA
if timeout 120 "$MOONLOOP" run --trusted --config a529half.cfg.lua a529half.lua >a529half.out 2>&1; then
  pass "529 overloaded is retried: $(tail -1 a529half.out)"
else
  fail "529 retried" "$(tail -5 a529half.out)"
fi

# Zero config: only ANTHROPIC_API_KEY set (ANTHROPIC_BASE_URL points at the mock).
start_mock zero
printf 'local r = llm.chat{ model = "judge", prompt = "hi" }\nprint(r.provider, r.text ~= "")\n' >zero.lua
if env -u OPENAI_API_KEY -u OPENAI_BASE_URL HOME=/nonexistent XDG_CONFIG_HOME=/nonexistent \
    ANTHROPIC_BASE_URL=$MOCK_URL timeout 30 "$MOONLOOP" run --trusted zero.lua >zero.out 2>&1 &&
    grep -q "anthropic	true" zero.out; then
  pass "zero config from ANTHROPIC_API_KEY"
else
  fail "zero config from ANTHROPIC_API_KEY" "$(cat zero.out)"
fi
if grep -rqF "$ANTHROPIC_API_KEY" "$SCRATCH"/*.out; then
  fail "the API key appears in output"
else
  pass "the API key appears in no output"
fi
finish

#!/usr/bin/env bash
# The simulator over HTTP: `moonloop mock-server --sim` reads the role from the
# X-Moonloop-Role header that llm.chat sends for tags.role, and answers a fixed set of
# requests (every role, n > 1, JSON mode, streaming) with exactly the texts the in-process
# simulator (`moonloop run --offline`) gives.
source "$(dirname "$0")/lib.sh"
export OPENAI_API_KEY=sk-integration-test-key-do-not-print
export ML_SOURCE_DIR=${ML_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$SCRATCH"

cat >cases.lua <<'LUA'
-- Fixed requests for every simulator role; prints each answer's text.
local cal = require "moonloop.sim.calibrate"
local function show(label, r)
  print("### " .. label)
  print(r.text)
end
local function ask(role, messages, seed, extra)
  local spec = { messages = messages, seed = seed, tags = role and { role = role } or nil }
  for k, v in pairs(extra or {}) do spec[k] = v end
  return llm.chat(spec)
end
local user = cal.PROMPTS.asi .. "\n\nSOURCE (raft.txt):\n" .. cal.NOTES[2]
local history = user
  .. "\n\nTOO EASY (the weak model solved it):\n- [x] an old question (weak 0.90)"
local cands = {}
for seed = 1, 6 do
  local r = ask("challenger", { { role = "user", content = seed % 2 == 0 and history or user } },
    seed, { system = cal.SYSTEM })
  show("challenger " .. seed, r)
  local ok, c = pcall(json.extract, r.text)
  if ok and type(c) == "table" and c.question then cands[#cands + 1] = c end
end
assert(#cands >= 3, "too few candidates parsed")
for i, c in ipairs(cands) do
  show("checker " .. i, ask("checker", { { role = "user", content = "SOURCE:\n" .. cal.NOTES[2]
    .. "\n\nCANDIDATE:\n" .. json.encode(c, { sort_keys = true }) } }, i))
  for _, which in ipairs({ "weak", "strong" }) do
    local a = ask(which, { { role = "user", content = "CONTEXT:\n" .. c.context
      .. "\n\nQUESTION:\n" .. c.question } }, i)
    show(which .. " " .. i, a)
    local lines = {}
    for k, item in ipairs(c.rubric or {}) do lines[k] = k .. ". " .. item.criterion end
    show("judge " .. which .. " " .. i, ask("judge", { { role = "user", content = "QUESTION:\n"
      .. c.question .. "\n\nRUBRIC:\n" .. table.concat(lines, "\n") .. "\n\nANSWER:\n"
      .. a.text } }, i))
  end
end
show("analyst", ask("analyst", { { role = "user", content = "Too easy: 12 of 20 rounds.\n"
  .. "REGION: challenger_prompt\nBEGIN REGION\nWrite a hard question.\n"
  .. "Ask about a specific mechanism.\nEND REGION" } }, 5))
show("unknown role", ask("poet", { { role = "user", content = "Write a haiku." } }, 1))
show("no role", ask(nil, { { role = "user", content = "Hello there." } }, 1))
local q = "CONTEXT:\nx\n\nQUESTION:\n" .. cands[1].question
for i, r in ipairs(ask("weak", { { role = "user", content = q } }, 9, { n = 3 })) do
  show("weak n=3 #" .. i, r)
end
show("challenger json mode",
  ask("challenger", { { role = "user", content = user } }, 11, { json = true }))
local pieces = {}
local s = ask("strong", { { role = "user", content = q } }, 12,
  { stream = function(d) pieces[#pieces + 1] = d end })
show("strong streamed", s)
print("streamed pieces add up to the text: " .. tostring(table.concat(pieces) == s.text))
LUA

if "$MOONLOOP" run --trusted --offline cases.lua >offline.out 2>offline.err; then
  pass "the cases run in-process ($(grep -c '^###' offline.out) answers)"
else
  fail "the cases run in-process" "$(tail -5 offline.err)"
fi

start_mock sim --sim
if OPENAI_BASE_URL=$MOCK_URL "$MOONLOOP" run --trusted cases.lua >http.out 2>http.err; then
  pass "the cases run over HTTP against mock-server --sim"
else
  fail "the cases run over HTTP" "$(tail -5 http.err)"
fi

if [ -s offline.out ] && diff -u offline.out http.out >diff.out; then
  pass "over HTTP and in-process, every answer is byte-identical"
else
  fail "HTTP and in-process answers differ" "$(head -20 diff.out)"
fi
expect_contains "streamed pieces add up to the text" http.out \
  "streamed pieces add up to the text: true"
expect_contains "the analyst's edit arrives as a SEARCH/REPLACE block" http.out \
  "<<<<<<< SEARCH challenger_prompt"
expect_contains "an unknown role gets the mock's default answer" http.out "Mock answer"

# The header alone picks the role; without it the server keeps its default answer.
q="According to the note, how does the cache relate to the index, and what follows for the log?"
body='{"model":"m","messages":[{"role":"user","content":"CONTEXT:\nx\n\nQUESTION:\n'"$q"'"}]}'
curl -s "$MOCK_URL/chat/completions" -H 'X-Moonloop-Role: strong' -d "$body" >role.json
curl -s "$MOCK_URL/chat/completions" -d "$body" >norole.json
expect_contains "X-Moonloop-Role: strong gets a solver's answer" role.json "the cache"
expect_contains "no role header gets the default answer" norole.json "Mock answer"

# --sim is --answer on the simulator's file: both together are a usage error.
if "$MOONLOOP" mock-server --sim --answer x.lua >both.out 2>&1; then
  fail "--sim with --answer is refused" "it started"
else
  expect_contains "--sim with --answer is refused" both.out "one of --answer and --sim"
fi

finish

#!/usr/bin/env bash
# Integration test of the mock server's Anthropic Messages endpoint (POST /v1/messages):
# the message JSON, the SSE event order with its ping, every fault in Anthropic's shapes,
# the required headers, and the answer function seeing an OpenAI-style request. Needs
# $MOONLOOP, curl and python3.
source "$(dirname "$0")/lib.sh"

command -v curl >/dev/null || { echo "FAIL curl is required"; exit 1; }
command -v python3 >/dev/null || { echo "FAIL python3 is required for JSON checks"; exit 1; }

# check NAME PYTHON ARGS...: passes when the Python snippet runs without error.
check() {
  local name=$1 code=$2
  shift 2
  local out
  if out=$(python3 -c "$code" "$@" 2>&1); then
    pass "$name"
  else
    fail "$name" "$(echo "$out" | tail -3)"
  fi
}

# msg NAME [curl args...]: POST to $URL (or $TARGET) with both required headers; headers in
# $SCRATCH/NAME.h, body in $SCRATCH/NAME.out; prints "STATUS CURL_EXIT".
msg() {
  local name=$1 rc=0 code
  shift
  code=$(curl -s -N -D "$SCRATCH/$name.h" -o "$SCRATCH/$name.out" -w '%{http_code}' \
    -H 'x-api-key: test-key' -H 'anthropic-version: 2023-06-01' "${TARGET:-$URL}" "$@") || rc=$?
  echo "$code $rc"
}

# Python helpers: the events of an SSE file as (name, data) pairs, and an error body.
PY='
import json, sys
def events(path):
    out = []
    for block in open(path, encoding="utf-8").read().split("\n\n"):
        name, data = None, None
        for line in block.split("\n"):
            if line.startswith("event: "): name = line[7:]
            elif line.startswith("data: "): data = line[6:]
        if name or data: out.append((name, data))
    return out
def error_of(path):
    d = json.load(open(path))
    assert d["type"] == "error", d
    return d["error"]
'

BODY='{"model":"claude-mock","max_tokens":200,"system":"You are terse.",'
BODY+='"messages":[{"role":"user","content":"Name three prime numbers"}]}'
STREAM="${BODY%\}},\"stream\":true}"
CHAT='{"model":"claude-mock","max_tokens":200,"messages":[{"role":"system","content":'
CHAT+='"You are terse."},{"role":"user","content":"Name three prime numbers"}]}'

start_mock main --stream-chunks 4 --retry-after 3
URL="${MOCK_URL}/messages"

# --- the message object ----------------------------------------------------------------
read -r code rc < <(msg json -d "$BODY")
curl -s -o "$SCRATCH/chat.json" "$MOCK_URL/chat/completions" -d "$CHAT"
check "message JSON has the Messages API shape" "$PY
d = json.load(open(sys.argv[1])); assert sys.argv[3] == '200', sys.argv[3]
assert d['type'] == 'message' and d['id'].startswith('msg_') and d['role'] == 'assistant', d
assert d['model'] == 'claude-mock' and d['stop_reason'] == 'end_turn', d
assert d['stop_sequence'] is None
c = d['content']; assert len(c) == 1 and c[0]['type'] == 'text' and 'prime' in c[0]['text'], c
u = d['usage']; assert u['input_tokens'] > 0 and u['output_tokens'] > 0, u
assert set(u) == {'input_tokens', 'output_tokens'}" "$SCRATCH/json.out" "$SCRATCH/json.h" "$code"
check "the answer is the one chat completions gives for the same conversation" "$PY
a = json.load(open(sys.argv[1]))['content'][0]['text']
b = json.load(open(sys.argv[2]))['choices'][0]['message']['content']
assert a == b, (a, b)" "$SCRATCH/json.out" "$SCRATCH/chat.json"

read -r code rc < <(TARGET="${MOCK_URL%/v1}/messages" msg alias -d "$BODY")
check "POST /messages (no /v1) answers too" "$PY
assert sys.argv[1] == '200'; assert json.load(open(sys.argv[2]))['type'] == 'message'" \
  "$code" "$SCRATCH/alias.out"

# --- the event stream -------------------------------------------------------------------
read -r code rc < <(msg stream -d "$STREAM")
check "stream is text/event-stream with status 200" "
import sys; h = open(sys.argv[1]).read().lower()
assert sys.argv[2] == '200' and 'content-type: text/event-stream' in h" "$SCRATCH/stream.h" "$code"
check "SSE events come in Messages order, each named as its JSON type" "$PY
ev = events(sys.argv[1]); names = [n for n, _ in ev]
want = ['message_start', 'content_block_start', 'content_block_delta', 'content_block_delta',
        'ping', 'content_block_delta', 'content_block_delta', 'content_block_stop',
        'message_delta', 'message_stop']
assert names == want, names
for n, d in ev: assert json.loads(d)['type'] == n, (n, d)" "$SCRATCH/stream.out"
check "stream text, stop_reason and usage match the message JSON" "$PY
ev = [(n, json.loads(d)) for n, d in events(sys.argv[1])]
full = json.load(open(sys.argv[2]))
start = ev[0][1]['message']
assert start['content'] == [] and start['stop_reason'] is None and start['model'] == 'claude-mock'
assert start['usage']['input_tokens'] == full['usage']['input_tokens']
assert ev[1][1]['content_block'] == {'type': 'text', 'text': ''}
text = ''.join(d['delta']['text'] for n, d in ev if n == 'content_block_delta')
assert all(d['delta']['type'] == 'text_delta' for n, d in ev if n == 'content_block_delta')
assert text == full['content'][0]['text'], (text, full)
md = [d for n, d in ev if n == 'message_delta'][0]
assert md['delta']['stop_reason'] == 'end_turn' and md['delta']['stop_sequence'] is None
assert md['usage']['output_tokens'] == full['usage']['output_tokens']" \
  "$SCRATCH/stream.out" "$SCRATCH/json.out"

# --- required headers and bad requests ----------------------------------------------------
code=$(curl -s -o "$SCRATCH/nokey.json" -w '%{http_code}' "$URL" \
  -H 'anthropic-version: 2023-06-01' -d "$BODY")
check "missing x-api-key is a 400 invalid_request_error naming the header" "$PY
e = error_of(sys.argv[1]); assert sys.argv[2] == '400', sys.argv[2]
assert e['type'] == 'invalid_request_error' and 'x-api-key' in e['message'], e" \
  "$SCRATCH/nokey.json" "$code"
code=$(curl -s -o "$SCRATCH/emptykey.json" -w '%{http_code}' "$URL" -H 'x-api-key;' \
  -H 'anthropic-version: 2023-06-01' -d "$BODY")
check "an empty x-api-key counts as missing" "$PY
e = error_of(sys.argv[1]); assert sys.argv[2] == '400' and 'x-api-key' in e['message']" \
  "$SCRATCH/emptykey.json" "$code"
code=$(curl -s -o "$SCRATCH/nover.json" -w '%{http_code}' "$URL" -H 'x-api-key: k' \
  -d "$BODY")
check "missing anthropic-version is a 400 invalid_request_error naming the header" "$PY
e = error_of(sys.argv[1]); assert sys.argv[2] == '400', sys.argv[2]
assert e['type'] == 'invalid_request_error' and 'anthropic-version' in e['message'], e" \
  "$SCRATCH/nover.json" "$code"

read -r code rc < <(msg nomax -d '{"model":"m","messages":[{"role":"user","content":"x"}]}')
check "a body without max_tokens is a 400 naming it" "$PY
e = error_of(sys.argv[1]); assert sys.argv[2] == '400' and 'max_tokens' in e['message'], e" \
  "$SCRATCH/nomax.out" "$code"
read -r code rc < <(msg notjson -d '{"model": oops')
check "a body that is not JSON is a 400 invalid_request_error" "$PY
e = error_of(sys.argv[1]); assert sys.argv[2] == '400' and e['type'] == 'invalid_request_error'" \
  "$SCRATCH/notjson.out" "$code"
read -r code rc < <(msg badsys -d '{"model":"m","max_tokens":5,"system":7,"messages":[]}')
check "a system that is neither text nor text blocks is a 400" "$PY
e = error_of(sys.argv[1]); assert sys.argv[2] == '400' and 'system' in e['message'], e" \
  "$SCRATCH/badsys.out" "$code"
code=$(curl -s -o "$SCRATCH/get.json" -w '%{http_code}' "$URL")
check "GET on the messages endpoint is a 405 in Anthropic's shape" "$PY
e = error_of(sys.argv[1]); assert sys.argv[2] == '405'" "$SCRATCH/get.json" "$code"

# --- faults ---------------------------------------------------------------------------------
read -r code rc < <(msg f429 -H 'X-Mock-Fault: 429' -d "$BODY")
check "fault 429: rate_limit_error with retry-after from --retry-after" "$PY
e = error_of(sys.argv[1]); h = open(sys.argv[2]).read().lower()
assert sys.argv[3] == '429' and e['type'] == 'rate_limit_error' and 'retry-after: 3' in h, (e, h)" \
  "$SCRATCH/f429.out" "$SCRATCH/f429.h" "$code"
for f in 500:api_error 503:overloaded_error 529:overloaded_error; do
  status=${f%%:*} type=${f#*:}
  read -r code rc < <(msg "f$status" -H "X-Mock-Fault: $status" -d "$BODY")
  check "fault $status: status $status and $type" "$PY
e = error_of(sys.argv[1])
assert sys.argv[2] == sys.argv[3] and e['type'] == sys.argv[4] and e['message'], (sys.argv, e)" \
    "$SCRATCH/f$status.out" "$code" "$status" "$type"
done
expect_contains "fault 529: the status line reads 529 Site Overloaded" "$SCRATCH/f529.h" \
  "HTTP/1.1 529 Site Overloaded"

read -r code rc < <(msg reset -H 'X-Mock-Fault: reset' -d "$BODY")
if [ "$rc" = 56 ]; then pass "fault reset: connection reset (curl exit 56)"
else fail "fault reset: connection reset" "curl exit $rc"; fi

read -r code rc < <(msg trunc_json -H 'X-Mock-Fault: truncate' -d "$BODY")
if [ "$rc" = 18 ]; then pass "fault truncate on a message: short body (curl exit 18)"
else fail "fault truncate on a message" "curl exit $rc"; fi

read -r code rc < <(msg trunc -H 'X-Mock-Fault: truncate' -d "$STREAM")
check "fault truncate on a stream: some events, no message_stop, unclean end" "$PY
names = [n for n, _ in events(sys.argv[1])]
assert sys.argv[2] == '18', sys.argv[2]
assert names[0] == 'message_start' and 'message_stop' not in names, names" \
  "$SCRATCH/trunc.out" "$rc"

read -r code rc < <(msg stall -m 1 -H 'X-Mock-Fault: stall' -d "$STREAM")
check "fault stall on a stream: some events, then silence until the client gives up" "$PY
names = [n for n, _ in events(sys.argv[1])]
assert sys.argv[2] == '28' and names and 'message_stop' not in names, (sys.argv[2], names)" \
  "$SCRATCH/stall.out" "$rc"

read -r code rc < <(msg badsse -H 'X-Mock-Fault: badsse' -d "$STREAM")
check "fault badsse: exactly one data line is not JSON, the stream still completes" "$PY
bad = 0
for n, d in events(sys.argv[1]):
    try: json.loads(d)
    except ValueError: bad += 1
assert bad == 1 and sys.argv[2] == '0', (bad, sys.argv[2])
assert events(sys.argv[1])[-1][0] == 'message_stop'" "$SCRATCH/badsse.out" "$rc"

read -r code rc < <(msg badjson -H 'X-Mock-Fault: badjson' -d "$BODY")
check "fault badjson: 200 with a complete body that is not JSON" "
import json, sys
try: json.load(open(sys.argv[1])); sys.exit(1)
except ValueError: assert sys.argv[2] == '200' and sys.argv[3] == '0'" \
  "$SCRATCH/badjson.out" "$code" "$rc"

read -r code rc < <(msg sse_error -H 'X-Mock-Fault: sse_error' -d "$STREAM")
check "fault sse_error: deltas, then an overloaded_error event, and a clean end" "$PY
ev = events(sys.argv[1]); names = [n for n, _ in ev]
assert sys.argv[2] == '200' and sys.argv[3] == '0', sys.argv[2:]
assert names[0] == 'message_start' and 'content_block_delta' in names, names
assert names[-1] == 'error' and 'message_stop' not in names, names
e = json.loads(ev[-1][1]); assert e['type'] == 'error'
assert e['error']['type'] == 'overloaded_error' and e['error']['message'], e" \
  "$SCRATCH/sse_error.out" "$code" "$rc"

read -r code rc < <(msg sse_error_json -H 'X-Mock-Fault: sse_error' -d "$BODY")
check "fault sse_error without streaming: 529 overloaded_error" "$PY
e = error_of(sys.argv[1]); assert sys.argv[2] == '529' and e['type'] == 'overloaded_error'" \
  "$SCRATCH/sse_error_json.out" "$code"

read -r code rc < <(msg bogus -H 'X-Mock-Fault: bogus' -d "$BODY")
check "unknown X-Mock-Fault is a 400 in Anthropic's shape listing the kinds" "$PY
e = error_of(sys.argv[1]); assert sys.argv[2] == '400' and 'sse_error' in e['message'], e" \
  "$SCRATCH/bogus.out" "$code"

read -r code rc < <(msg badlat -H 'X-Mock-Latency: soon' -d "$BODY")
check "malformed X-Mock-Latency is a 400 in Anthropic's shape" "$PY
e = error_of(sys.argv[1]); assert sys.argv[2] == '400' and 'X-Mock-Latency' in e['message'], e" \
  "$SCRATCH/badlat.out" "$code"

t=$(curl -s -o /dev/null -w '%{time_total}' -H 'X-Mock-Latency: 300' -H 'x-api-key: k' \
  -H 'anthropic-version: 2023-06-01' "$URL" -d "$BODY")
check "X-Mock-Latency: 300 delays the answer ($t s)" "
import sys; assert 0.29 <= float(sys.argv[1]) < 2" "$t"

# --- the new fault kinds on chat completions ---------------------------------------------
code=$(curl -s -o "$SCRATCH/oa529.json" -w '%{http_code}' -H 'X-Mock-Fault: 529' \
  "$MOCK_URL/chat/completions" -d "$CHAT")
check "fault 529 on chat completions: 529 with an OpenAI error body" "
import json, sys; e = json.load(open(sys.argv[1]))['error']
assert sys.argv[2] == '529' and e['message']" "$SCRATCH/oa529.json" "$code"
curl -s -N -o "$SCRATCH/oa_sse_error.txt" -H 'X-Mock-Fault: sse_error' \
  "$MOCK_URL/chat/completions" -d "${CHAT%\}},\"stream\":true}"
check "fault sse_error on chat completions: chunks, then a data: {error} event, no [DONE]" "
import json, sys
data = [l[6:] for l in open(sys.argv[1]).read().split('\n') if l.startswith('data: ')]
assert '[DONE]' not in data and len(data) >= 2, data
assert 'choices' in json.loads(data[0]) and json.loads(data[-1])['error']['message']" \
  "$SCRATCH/oa_sse_error.txt"

# --- the request log ---------------------------------------------------------------------
sleep 0.2
check "request log names the Anthropic faults and paths" "
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
m = [r for r in rows if r['path'] == '/v1/messages']
assert any(r['fault'] == '529' and r['status'] == 529 for r in m)
assert any(r['fault'] == 'sse_error' and r['stream'] and r['status'] == 200 for r in m)
assert any(r['fault'] == 'truncate' and r['stream'] and not r['completed'] for r in m)
assert any(r['path'] == '/messages' for r in rows)" "$SCRATCH/main.log"

# --- what the answer function sees ---------------------------------------------------------
cat >"$SCRATCH/echo_answer.lua" <<'LUA'
-- Echoes what it was given, so the test can see the request the Messages body became.
return { chat = function(req, index, meta)
  local first = req.messages[1]
  local stop = type(req.stop) == "table" and table.concat(req.stop, ",") or "-"
  if req.model == "explode" then error("the answer function broke on purpose") end
  return {
    text = json.encode({ role = meta.role or "-", first_role = first.role,
                         first = first.content, n = #req.messages, max_tokens = req.max_tokens,
                         stop = stop, model = req.model }),
    finish_reason = "length",
    usage = { input = 7, output = 3 },
  }
end }
LUA
start_mock echo --answer "$SCRATCH/echo_answer.lua"
URL="${MOCK_URL}/messages"
read -r code rc < <(msg echo -H 'X-Moonloop-Role: judge' -d '{"model":"m1","max_tokens":9,
  "system":[{"type":"text","text":"S1"},{"type":"text","text":"S2"}],
  "stop_sequences":["END","###"],
  "messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"},
              {"role":"user","content":[{"type":"text","text":"q2"}]}]}')
check "answer function gets an OpenAI-style request: system first, stop, max_tokens, role" "$PY
d = json.load(open(sys.argv[1])); seen = json.loads(d['content'][0]['text'])
assert seen == {'role': 'judge', 'first_role': 'system', 'first': 'S1\nS2', 'n': 4,
                'max_tokens': 9, 'stop': 'END,###', 'model': 'm1'}, seen
assert d['stop_reason'] == 'max_tokens', d['stop_reason']
assert d['usage'] == {'input_tokens': 7, 'output_tokens': 3}, d['usage']" "$SCRATCH/echo.out"

read -r code rc < <(msg nosys \
  -d '{"model":"m1","max_tokens":9,"messages":[{"role":"user","content":"q"}]}')
check "without system the first message is the user's" "$PY
seen = json.loads(json.load(open(sys.argv[1]))['content'][0]['text'])
assert seen['first_role'] == 'user' and seen['n'] == 1 and seen['role'] == '-', seen" \
  "$SCRATCH/nosys.out"

read -r code rc < <(msg explode -d '{"model":"explode","max_tokens":9,"messages":[]}')
check "a failing answer function is a 500 api_error with its message" "$PY
e = error_of(sys.argv[1]); assert sys.argv[2] == '500' and e['type'] == 'api_error'
assert 'broke on purpose' in e['message'], e" "$SCRATCH/explode.out" "$code"

finish

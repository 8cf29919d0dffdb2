#!/usr/bin/env bash
# Integration test of `moonloop mock-server`: starts real servers on ephemeral ports and
# checks them with curl (answers, SSE, keep-alive, determinism, every fault, latency, the
# request log, bad flags, SIGTERM). Needs $MOONLOOP (the binary), curl and python3 (JSON).
set -u

MOONLOOP=${MOONLOOP:?set MOONLOOP to the moonloop binary}
SCRATCH=${ML_SCRATCH:-$(mktemp -d)}/mock_server
rm -rf "$SCRATCH"
mkdir -p "$SCRATCH"

PASS=0
FAIL=0
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null
  done
  wait 2>/dev/null
}
trap cleanup EXIT

ok() { echo "ok   - $1"; PASS=$((PASS + 1)); }
fail() { echo "FAIL - $1${2:+: $2}"; FAIL=$((FAIL + 1)); }
# check NAME COMMAND...: passes when the command succeeds.
check() {
  local name=$1
  shift
  if "$@"; then ok "$name"; else fail "$name"; fi
}

command -v curl >/dev/null || { echo "FAIL - curl is required"; exit 1; }
command -v python3 >/dev/null || { echo "FAIL - python3 is required for JSON checks"; exit 1; }

# start NAME ARGS...: start a server, wait for its port file; sets PORT and PID.
start() {
  local name=$1
  shift
  rm -f "$SCRATCH/$name.port"
  "$MOONLOOP" mock-server --port 0 --port-file "$SCRATCH/$name.port" "$@" >/dev/null \
    2>"$SCRATCH/$name.stderr" &
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 100); do
    [ -s "$SCRATCH/$name.port" ] && break
    sleep 0.05
  done
  PORT=$(cat "$SCRATCH/$name.port" 2>/dev/null)
  [ -n "$PORT" ]
}

# Python helpers, given the file to inspect; they exit non-zero with a reason.
pyjson() { python3 -c "$1" "${@:2}"; }

CHAT='{"model":"test-model","messages":[{"role":"system","content":"You are terse."},'
CHAT+='{"role":"user","content":"Name three prime numbers"}]}'

if ! start main --log "$SCRATCH/main.log" --seed 7 --stream-chunks 4 --retry-after 3; then
  echo "FAIL - server did not start: $(cat "$SCRATCH/main.stderr")"
  exit 1
fi
URL="http://127.0.0.1:$PORT"
REQS=0 # requests sent to the main server, to check the log

check "stderr announces the port" grep -q "mock-server listening on http://127.0.0.1:$PORT" \
  "$SCRATCH/main.stderr"

# --- plain endpoints ---------------------------------------------------------------------
body=$(curl -s "$URL/health"); REQS=$((REQS + 1))
check "GET /health answers ok" [ "$body" = "ok" ]

curl -s "$URL/v1/models" -o "$SCRATCH/models.json"; REQS=$((REQS + 1))
check "GET /v1/models lists models" pyjson '
import json,sys; d=json.load(open(sys.argv[1]))
assert d["object"]=="list" and len(d["data"])>=1 and all("id" in m for m in d["data"])' \
  "$SCRATCH/models.json"

code=$(curl -s -o "$SCRATCH/404.json" -w '%{http_code}' "$URL/v2/nothing"); REQS=$((REQS + 1))
check "unknown path is a 404 in OpenAI error shape" pyjson '
import json,sys; e=json.load(open(sys.argv[1]))["error"]
assert sys.argv[2]=="404" and e["type"]=="invalid_request_error" and e["message"]' \
  "$SCRATCH/404.json" "$code"

code=$(curl -s -o "$SCRATCH/400.json" -w '%{http_code}' "$URL/v1/chat/completions" \
  -d '{"model": "m", "messages": [oops'); REQS=$((REQS + 1))
check "bad JSON body is a 400 in OpenAI error shape" pyjson '
import json,sys; e=json.load(open(sys.argv[1]))["error"]
assert sys.argv[2]=="400" and e["type"]=="invalid_request_error"' "$SCRATCH/400.json" "$code"

code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/chat/completions"); REQS=$((REQS + 1))
check "GET on the chat endpoint is a 405" [ "$code" = "405" ]

# --- chat completions ----------------------------------------------------------------------
curl -s "$URL/v1/chat/completions" -H 'Content-Type: application/json' -d "$CHAT" \
  -o "$SCRATCH/chat1.json"; REQS=$((REQS + 1))
check "chat.completion JSON has the OpenAI shape" pyjson '
import json,sys; d=json.load(open(sys.argv[1]))
assert d["object"]=="chat.completion" and d["id"].startswith("chatcmpl-"), d
assert isinstance(d["created"], int) and d["model"]=="test-model"
c=d["choices"]; assert len(c)==1 and c[0]["index"]==0 and c[0]["finish_reason"]=="stop"
m=c[0]["message"]; assert m["role"]=="assistant" and "prime" in m["content"], m
u=d["usage"]; assert u["prompt_tokens"]>0 and u["completion_tokens"]>0
assert u["total_tokens"]==u["prompt_tokens"]+u["completion_tokens"]' "$SCRATCH/chat1.json"

curl -s "$URL/v1/chat/completions" -d "$CHAT" -o "$SCRATCH/chat2.json"; REQS=$((REQS + 1))
check "same request gives the same answer, byte for byte" cmp -s "$SCRATCH/chat1.json" \
  "$SCRATCH/chat2.json"

curl -s "$URL/v1/chat/completions" -d "${CHAT/three/four}" -o "$SCRATCH/chat3.json"
REQS=$((REQS + 1))
check "different messages give a different answer" pyjson '
import json,sys; a,b=(json.load(open(f))["choices"][0]["message"]["content"] for f in sys.argv[1:])
assert a!=b' "$SCRATCH/chat1.json" "$SCRATCH/chat3.json"

curl -s "$URL/v1/chat/completions" -d "${CHAT%\}},\"n\":3}" -o "$SCRATCH/n3.json"
REQS=$((REQS + 1))
check "n=3 gives three indexed, distinct choices" pyjson '
import json,sys; c=json.load(open(sys.argv[1]))["choices"]
assert [x["index"] for x in c]==[0,1,2], c
assert len({x["message"]["content"] for x in c})==3' "$SCRATCH/n3.json"

curl -s "$URL/v1/chat/completions" -o "$SCRATCH/jsonobj.json" \
  -d "${CHAT%\}},\"response_format\":{\"type\":\"json_object\"}}"; REQS=$((REQS + 1))
check "response_format json_object gives a JSON object as content" pyjson '
import json,sys; c=json.load(open(sys.argv[1]))["choices"][0]["message"]["content"]
assert isinstance(json.loads(c), dict)' "$SCRATCH/jsonobj.json"

SCHEMA='"response_format":{"type":"json_schema","json_schema":{"name":"qa","schema":'
SCHEMA+='{"type":"object","properties":{"question":{"type":"string"},'
SCHEMA+='"score":{"type":"integer"},"tags":{"type":"array","items":{"type":"string"}}}}}}'
curl -s "$URL/v1/chat/completions" -o "$SCRATCH/schema.json" -d "${CHAT%\}},$SCHEMA}"
REQS=$((REQS + 1))
check "response_format json_schema gives an object with the schema's fields" pyjson '
import json,sys; c=json.loads(json.load(open(sys.argv[1]))["choices"][0]["message"]["content"])
assert isinstance(c["question"], str) and isinstance(c["score"], int)
assert isinstance(c["tags"], list)' "$SCRATCH/schema.json"

curl -s "$URL/v1/chat/completions" -o "$SCRATCH/maxtok.json" -d "${CHAT%\}},\"max_tokens\":3}"
REQS=$((REQS + 1))
check "max_tokens cuts the answer with finish_reason length" pyjson '
import json,sys; d=json.load(open(sys.argv[1])); c=d["choices"][0]
assert c["finish_reason"]=="length" and d["usage"]["completion_tokens"]<=3, d' \
  "$SCRATCH/maxtok.json"

# --- streaming -----------------------------------------------------------------------------
STREAM="${CHAT%\}},\"stream\":true,\"stream_options\":{\"include_usage\":true}}"
curl -s -N -D "$SCRATCH/stream.headers" "$URL/v1/chat/completions" -d "$STREAM" \
  -o "$SCRATCH/stream.txt"; REQS=$((REQS + 1))
check "stream is text/event-stream" grep -qi '^content-type: text/event-stream' \
  "$SCRATCH/stream.headers"
check "SSE stream has role, 4 content chunks, finish, usage, then [DONE]" pyjson '
import json,sys
lines=[l for l in open(sys.argv[1]).read().split("\n") if l]
assert all(l.startswith("data: ") for l in lines), lines
assert lines[-1]=="data: [DONE]", lines[-1]
ev=[json.loads(l[6:]) for l in lines[:-1]]
assert all(e["object"]=="chat.completion.chunk" for e in ev)
assert ev[0]["choices"][0]["delta"]["role"]=="assistant"
content=[e for e in ev if e["choices"] and "content" in e["choices"][0]["delta"]][1:]
assert len(content)==4, len(content)
assert ev[-2]["choices"][0]["finish_reason"]=="stop"
assert all(e["choices"][0]["finish_reason"] is None for e in ev[:-2])
assert ev[-1]["choices"]==[] and ev[-1]["usage"]["total_tokens"]>0
text="".join(e["choices"][0]["delta"].get("content","") for e in ev if e["choices"])
full=json.load(open(sys.argv[2]))["choices"][0]["message"]["content"]
assert text==full, (text, full)' "$SCRATCH/stream.txt" "$SCRATCH/chat1.json"

curl -s -N "$URL/v1/chat/completions" -d "${CHAT%\}},\"stream\":true,\"n\":2}" \
  -o "$SCRATCH/stream_n2.txt"; REQS=$((REQS + 1))
check "stream with n=2 carries both choice indexes and no usage chunk" pyjson '
import json,sys
ev=[json.loads(l[6:]) for l in open(sys.argv[1]).read().split("\n") if l and l!="data: [DONE]"]
assert {e["choices"][0]["index"] for e in ev}=={0,1}
assert all(e["choices"] for e in ev) and all("usage" not in e for e in ev)' \
  "$SCRATCH/stream_n2.txt"

# --- keep-alive ----------------------------------------------------------------------------
curl -sv "$URL/health" "$URL/v1/chat/completions" -d "$CHAT" -o /dev/null -o /dev/null \
  2>"$SCRATCH/keepalive.txt"; REQS=$((REQS + 2))
check "two requests reuse one connection (keep-alive)" grep -q "Re-using existing connection" \
  "$SCRATCH/keepalive.txt"

# --- forced faults -------------------------------------------------------------------------
fault() { curl -s -H "X-Mock-Fault: $1" "${@:2}"; }

code=$(fault 429 -D "$SCRATCH/429.headers" -o "$SCRATCH/429.json" -w '%{http_code}' \
  "$URL/v1/chat/completions" -d "$CHAT"); REQS=$((REQS + 1))
check "fault 429: status, Retry-After from --retry-after, rate-limit body" pyjson '
import json,sys; e=json.load(open(sys.argv[1]))["error"]
h=open(sys.argv[2]).read().lower()
assert sys.argv[3]=="429" and "retry-after: 3" in h and e["code"]=="rate_limit_exceeded"' \
  "$SCRATCH/429.json" "$SCRATCH/429.headers" "$code"

for f in 500 503; do
  code=$(fault $f -o "$SCRATCH/$f.json" -w '%{http_code}' "$URL/v1/chat/completions" \
    -d "$CHAT"); REQS=$((REQS + 1))
  check "fault $f: status and OpenAI error body" pyjson '
import json,sys; e=json.load(open(sys.argv[1]))["error"]
assert sys.argv[2]==sys.argv[3] and e["message"]' "$SCRATCH/$f.json" "$code" "$f"
done

fault reset -o /dev/null "$URL/v1/chat/completions" -d "$CHAT"; rc=$?; REQS=$((REQS + 1))
check "fault reset: connection reset, no response (curl exit $rc)" [ "$rc" = 56 ]

start=$(date +%s%N)
fault stall -m 1 -o "$SCRATCH/stall.json" "$URL/v1/chat/completions" -d "$CHAT"; rc=$?
REQS=$((REQS + 1))
check "fault stall: partial body then silence until the client times out (exit $rc)" \
  [ "$rc" = 28 -a -s "$SCRATCH/stall.json" ]

fault truncate -o "$SCRATCH/trunc.json" "$URL/v1/chat/completions" -d "$CHAT"; rc=$?
REQS=$((REQS + 1))
check "fault truncate: body shorter than Content-Length (curl exit $rc)" \
  [ "$rc" = 18 -a -s "$SCRATCH/trunc.json" ]

code=$(fault badjson -o "$SCRATCH/badjson.json" -w '%{http_code}' "$URL/v1/chat/completions" \
  -d "$CHAT"); rc=$?; REQS=$((REQS + 1))
check "fault badjson: 200, complete body, not JSON" pyjson '
import json,sys
try: json.load(open(sys.argv[1]))
except ValueError: sys.exit(0 if sys.argv[2]=="200" and sys.argv[3]=="0" else 1)
sys.exit(1)' "$SCRATCH/badjson.json" "$code" "$rc"

fault badsse -N -o "$SCRATCH/badsse.txt" "$URL/v1/chat/completions" -d "$STREAM"; rc=$?
REQS=$((REQS + 1))
check "fault badsse: a data line that is not JSON" pyjson '
import json,sys; bad=0
for l in open(sys.argv[1]).read().split("\n"):
  if l.startswith("data: ") and l!="data: [DONE]":
    try: json.loads(l[6:])
    except ValueError: bad+=1
assert bad==1 and sys.argv[2]=="0"' "$SCRATCH/badsse.txt" "$rc"

fault truncate -N -o "$SCRATCH/trunc_stream.txt" "$URL/v1/chat/completions" -d "$STREAM"
rc=$?; REQS=$((REQS + 1))
check "fault truncate on a stream: some chunks, no [DONE], unclean end (exit $rc)" \
  bash -c "[ $rc = 18 ] && grep -q '^data: {' '$SCRATCH/trunc_stream.txt' &&
           ! grep -q 'DONE' '$SCRATCH/trunc_stream.txt'"

fault stall -N -m 1 -o "$SCRATCH/stall_stream.txt" "$URL/v1/chat/completions" -d "$STREAM"
rc=$?; REQS=$((REQS + 1))
check "fault stall on a stream: some chunks, then silence (exit $rc)" \
  bash -c "[ $rc = 28 ] && grep -q '^data: {' '$SCRATCH/stall_stream.txt' &&
           ! grep -q 'DONE' '$SCRATCH/stall_stream.txt'"

code=$(fault none -o /dev/null -w '%{http_code}' "$URL/v1/chat/completions" -d "$CHAT")
REQS=$((REQS + 1))
check "X-Mock-Fault: none answers normally" [ "$code" = 200 ]

code=$(fault bogus -o /dev/null -w '%{http_code}' "$URL/v1/chat/completions" -d "$CHAT")
REQS=$((REQS + 1))
check "unknown X-Mock-Fault is a 400" [ "$code" = 400 ]

# --- latency -------------------------------------------------------------------------------
t=$(curl -s -o /dev/null -w '%{time_total}' -H 'X-Mock-Latency: 400' \
  "$URL/v1/chat/completions" -d "$CHAT"); REQS=$((REQS + 1))
check "X-Mock-Latency: 400 delays the answer ($t s)" \
  python3 -c "import sys; sys.exit(0 if 0.39 <= float('$t') < 2 else 1)"

# --- large bodies ----------------------------------------------------------------------
python3 -c 'import json; print(json.dumps({"model": "m", "messages":
  [{"role": "user", "content": "x" * 300000}]}))' >"$SCRATCH/big.json"
t=$(curl -s -o "$SCRATCH/big.out" -w '%{time_total} %{http_code}' -H 'Expect: 100-continue' \
  "$URL/v1/chat/completions" --data-binary @"$SCRATCH/big.json"); REQS=$((REQS + 1))
check "Expect: 100-continue is answered at once for a 300 KB body ($t)" \
  python3 -c "import sys; t,c='$t'.split(); sys.exit(0 if float(t) < 0.9 and c == '200' else 1)"

head -c 9000000 /dev/zero | tr '\0' 'x' >"$SCRATCH/huge.bin"
code=$(curl -s -o "$SCRATCH/413.json" -w '%{http_code}' "$URL/v1/chat/completions" \
  --data-binary @"$SCRATCH/huge.bin"); REQS=$((REQS + 1))
check "a body over the 8 MiB default is a 413 (got $code)" [ "$code" = 413 ]

# --- the request log -----------------------------------------------------------------------
sleep 0.2
check "request log: one JSON line per request ($REQS expected)" pyjson '
import json,sys
rows=[json.loads(l) for l in open(sys.argv[1])]
assert len(rows)==int(sys.argv[2]), (len(rows), sys.argv[2])
assert [r["seq"] for r in rows]==list(range(1,len(rows)+1))
keys={"seq","t_ms","method","path","status","fault","stream","latency_ms","completed","body_hash"}
assert all(keys<=set(r) for r in rows)
t=[r["t_ms"] for r in sorted(rows,key=lambda r:r["seq"])]
assert t[0]>=0 and all(a<=b for a,b in zip(t,t[1:])), "t_ms must grow with seq"
f={r["fault"]:r for r in rows}
assert f["reset"]["completed"] is False and f["truncate"]["completed"] is False
assert f["stall"]["completed"] is False and f["429"]["status"]==429
assert any(r["latency_ms"]==400 for r in rows)' "$SCRATCH/main.log" "$REQS"

# --- clean shutdown with connections open --------------------------------------------------
fault stall -m 10 -o /dev/null "$URL/v1/chat/completions" -d "$CHAT" &
STALLER=$!
sleep 0.3
kill -TERM "$PID"
for _ in $(seq 50); do
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$PID" 2>/dev/null; then
  fail "SIGTERM stops the server within 5 s"
else
  wait "$PID"
  rc=$?
  check "SIGTERM stops the server with exit 0 (got $rc), even with a stalled client" [ "$rc" = 0 ]
fi
wait "$STALLER" 2>/dev/null

# --- latency distributions, pacing and fault probabilities ---------------------------------
if start lat --latency 300; then
  t=$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$PORT/v1/chat/completions" \
    -d "$CHAT")
  check "--latency 300 delays chat answers ($t s)" \
    python3 -c "import sys; sys.exit(0 if 0.29 <= float('$t') < 2 else 1)"
  t=$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$PORT/health")
  check "--latency leaves /health alone ($t s)" \
    python3 -c "import sys; sys.exit(0 if float('$t') < 0.25 else 1)"
  kill "$PID"
else
  fail "server with --latency starts"
fi

if start pace --stream-interval 50 --stream-chunks 8; then
  t=$(curl -s -N -o /dev/null -w '%{time_total}' "http://127.0.0.1:$PORT/v1/chat/completions" \
    -d "$STREAM")
  check "--stream-interval 50 paces the ~12 events of a stream ($t s)" \
    python3 -c "import sys; sys.exit(0 if 0.45 <= float('$t') < 3 else 1)"
  kill "$PID"
else
  fail "server with --stream-interval starts"
fi

# The same seed and request order must give the same faults.
seq_of() {
  start "seed$1" --seed 42 --fault 429=0.3 --fault 503=0.2 --latency uniform:0:5 || return 1
  local out=""
  for _ in $(seq 30); do
    out+=$(curl -s -o /dev/null -w '%{http_code} ' "http://127.0.0.1:$PORT/v1/chat/completions" \
      -d "$CHAT")
  done
  kill "$PID"
  echo "$out"
}
s1=$(seq_of a)
s2=$(seq_of b)
check "--seed 42 gives the same fault sequence twice" [ -n "$s1" -a "$s1" = "$s2" ]
check "--fault 429=0.3 503=0.2 mixes 200, 429 and 503" \
  bash -c "grep -q 200 <<<'$s1' && grep -q 429 <<<'$s1' && grep -q 503 <<<'$s1'"

if start always --fault reset=1; then
  curl -s -o /dev/null "http://127.0.0.1:$PORT/v1/chat/completions" -d "$CHAT"
  rc=$?
  check "--fault reset=1 resets every chat request (curl exit $rc)" [ "$rc" = 56 ]
  kill "$PID"
else
  fail "server with --fault reset=1 starts"
fi

if start limited --max-connections 1; then
  fault stall -m 3 -o /dev/null "http://127.0.0.1:$PORT/v1/chat/completions" -d "$CHAT" &
  HOLDER=$!
  sleep 0.3
  curl -s -m 2 -o /dev/null "http://127.0.0.1:$PORT/health"
  rc=$?
  check "--max-connections 1 turns a second connection away (curl exit $rc)" \
    [ "$rc" = 52 -o "$rc" = 56 ]
  wait "$HOLDER"
  sleep 0.2
  body=$(curl -s "http://127.0.0.1:$PORT/health")
  check "--max-connections: served again once the first client left" [ "$body" = ok ]
  kill "$PID"
else
  fail "server with --max-connections starts"
fi

# --- a failing answer function -------------------------------------------------------------
cat >"$SCRATCH/bad_answer.lua" <<'LUA'
return { chat = function(req, index)
  if req.model == "explode" then error("the simulator broke on purpose") end
  return { text = "custom " .. req.model .. " " .. index, usage = { input = 11, output = 2 } }
end }
LUA
if start custom --answer "$SCRATCH/bad_answer.lua"; then
  U="http://127.0.0.1:$PORT/v1/chat/completions"
  code=$(curl -s -o "$SCRATCH/lua500.json" -w '%{http_code}' "$U" \
    -d '{"model":"explode","messages":[]}')
  check "a Lua error in the answer function is a 500 with the message" pyjson '
import json,sys; e=json.load(open(sys.argv[1]))["error"]
assert sys.argv[2]=="500" and "broke on purpose" in e["message"], e' "$SCRATCH/lua500.json" "$code"
  curl -s -o "$SCRATCH/custom.json" "$U" -d '{"model":"m1","messages":[]}'
  check "--answer FILE is used, and the server survives the Lua error" pyjson '
import json,sys; d=json.load(open(sys.argv[1]))
assert d["choices"][0]["message"]["content"]=="custom m1 0" and d["usage"]["prompt_tokens"]==11' \
    "$SCRATCH/custom.json"
  kill "$PID"
else
  fail "server with --answer starts"
fi

# --- flags ---------------------------------------------------------------------------------
usage_error() { # usage_error FLAG ARGS...: exit 2 and a message naming FLAG
  local flag=$1
  shift
  "$MOONLOOP" mock-server "$@" >/dev/null 2>"$SCRATCH/flag.err"
  local rc=$?
  [ "$rc" = 2 ] && grep -q -- "$flag" "$SCRATCH/flag.err"
}
check "--latency bogus is a usage error naming the flag" usage_error --latency --latency bogus
check "--fault 404=0.1 is a usage error naming the flag" usage_error --fault --fault 404=0.1
check "--fault 429=1.5 is a usage error naming the flag" usage_error --fault --fault 429=1.5
check "--port 70000 is a usage error naming the flag" usage_error --port --port 70000
check "--host 192.0.2.1 without --allow-remote is refused" usage_error --allow-remote \
  --host 192.0.2.1 --port 0
check "an unknown flag is a usage error" usage_error --frobnicate --frobnicate
check "--answer with a missing file is a usage error" usage_error answer \
  --port 0 --answer "$SCRATCH/missing.lua"
"$MOONLOOP" mock-server --help >"$SCRATCH/help.txt" 2>&1
rc=$?
check "--help exits 0 and documents every flag" bash -c "[ $rc = 0 ] && for f in --host \
  --allow-remote --port --port-file --log --answer --latency --stream-interval --stream-chunks \
  --fault --retry-after --seed --max-connections --max-body X-Mock-Fault X-Mock-Latency; do \
  grep -q -- \"\$f\" '$SCRATCH/help.txt' || exit 1; done"

echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]

#!/usr/bin/env bash
# Integration test of the mock server's rate limits (--rpm, --tpm) and GET /stats: bursts
# over the limit get 429s with Retry-After and the x-ratelimit-* headers, buckets refill,
# each API key has its own, and /stats counts it all. Needs $MOONLOOP, curl and python3.
source "$(dirname "$0")/lib.sh"

command -v curl >/dev/null || { echo "FAIL curl is required"; exit 1; }
command -v python3 >/dev/null || { echo "FAIL python3 is required for JSON checks"; exit 1; }

# chat_body MAX_TOKENS [TEXT]: a one-message chat request (no max_tokens when MAX_TOKENS is -).
chat_body() {
  local mt=${1} text=${2:-hi}
  if [ "$mt" = - ]; then
    printf '{"model":"m","messages":[{"role":"user","content":"%s"}]}' "$text"
  else
    printf '{"model":"m","messages":[{"role":"user","content":"%s"}],"max_tokens":%s}' "$text" "$mt"
  fi
}

# chat NAME [curl args...]: one request to $MOCK_URL; headers in $SCRATCH/NAME.h, body in
# $SCRATCH/NAME.json; prints the status.
chat() {
  local name=$1
  shift
  curl -s -D "$SCRATCH/$name.h" -o "$SCRATCH/$name.json" -w '%{http_code}' \
    "$MOCK_URL/chat/completions" "$@"
}

# check NAME PYTHON ARGS...: passes when the Python snippet runs without error.
check() {
  local name=$1 code=$2
  shift 2
  local out
  if out=$(python3 -c "$code" "$@" 2>&1); then pass "$name"; else fail "$name" "$(echo "$out" | tail -3)"; fi
}

# Shared Python helpers: headers of a curl -D file as a dict (lower-case names).
PY_HEADERS='
import json, re, sys
def headers(path):
    h = {}
    for line in open(path).read().splitlines()[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            h[k.strip().lower()] = v.strip()
    return h
DURATION = re.compile(r"^(\d+h)?(\d+m)?((\d+(\.\d+)?s)|\d+ms)$")
SIX = ["x-ratelimit-%s-%s" % (a, b) for a in ("limit", "remaining", "reset")
       for b in ("requests", "tokens")]
'

# --- off by default ------------------------------------------------------------------------
start_mock plain
chat off -d "$(chat_body 16)" >"$SCRATCH/off.code"
check "without --rpm/--tpm there are no x-ratelimit headers" "$PY_HEADERS
h = headers(sys.argv[1]); assert open(sys.argv[2]).read() == '200'
assert not [k for k in h if k.startswith('x-ratelimit')], h" "$SCRATCH/off.h" "$SCRATCH/off.code"

# --- requests per minute: a burst of 70 against --rpm 60 ----------------------------------
start_mock rpm --rpm 60 --tpm 10000000
RPM_URL=$MOCK_URL
chat_body 16 >"$SCRATCH/burst.body"
# One curl process, 70 transfers at once; -w writes each status and the headers under test
# as one tab-separated line (--dump-header names one file for all of them).
WANT=(retry-after retry-after-ms x-ratelimit-limit-requests x-ratelimit-limit-tokens
  x-ratelimit-remaining-requests x-ratelimit-remaining-tokens x-ratelimit-reset-requests
  x-ratelimit-reset-tokens)
fmt='%{http_code}'
for hname in "${WANT[@]}"; do fmt+="\t%header{$hname}"; done
for _ in $(seq 70); do
  printf 'url = "%s/chat/completions"\noutput = "/dev/null"\n' "$MOCK_URL"
done >"$SCRATCH/burst.cfg"
t0=$(date +%s%N)
curl -s --parallel --parallel-immediate --parallel-max 70 -H 'Authorization: Bearer burst' \
  --data-binary "@$SCRATCH/burst.body" -w "$fmt\n" -K "$SCRATCH/burst.cfg" \
  >"$SCRATCH/burst.tsv" 2>"$SCRATCH/burst.stderr"
t1=$(date +%s%N)
# Rows of burst.tsv as dicts: code, then the WANT headers ("" when absent).
PY_BURST="$PY_HEADERS
names = ['code'] + '${WANT[*]}'.split()
rows = [dict(zip(names, l.rstrip('\n').split('\t'))) for l in open(sys.argv[1])]
assert len(rows) == 70, len(rows)
"

# 60 fit in the full bucket; the bucket refills one request per second during the burst.
check "--rpm 60: a burst of 70 gets 60 answers and 10 429s" "$PY_BURST
secs = int(sys.argv[2]) / 1e9
ok = sum(r['code'] == '200' for r in rows); limited = sum(r['code'] == '429' for r in rows)
assert ok + limited == 70, rows
assert 60 <= ok <= 60 + int(secs), (ok, limited, secs)" "$SCRATCH/burst.tsv" "$((t1 - t0))"

check "every 429 has Retry-After in whole seconds and retry-after-ms" "$PY_BURST
limited = [r for r in rows if r['code'] == '429']
assert len(limited) >= 9, len(limited)
for r in limited:
    ra, ms = int(r['retry-after']), int(r['retry-after-ms'])
    assert 1 <= ra <= 60 and 0 < ms <= ra * 1000 and ra == -(-ms // 1000), r
assert all(r['retry-after'] == '' for r in rows if r['code'] == '200')" "$SCRATCH/burst.tsv"

check "every response of the burst, 200 and 429, has the six x-ratelimit headers" "$PY_BURST
for r in rows:
    assert all(r[k] != '' for k in SIX), r
    assert r['x-ratelimit-limit-requests'] == '60', r
    assert r['x-ratelimit-limit-tokens'] == '10000000', r
    assert DURATION.match(r['x-ratelimit-reset-requests']), r
    assert DURATION.match(r['x-ratelimit-reset-tokens']), r
rem = sorted(int(r['x-ratelimit-remaining-requests']) for r in rows)
assert rem[0] == 0 and rem[-1] == 59, rem" "$SCRATCH/burst.tsv"

code=$(chat rpm429 -H 'Authorization: Bearer burst' -d "$(chat_body 16)")
check "the 429 body is an OpenAI rate-limit error naming the RPM limit" "$PY_HEADERS
e = json.load(open(sys.argv[1]))['error']
assert sys.argv[2] == '429', sys.argv[2]
assert e['code'] == 'rate_limit_exceeded' and e['type'] == 'requests', e
assert 'requests per min (RPM): Limit 60' in e['message'], e" "$SCRATCH/rpm429.json" "$code"

# Retry-After is a promise: waiting that long must be enough.
wait_ms=$(python3 -c "$PY_HEADERS
print(headers(sys.argv[1])['retry-after-ms'])" "$SCRATCH/rpm429.h")
sleep "$(awk -v ms="$wait_ms" 'BEGIN { printf "%.3f", ms / 1000 + 0.02 }')"
code=$(chat refilled -H 'Authorization: Bearer burst' -d "$(chat_body 16)")
check "the bucket refills: after retry-after-ms the same key is answered" '
import sys; assert sys.argv[1] == "200", sys.argv[1]' "$code"

code=$(chat otherkey -H 'Authorization: Bearer someone-else' -d "$(chat_body 16)")
check "another Bearer key has its own bucket" "$PY_HEADERS
h = headers(sys.argv[1]); assert sys.argv[2] == '200', sys.argv[2]
assert h['x-ratelimit-remaining-requests'] == '59', h" "$SCRATCH/otherkey.h" "$code"

code=$(chat apikey -H 'x-api-key: burst-by-header' -d "$(chat_body 16)")
check "an x-api-key header is a key of its own" '
import sys; assert sys.argv[1] == "200", sys.argv[1]' "$code"

stream_body=$(chat_body 16)
code=$(chat stream -H 'Authorization: Bearer streamer' -d "${stream_body%\}},\"stream\":true}")
check "a streamed answer carries the x-ratelimit headers too" "$PY_HEADERS
h = headers(sys.argv[1]); assert sys.argv[2] == '200', sys.argv[2]
assert h['content-type'] == 'text/event-stream' and all(k in h for k in SIX), h" \
  "$SCRATCH/stream.h" "$code"

check "the log shows each limiter 429 with status 429 and fault ratelimit" '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
limited = [l for l in lines if l["fault"] == "ratelimit"]
assert len(limited) >= 10 and all(l["status"] == 429 for l in limited), limited[:2]
assert all(l["fault"] != "ratelimit" for l in lines if l["status"] == 200)' "$SCRATCH/rpm.log"

curl -s "${RPM_URL%/v1}/stats" -o "$SCRATCH/stats.json"
check "/stats counts requests, admissions, 429s and answers" '
import json, sys
s = json.load(open(sys.argv[1]))
assert s["rpm"] == 60 and s["keys"] == 4, s
assert s["requests"] == 75 and s["requests"] == s["admitted"] + s["throttled"], s
assert 10 <= s["throttled"] <= 11 and s["ok"] == s["admitted"] and s["errors"] == 0, s
p = s["per_second"]
assert len(p["admitted"]) == p["now_s"] - p["start_s"] + 1 == len(p["tokens"]), p
assert sum(p["admitted"]) == s["admitted"] and sum(p["tokens"]) == s["tokens_admitted"], s' \
  "$SCRATCH/stats.json"

code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "${RPM_URL%/v1}/stats")
check "POST /stats is a 405" 'import sys; assert sys.argv[1] == "405", sys.argv[1]' "$code"

# --- tokens per minute ---------------------------------------------------------------------
# "hi" costs 1 token and max_tokens 400 more: 401 each, so 1000 tokens admit two.
start_mock tpm --tpm 1000
for i in 1 2 3; do
  { chat tpm$i -d "$(chat_body 400)"; echo; } >>"$SCRATCH/tpm.codes"
done
check "--tpm 1000 with max_tokens 400 admits two, then 429s on tokens" "$PY_HEADERS
codes = open(sys.argv[1]).read().split()
assert codes == ['200', '200', '429'], codes
e = json.load(open(sys.argv[2]))['error']
assert e['type'] == 'tokens' and 'tokens per min (TPM): Limit 1000' in e['message'], e
h1, h3 = headers(sys.argv[3]), headers(sys.argv[4])
assert h1['x-ratelimit-remaining-tokens'] == '599', h1
assert h3['x-ratelimit-remaining-tokens'] == '198', h3
assert 'x-ratelimit-limit-requests' not in h3, 'no --rpm, no request headers'
assert int(h3['retry-after']) == 13, h3  # 203 missing tokens at 1000/60 per second" \
  "$SCRATCH/tpm.codes" "$SCRATCH/tpm3.json" "$SCRATCH/tpm1.h" "$SCRATCH/tpm3.h"

code=$(chat tpm_small -d "$(chat_body 100)")
check "a smaller request that fits is still admitted" '
import sys; assert sys.argv[1] == "200", sys.argv[1]' "$code"

code=$(chat nomax -d "$(chat_body -)")
check "without max_tokens a request is charged 256 for its answer" "$PY_HEADERS
h = headers(sys.argv[1]); assert sys.argv[2] == '429', sys.argv[2]
assert 'Requested 257.' in json.load(open(sys.argv[3]))['error']['message']" \
  "$SCRATCH/nomax.h" "$code" "$SCRATCH/nomax.json"

code=$(chat toolarge -H 'Authorization: Bearer big' -d "$(chat_body 5000)")
check "a request above --tpm is 'Request too large', with no Retry-After" "$PY_HEADERS
h = headers(sys.argv[1]); e = json.load(open(sys.argv[3]))['error']
assert sys.argv[2] == '429' and 'retry-after' not in h, h
assert e['message'].startswith('Request too large') and e['type'] == 'tokens', e" \
  "$SCRATCH/toolarge.h" "$code" "$SCRATCH/toolarge.json"

# --- keys --------------------------------------------------------------------------------
start_mock keys --rpm 2
for who in "Authorization: Bearer a" "Authorization: Bearer a" "Authorization: Bearer a" \
  "Authorization: Bearer b" "x-api-key: c" "X-Nothing: 1" "X-Nothing: 1" "X-Nothing: 1"; do
  { chat key -H "$who" -d "$(chat_body 16)"; echo; } >>"$SCRATCH/keys.codes"
done
check "separate keys have separate buckets; requests without a key share one" '
import sys
codes = open(sys.argv[1]).read().split()
assert codes == ["200", "200", "429", "200", "200", "200", "200", "429"], codes' \
  "$SCRATCH/keys.codes"

# --- Anthropic's /v1/messages ------------------------------------------------------------
start_mock anthropic --rpm 2 --tpm 100000
MSG='{"model":"claude-x","max_tokens":300,"system":"be brief",'
MSG+='"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}'
for i in 1 2 3; do
  curl -s -D "$SCRATCH/msg$i.h" -o "$SCRATCH/msg$i.json" -w '%{http_code}\n' \
    "$MOCK_URL/messages" -H 'x-api-key: sk-ant-test' -H 'anthropic-version: 2023-06-01' \
    -d "$MSG" >>"$SCRATCH/msg.codes"
done
ANTH_PY="$PY_HEADERS
import datetime
ANTH = ['anthropic-ratelimit-%s-%s' % (a, b) for a in ('requests', 'tokens')
        for b in ('limit', 'remaining', 'reset')]
def check_anthropic(h):
    assert all(k in h for k in ANTH), h
    assert not [k for k in h if k.startswith('x-ratelimit')], h
    for what in ('requests', 'tokens'):
        t = datetime.datetime.strptime(h['anthropic-ratelimit-%s-reset' % what],
                                       '%Y-%m-%dT%H:%M:%SZ')
        now = datetime.datetime.utcnow()
        assert now - datetime.timedelta(seconds=5) <= t <= now + datetime.timedelta(seconds=65), t
"
check "/v1/messages: --rpm 2 admits two, then a 429 rate_limit_error with retry-after" "$ANTH_PY
codes = open(sys.argv[1]).read().split()
assert codes == ['200', '200', '429'], codes
e = json.load(open(sys.argv[2]))
assert e['type'] == 'error' and e['error']['type'] == 'rate_limit_error', e
h = headers(sys.argv[3]); assert int(h['retry-after']) >= 1 and int(h['retry-after-ms']) > 0, h" \
  "$SCRATCH/msg.codes" "$SCRATCH/msg3.json" "$SCRATCH/msg3.h"

check "/v1/messages responses carry anthropic-ratelimit-* headers with RFC 3339 resets" "$ANTH_PY
h1, h3 = headers(sys.argv[1]), headers(sys.argv[2])
check_anthropic(h1); check_anthropic(h3)
assert h1['anthropic-ratelimit-requests-limit'] == '2', h1
assert h1['anthropic-ratelimit-requests-remaining'] == '1', h1
# system 'be brief' and 'hi' are 10 bytes: 3 tokens, plus max_tokens 300.
assert h1['anthropic-ratelimit-tokens-remaining'] == '99697', h1
assert h3['anthropic-ratelimit-requests-remaining'] == '0', h3" "$SCRATCH/msg1.h" "$SCRATCH/msg3.h"

check "the log shows the /v1/messages 429 as fault ratelimit" '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert [(l["status"], l["fault"]) for l in lines] == [(200, "none"), (200, "none"),
                                                     (429, "ratelimit")], lines' \
  "$SCRATCH/anthropic.log"

# --- flags and help ------------------------------------------------------------------------
for bad in -1 abc 1.5; do
  if "$MOONLOOP" mock-server --rpm "$bad" 2>"$SCRATCH/bad.err"; then rc=0; else rc=$?; fi
  if [ "$rc" = 2 ] && grep -q -- '--rpm expects' "$SCRATCH/bad.err"; then
    pass "--rpm $bad is refused with exit 2, naming the flag"
  else
    fail "--rpm $bad is refused with exit 2, naming the flag" "rc=$rc: $(cat "$SCRATCH/bad.err")"
  fi
done
"$MOONLOOP" mock-server --help >"$SCRATCH/help.txt"
for word in "--rpm N" "--tpm N" "GET  /stats" "x-ratelimit-reset-tokens" "retry-after-ms" \
  "anthropic-ratelimit-" 'fault "ratelimit"'; do
  expect_contains "--help documents $word" "$SCRATCH/help.txt" "$word"
done

finish

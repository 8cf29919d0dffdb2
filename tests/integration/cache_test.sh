#!/usr/bin/env bash
# The response cache: hits within a run and across processes, the modes (read, readwrite,
# refresh, off), single-flight merging of identical requests in flight, distinct samples,
# and cache = false per call. The mock server's log counts what was really sent.
source "$(dirname "$0")/lib.sh"
cd "$SCRATCH"
start_mock cache --latency 200
sent() { python3 -c 'import json,sys; print(sum(1 for l in open(sys.argv[1]) if "chat" in json.loads(l)["path"]))' "$SCRATCH/cache.log"; }
config() {
  cat >"cache-$1.cfg.lua" <<LUA
return { providers = { mock = { kind = "openai", base_url = "$MOCK_URL" } },
         models = { priced = { provider = "mock", model = "m", price = { input = 1, output = 2 } } },
         cache = { path = "$SCRATCH/c/cache.db", mode = "$1" } }
LUA
}
for m in readwrite read refresh off; do config $m; done

cat >first.lua <<'LUA'
local a = llm.chat{ model = "priced", prompt = "cache me" }
local b = llm.chat{ model = "priced", prompt = "cache me" }
assert(a.cached == false and b.cached == true, "second is cached")
assert(a.text == b.text and b.usage.output == a.usage.output, "same answer, usage kept")
assert(b.cost_usd and math.abs(b.cost_usd - a.cost_usd) < 1e-12, "cost kept on the cached answer")
assert(llm.stats().cache_hits == 1)
print(a.text)
LUA
"$MOONLOOP" run --config cache-readwrite.cfg.lua first.lua >first.out 2>&1 && [ "$(sent)" -eq 1 ] &&
  pass "a repeated request is answered from the cache (1 sent)" || fail "cache hit in one run" "$(cat first.out); sent $(sent)"

printf 'local r = llm.chat{ model = "priced", prompt = "cache me" }\nassert(r.cached, "cached across processes")\n' >again.lua
"$MOONLOOP" run --config cache-readwrite.cfg.lua again.lua >again.out 2>&1 && [ "$(sent)" -eq 1 ] &&
  pass "another process gets the cached answer from the file" || fail "cache across processes" "$(cat again.out); sent $(sent)"

printf 'local r = llm.chat{ model = "priced", prompt = "cache me" }\nassert(not r.cached, "refresh sends")\n' >refresh.lua
"$MOONLOOP" run --config cache-refresh.cfg.lua refresh.lua >refresh.out 2>&1 && [ "$(sent)" -eq 2 ] &&
  pass "refresh mode sends again and rewrites the entry" || fail "refresh mode" "$(cat refresh.out); sent $(sent)"

printf 'local r = llm.chat{ model = "priced", prompt = "only read" }\nassert(not r.cached)\n' >read.lua
"$MOONLOOP" run --config cache-read.cfg.lua read.lua >read.out 2>&1
"$MOONLOOP" run --config cache-read.cfg.lua read.lua >>read.out 2>&1 && [ "$(sent)" -eq 4 ] &&
  pass "read mode never writes (the same new request is sent twice)" || fail "read mode" "$(cat read.out); sent $(sent)"
printf 'local r = llm.chat{ model = "priced", prompt = "cache me" }\nassert(r.cached, "read mode reads")\n' >readhit.lua
"$MOONLOOP" run --config cache-read.cfg.lua readhit.lua >readhit.out 2>&1 && [ "$(sent)" -eq 4 ] &&
  pass "read mode reads what is there" || fail "read mode hit" "$(cat readhit.out)"

printf 'local r = llm.chat{ model = "priced", prompt = "cache me" }\nassert(not r.cached)\n' >off.lua
"$MOONLOOP" run --config cache-off.cfg.lua off.lua >off.out 2>&1 && [ "$(sent)" -eq 5 ] &&
  pass "off mode neither reads nor writes" || fail "off mode" "$(cat off.out); sent $(sent)"

before=$(sent)
cat >flight.lua <<'LUA'
local fns = {}
for i = 1, 20 do fns[i] = function() return llm.chat{ model = "priced", prompt = "all at once" } end end
local rs = task.gather(fns)
for i = 2, 20 do assert(rs[i].text == rs[1].text) end
local s = llm.stats()
assert(s.merged == 19, "merged " .. s.merged)
local samples = task.gather({
  function() return llm.chat{ model = "priced", prompt = "sampled", tags = { sample = 1 }, seed = 1 } end,
  function() return llm.chat{ model = "priced", prompt = "sampled", tags = { sample = 2 }, seed = 2 } end,
})
assert(samples[1].cached == false and samples[2].cached == false, "samples are distinct")
local nc = llm.chat{ model = "priced", prompt = "all at once", cache = false }
assert(nc.cached == false)
print(("merged=%d"):format(s.merged))
LUA
"$MOONLOOP" run --config cache-readwrite.cfg.lua flight.lua >flight.out 2>&1 && [ "$(( $(sent) - before ))" -eq 4 ] &&
  pass "20 identical requests in flight are sent once; samples and cache = false are sent" ||
  fail "single flight" "$(cat flight.out); sent $(( $(sent) - before ))"
finish

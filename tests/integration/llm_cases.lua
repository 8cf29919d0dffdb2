-- llm.chat against the mock server (OPENAI_BASE_URL points at it): result shapes,
-- n, streaming, json mode, option checking, cancellation and user coroutines.
local t = dofile(os.getenv("ML_SOURCE_DIR") .. "/tests/lua/lib/t.lua")

t.test("a chat returns text, message, usage, latency and model", function()
  local r = llm.chat{ model = "weak", prompt = "What is 2 + 2?" }
  t.eq(type(r.text), "string")
  t.ok(#r.text > 0, "non-empty text")
  t.eq(r.message.role, "assistant")
  t.eq(r.message.content, r.text)
  t.eq(type(r.usage.input), "number")
  t.eq(type(r.usage.output), "number")
  t.eq(type(r.latency_ms), "number")
  t.eq(r.cached, false)
  t.eq(r.finish_reason, "stop")
  t.eq(r.cost_usd, nil, "no price configured: cost is unknown, not 0")
end)

t.test("the same request gives the same answer (deterministic mock)", function()
  local a = llm.chat{ prompt = "same question", model = "m" }
  local b = llm.chat{ prompt = "same question", model = "m" }
  t.eq(a.text, b.text)
end)

t.test("messages and a system prompt are sent", function()
  local r = llm.chat{ system = "be brief", messages = { { role = "user", content = "hi" } } }
  t.ok(#r.text > 0)
end)

t.test("n = 3 returns a list of three choices with shared usage on the list", function()
  local rs = llm.chat{ prompt = "three please", n = 3 }
  t.eq(#rs, 3)
  for i = 1, 3 do t.eq(rs[i].index, i); t.eq(type(rs[i].text), "string") end
  t.eq(type(rs.usage.output), "number")
end)

t.test("a streamed chat calls the callback with deltas that add up to the text", function()
  local parts = {}
  local r = llm.chat{ prompt = "stream this", stream = function(d, i) parts[#parts + 1] = d; t.eq(i, 1) end }
  t.ok(#parts >= 2, "several deltas, got " .. #parts)
  t.eq(table.concat(parts), r.text)
  t.eq(type(r.usage.output), "number", "include_usage delivers usage")
end)

t.test("the stream callback may itself wait", function()
  local n = 0
  local r = llm.chat{ prompt = "slow reader", stream = function() task.sleep(1); n = n + 1 end }
  t.ok(n >= 2)
  t.ok(#r.text > 0)
end)

t.test("max_tokens reaches the server (the mock cuts the answer and says length)", function()
  local r = llm.chat{ prompt = "a long answer please", max_tokens = 3 }
  t.eq(r.finish_reason, "length")
end)

t.test("json = true decodes the answer into r.json", function()
  local r = llm.chat{ prompt = "give me an object", json = true }
  t.eq(type(r.json), "table")
end)

t.test("an unknown option is refused with the list of options", function()
  t.raises(function() llm.chat{ prompt = "x", temprature = 1 } end, "unknown option 'temprature'")
end)

t.test("a request without messages or prompt is refused", function()
  t.raises(function() llm.chat{ model = "m" } end, "needs messages")
end)

t.test("coroutine.wrap around llm.chat works", function()
  local gen = coroutine.wrap(function()
    coroutine.yield(llm.chat{ prompt = "first" }.text)
    coroutine.yield(llm.chat{ prompt = "second" }.text)
  end)
  t.ok(#gen() > 0); t.ok(#gen() > 0)
end)

t.test("many concurrent requests in one gather", function()
  local fns = {}
  for i = 1, 50 do fns[i] = function() return llm.chat{ prompt = "q" .. i }.text end end
  local r = task.gather(fns)
  t.eq(#r, 50)
end)

t.test("the API key never appears in results", function()
  local r = llm.chat{ prompt = "echo my key please" }
  local key = os.getenv("OPENAI_API_KEY")
  t.ok(not json.encode(r):find(key, 1, true))
end)

t.done()

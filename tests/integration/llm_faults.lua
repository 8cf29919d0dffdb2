-- One injected fault (arg[1]) against a mock server configured to always inject it:
-- the error must have the right kind and a message a person can act on.
local fault, stream = arg[1], arg[2] == "stream"
local want = {
  ["429"] = { kind = "rate_limited", status = 429, retryable = true, text = "rate limited" },
  ["500"] = { kind = "http", status = 500, retryable = true, text = "HTTP error (HTTP 500)" },
  ["503"] = { kind = "http", status = 503, retryable = true, text = "HTTP error (HTTP 503)" },
  reset = { kind = "transport", retryable = true, text = "connection" },
  stall = { kind = "timeout", retryable = true, text = "ms" },
  truncate = { kind = "transport", retryable = true, text = stream and "before [DONE]" or "cut short" },
  badjson = { kind = "parse", retryable = true, text = "not valid JSON" },
  badsse = { kind = "parse", retryable = true, text = "not valid JSON" },
}
local w = assert(want[fault], "unknown fault " .. tostring(fault))
local ok, err = pcall(llm.chat, {
  model = "weak", prompt = "trigger " .. fault, timeout_ms = 1500, attempts = 1,
  stream = stream and function() end or nil,
})
assert(not ok, "expected an error for fault " .. fault)
assert(type(err) == "table", "error is not structured: " .. tostring(err))
local msg = tostring(err)
print(("%s%s -> kind=%s status=%s: %s"):format(fault, stream and " (stream)" or "", err.kind,
  tostring(err.status), msg))
assert(err.kind == w.kind, ("kind %s, want %s"):format(err.kind, w.kind))
if w.status then assert(err.status == w.status, "status " .. tostring(err.status)) end
assert(err.retryable == w.retryable, "retryable flag")
assert(msg:find(w.text, 1, true), ("message lacks %q"):format(w.text))
assert(msg:find("weak", 1, true) or msg:find("gpt", 1, true), "message names the model")
assert(msg:find("request #", 1, true), "message names the request")
assert(not msg:find(os.getenv("OPENAI_API_KEY"), 1, true), "message leaks the key")
if fault == "429" then assert(err.retry_after, "retry_after carried") end

return { providers = { a = { kind = "openai", base_url = "https://h/v1", timeout_ms = 0/0,
  max_inflight = 1e300, rpm = -1, max_attempts = 2^63 } }, budget = { usd = math.huge } }

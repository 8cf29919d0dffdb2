return {
  providers = {
    openai = { kind = "openai", api_key_env = "OPENAI_API_KEY", model = "gpt-4o-mini" },
    local_vllm = { kind = "openai", base_url = "http://127.0.0.1:8000/v1/", timeout_ms = 120000,
                   max_inflight = 64, stream_usage = false },
  },
  default_provider = "openai",
  models = {
    strong = "openai/gpt-4o",
    weak = { provider = "local_vllm", model = "qwen2.5-7b", price = { input = 0, output = 0 } },
    judge = { provider = "openai", price = { input = 0.15, output = 0.6 } },
  },
  cache = { path = "~/.cache/moonloop/cache.db", mode = "readwrite" },
  budget = { usd = 25, requests = 100000 },
}

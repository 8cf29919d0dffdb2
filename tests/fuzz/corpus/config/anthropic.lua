return { providers = { claude = { kind = "anthropic", api_key_env = "ANTHROPIC_API_KEY",
  model = "claude-sonnet-4-5", max_attempts = 3, rpm = 50, tpm = 40000, breaker_threshold = 5,
  connect_timeout_ms = 5000, idle_timeout_ms = 60000, ca_file = "/etc/ssl/certs/ca.pem" } } }

return { providers = { a = { kind = "openai", base_url = "ftp://x", typo = 1 } }, modles = {} }

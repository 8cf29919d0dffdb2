-- moonloop.example.lua: a sample moonloop configuration, commented for a first read.
--
-- How to use it:
--   cp recipes/moonloop.example.lua moonloop.lua      (then edit to taste)
--   moonloop run recipes/hello.lua                    (picks up ./moonloop.lua)
--   moonloop run --config path/to/file.lua script.lua (or name the file explicitly)
-- Without --config, moonloop looks for ./moonloop.lua, then
-- $XDG_CONFIG_HOME/moonloop/config.lua, then ~/.config/moonloop/config.lua.
--
-- The file is ordinary Lua that returns one table. Every key is checked when the file
-- is loaded: a misspelt key (say `bse_url`) stops the run with the file name and the
-- key's path, rather than being ignored. The accepted top-level keys are:
--   providers, models, default_provider, cache, budget
-- This sample leaves `cache` and `budget` out; see the README for their format.
--
-- API keys never appear in this file. A provider names the environment variable that
-- holds its key (`api_key_env`), and moonloop reads that variable itself when it sends a
-- request. Scripts never see the key.

return {
  -----------------------------------------------------------------------------------
  -- providers: the servers moonloop can talk to, each under a name you choose.
  -- The names (openai, anthropic, vllm, ...) are yours; they are how `models` and
  -- scripts refer to a provider. Define only the ones you use; unused ones are harmless.
  --
  -- Keys a provider accepts:
  --   kind               "openai"    : the OpenAI Chat Completions API, also spoken by
  --                                    vLLM, llama.cpp's llama-server, Ollama and many
  --                                    gateways
  --                      "anthropic" : Anthropic's Messages API
  --                      "sim"       : a built-in offline simulator, for tests
  --   base_url           where the API lives, up to and including /v1
  --   api_key_env        NAME of the environment variable holding the key (optional for
  --                      local servers that do not check keys)
  --   model              the provider's default model, used when a script asks for a
  --                      role that is not listed under `models` below
  --   connect_timeout_ms give up connecting after this long        (default 10000)
  --   timeout_ms         give up on the whole request after this    (default 600000)
  --   idle_timeout_ms    give up if no byte arrives for this long   (default 120000)
  --   stream_usage       ask for token usage in streamed answers (default true); set
  --                      it to false if your server rejects stream_options
  --   ca_file            a CA bundle (PEM file) to trust, for a server using its own
  --                      certificate
  --   max_inflight       most requests in flight at once, per model
  --   rpm, tpm           requests and tokens per minute allowed, per model (limits the
  --                      server announces in its headers are learned as well)
  --   max_attempts       sends per request, retries included        (default 5)
  -----------------------------------------------------------------------------------
  providers = {
    -- OpenAI's hosted API. base_url defaults to https://api.openai.com/v1.
    -- Before running: export OPENAI_API_KEY=sk-...
    openai = {
      kind = "openai",
      api_key_env = "OPENAI_API_KEY",
      model = "gpt-4.1-mini",       -- default model for roles not listed under models
      -- Example limits: set them from your account's tier, not from this file.
      max_inflight = 64,
      rpm = 500,
      tpm = 200000,
    },

    -- Anthropic's hosted API. This kind speaks the Messages API (POST /v1/messages),
    -- not the OpenAI format. base_url defaults to https://api.anthropic.com/v1.
    -- Before running: export ANTHROPIC_API_KEY=sk-ant-...
    -- If your build cannot call kind = "anthropic" yet (the README says so when that
    -- is the case), point the roles that use it at another provider, or reach Claude
    -- through an OpenAI-compatible gateway declared with kind = "openai".
    anthropic = {
      kind = "anthropic",
      api_key_env = "ANTHROPIC_API_KEY",
      model = "claude-sonnet-4-5",
      -- The timeouts, spelled out with their default values:
      connect_timeout_ms = 10000,   -- 10 s to establish the connection
      timeout_ms = 600000,          -- 10 min for the whole request
      idle_timeout_ms = 120000,     -- 2 min of silence mid-answer counts as a failure
    },

    -- A local vLLM server, started for example with
    --   vllm serve Qwen/Qwen2.5-7B-Instruct --port 8000
    -- The model name in requests must match the name vLLM serves (by default the one
    -- given to `vllm serve`).
    vllm = {
      kind = "openai",
      base_url = "http://127.0.0.1:8000/v1",
      model = "Qwen/Qwen2.5-7B-Instruct",
      -- api_key_env = "VLLM_API_KEY",   -- only if you started vllm with --api-key
      -- ca_file = "/etc/ssl/my-lab-ca.pem", -- only for an https:// URL whose certificate
      --                                     -- is signed by your own CA
      max_inflight = 128,   -- vLLM batches many requests at once; this is an example
    },

    -- llama.cpp's HTTP server, started for example with
    --   llama-server -m qwen2.5-7b-instruct-q4_k_m.gguf --port 8080 --parallel 4
    -- A server started with one model answers with that model, so the model name
    -- below mostly serves as a label in logs and results.
    llamacpp = {
      kind = "openai",
      base_url = "http://127.0.0.1:8080/v1",
      model = "qwen2.5-7b-instruct",
      max_inflight = 4,            -- match --parallel: more requests would just queue
      idle_timeout_ms = 300000,    -- on a CPU, a long prompt can take minutes before
      --                              the first token arrives
      -- stream_usage = false,     -- uncomment if your server rejects stream_options
    },

    -- Ollama's OpenAI-compatible endpoint (`ollama serve`; it listens on 11434).
    -- Pull a model first: ollama pull qwen2.5:7b
    -- Ollama's default context window is small; long source documents can be cut
    -- without an error, so raise num_ctx for the model if your prompts are long.
    ollama = {
      kind = "openai",
      base_url = "http://127.0.0.1:11434/v1",
      model = "qwen2.5:7b",
      -- stream_usage = false,     -- uncomment if your server rejects stream_options
    },
  },

  -----------------------------------------------------------------------------------
  -- models: role aliases. Scripts ask for a role (llm.chat{ model = "strong", ... })
  -- and this table says which provider and model play it, so a recipe can move from
  -- a hosted API to a local server without changing a line of the script.
  --
  -- The roles a synthetic-data recipe uses:
  --   challenger  reads a source document and writes a question, a reference answer
  --               and a weighted rubric; give it your most capable model
  --   checker     reviews the challenger's draft (is it answerable from the document,
  --               is the reference answer right, is the rubric fair?)
  --   weak        a model the question should defeat
  --   strong      a model the question should not defeat
  --   judge       grades answers against the rubric
  --   analyst     reads the results and summarizes what went wrong or right
  --
  -- Each alias takes one of two forms:
  --   "provider/model"                  short form; everything after the first slash
  --                                     is the model name, so "vllm/Qwen/Qwen2.5-7B-
  --                                     Instruct" works
  --   { provider = "...", model = "...", price = { input = X, output = Y } }
  --                                     long form; `model` may be left out to use the
  --                                     provider's default model, and `price` is in
  --                                     US dollars per million tokens
  -- With a price, results carry cost_usd. Without one, cost_usd is nil (unknown), never
  -- 0, so local models simply report no cost.
  --
  -- PRICES BELOW ARE EXAMPLES. Check them against each provider's current price list
  -- before trusting any cost figure moonloop prints.
  -----------------------------------------------------------------------------------
  models = {
    challenger = {
      provider = "anthropic",
      model = "claude-sonnet-4-5",
      price = { input = 3.00, output = 15.00 },     -- example prices, check them
    },
    checker = {
      provider = "openai",
      model = "gpt-4.1-mini",
      price = { input = 0.40, output = 1.60 },      -- example prices, check them
    },
    -- A small local model plays the weak solver. Short form, so no price: cost_usd is
    -- nil for it.
    weak = "vllm/Qwen/Qwen2.5-7B-Instruct",
    strong = {
      provider = "openai",
      model = "gpt-4.1",
      price = { input = 2.00, output = 8.00 },      -- example prices, check them
    },
    -- A judge from a different model family than the strong solver is less likely to
    -- favour answers written in its own style.
    judge = {
      provider = "anthropic",
      model = "claude-haiku-4-5",
      price = { input = 1.00, output = 5.00 },      -- example prices, check them
    },
    analyst = "openai/gpt-4.1-mini",
  },

  -----------------------------------------------------------------------------------
  -- default_provider: where a request goes when its model is not an alias above and
  -- not written as "provider/model". A bare role name that is not listed under models
  -- goes to this provider's default `model`; any other bare name is sent to it as a
  -- model id. With a single provider it is implied; with several, set it, or every
  -- request must name a role or a "provider/model".
  -----------------------------------------------------------------------------------
  default_provider = "openai",
}

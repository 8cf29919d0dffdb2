/* Provider and model configuration (SPEC section 3): a Lua file that returns a table, or
 * zero config from OPENAI_API_KEY / OPENAI_BASE_URL, or the offline simulator.
 * API keys are never stored here: only the name of the environment variable. */
#ifndef ML_LLM_CONFIG_H
#define ML_LLM_CONFIG_H

#include <stddef.h>

enum llm_kind { LLM_KIND_OPENAI, LLM_KIND_ANTHROPIC, LLM_KIND_SIM };

struct llm_provider {
  char *name;
  enum llm_kind kind;
  char *base_url;      /* without trailing slash */
  char *api_key_env;   /* NULL: no key (local servers) */
  char *default_model; /* used for role names that are not aliases */
  char *ca_file;       /* CA bundle for servers with their own certificates */
  long connect_timeout_ms, timeout_ms, idle_timeout_ms;
  int stream_usage; /* ask for usage in streams (stream_options.include_usage) */
  int max_attempts; /* sends per request, retries included (1 = no retry) */
  int max_inflight; /* 0: no cap (AIMD still lowers it when the server pushes back) */
  long rpm, tpm;    /* 0: unlimited until the server's headers say otherwise */
  int breaker_threshold; /* consecutive failures that open the circuit breaker */
};

struct llm_model {
  char *alias;
  int provider; /* index into providers */
  char *model;
  double price_in, price_out; /* USD per million tokens */
  int has_price;
};

struct llm_config {
  struct llm_provider *providers;
  int nproviders;
  struct llm_model *models;
  int nmodels;
  int default_provider; /* -1 when there is more than one and none was named */
  char source[512];     /* the file it came from, or a description of the zero config */
  int offline;          /* nothing configured: the simulator plays every role */
  char *cache_path;     /* NULL: no cache */
  char cache_mode[16];  /* off, read, readwrite, refresh */
  double budget_usd;    /* 0: no dollar budget */
  long budget_requests; /* 0: no request cap */
};

/* Load from path, or (path NULL) ./moonloop.lua, $XDG_CONFIG_HOME/moonloop/config.lua,
 * ~/.config/moonloop/config.lua, else zero config from the environment. Returns 0, or -1
 * with a message naming the file and the offending key in err. */
int llm_config_load(struct llm_config *cfg, const char *path, char *err, size_t errlen);

/* The second half of llm_config_load, for the fuzz target and tests: read the value on
 * top of L (what a config file returned) into cfg, in protected mode, so a metamethod that
 * raises an error is reported, not fatal. `file` names the source in messages. The stack
 * is left as it was. Returns 0, or -1 with a message in err (cfg is then empty). */
struct lua_State;
int llm_config_from_lua(struct llm_config *cfg, struct lua_State *L, const char *file,
                        char *err, size_t errlen);

/* The simulator only (--offline). */
void llm_config_offline(struct llm_config *cfg);

void llm_config_free(struct llm_config *cfg);

/* Resolve what a script passed as `model`: an alias from `models`, "provider/model", a
 * role name (default model of the default provider) or a bare model id of the default
 * provider. Returns 0 and sets the outputs, or -1 with a message in err. *alias may be
 * NULL when no alias matched. */
int llm_config_resolve(const struct llm_config *cfg, const char *name,
                       const struct llm_provider **prov, const char **model,
                       const struct llm_model **alias, char *err, size_t errlen);

const char *llm_kind_name(enum llm_kind kind);

#endif

/* The `llm` Lua module: llm.chat and the runtime's request counters. */
#ifndef ML_LLM_H
#define ML_LLM_H

#include <stdint.h>
#include <lua.h>

#include "llm/config.h"

struct ml_rt;
struct gate_set;
struct llm_cache;
struct flight;

struct llm_stats {
  uint64_t requests, ok, errors;
  uint64_t sent;    /* HTTP requests actually sent, retries included */
  uint64_t retries; /* attempts after the first */
  uint64_t cache_hits, merged; /* answered from the cache / by an identical request */
  uint64_t errors_by_kind[8];
  uint64_t input_tokens, output_tokens;
  double cost_usd;
  uint64_t unpriced_requests; /* requests whose model has no price: cost unknown */
};

struct llm_state {
  struct llm_config cfg;
  double budget_usd;      /* 0: none */
  uint64_t budget_requests; /* 0: none */
  int budget_reached;
  int unpriced_warned;
  struct gate_set *gates; /* admission per provider and model */
  struct llm_cache *cache; /* opened on first use; NULL when off */
  int cache_mode;          /* enum cache_mode */
  int cache_failed;        /* the file could not be opened: said once, then no cache */
  struct flight *flights;  /* identical requests in flight, merged into one */
  uint64_t next_request_id;
  int offline_notice_shown;
  struct llm_stats stats;
};

/* Takes ownership of cfg. Registers the global `llm`. */
int llm_open(lua_State *L, struct ml_rt *rt, struct llm_config *cfg);
void llm_close(struct ml_rt *rt);

struct limiter_stats;
/* Pushes a new table of what a gate's limiter knows (cap, in_flight, rpm, tpm), with room
 * for `more` fields the caller adds: llm.stats().limits and llm.limits() share it. */
void llm_push_limits(lua_State *L, const struct limiter_stats *s, int more);

#endif

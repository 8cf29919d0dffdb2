/* libFuzzer target for the config loader (src/llm/config.c). The input is the text of a
 * moonloop.lua; it runs in a state without I/O, with a memory cap and an instruction budget,
 * and whatever it returns (tables with metamethods, huge numbers, NaN, odd keys) goes
 * through llm_config_from_lua, the validation llm_config_load uses.
 *
 * Checked: reading never crashes or aborts; a refusal names the file; an accepted config is
 * coherent: at least one provider, each with a name, a default model and (unless it is the
 * simulator) an http(s) base_url without a trailing slash, numbers in range, models that
 * point at real providers, and every alias and role name resolves. */
#include "fuzz_lua.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "llm/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "fuzz_config: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);        \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

static void check_config(const struct llm_config *cfg) {
  char err[512];
  CHECK(cfg->nproviders >= 1);
  CHECK(cfg->default_provider >= -1 && cfg->default_provider < cfg->nproviders);
  CHECK(strcmp(cfg->source, "fuzz.lua") == 0);
  for (int i = 0; i < cfg->nproviders; i++) {
    const struct llm_provider *p = &cfg->providers[i];
    CHECK(p->name != NULL && p->default_model != NULL);
    CHECK(p->kind == LLM_KIND_OPENAI || p->kind == LLM_KIND_ANTHROPIC || p->kind == LLM_KIND_SIM);
    if (p->kind != LLM_KIND_SIM)
      CHECK(p->base_url != NULL);
    if (p->base_url) {
      size_t n = strlen(p->base_url);
      CHECK(strncmp(p->base_url, "http://", 7) == 0 || strncmp(p->base_url, "https://", 8) == 0);
      CHECK(n > 0 && p->base_url[n - 1] != '/');
    }
    CHECK(p->max_attempts >= 1 && p->max_attempts <= 100);
    CHECK(p->max_inflight >= 0 && p->breaker_threshold >= 0);
    CHECK(p->connect_timeout_ms >= 0 && p->timeout_ms >= 0 && p->idle_timeout_ms >= 0);
    CHECK(p->rpm >= 0 && p->tpm >= 0);
    for (int j = 0; j < i; j++)
      CHECK(strcmp(cfg->providers[j].name, p->name) < 0); /* sorted, no duplicates */
  }
  for (int i = 0; i < cfg->nmodels; i++) {
    const struct llm_model *m = &cfg->models[i];
    CHECK(m->alias != NULL && m->model != NULL);
    CHECK(m->provider >= 0 && m->provider < cfg->nproviders);
    CHECK(!m->has_price || (m->price_in >= 0 && m->price_out >= 0));
    const struct llm_provider *prov;
    const char *model;
    const struct llm_model *alias;
    CHECK(llm_config_resolve(cfg, m->alias, &prov, &model, &alias, err, sizeof err) == 0);
    CHECK(alias != NULL && prov != NULL && model != NULL);
  }
  static const char *const names[] = {"default", "strong", "weak", "judge", "gpt-x", NULL};
  for (int i = 0; names[i]; i++) {
    const struct llm_provider *prov = NULL;
    const char *model = NULL;
    const struct llm_model *alias = NULL;
    err[0] = '\0';
    int rc = llm_config_resolve(cfg, names[i], &prov, &model, &alias, err, sizeof err);
    if (rc == 0)
      CHECK(prov != NULL && model != NULL);
    else
      CHECK(cfg->default_provider < 0 && err[0] != '\0');
  }
  if (cfg->cache_path) {
    CHECK(strcmp(cfg->cache_mode, "off") == 0 || strcmp(cfg->cache_mode, "read") == 0 ||
          strcmp(cfg->cache_mode, "readwrite") == 0 || strcmp(cfg->cache_mode, "refresh") == 0);
  }
  CHECK(cfg->budget_usd >= 0 && cfg->budget_requests >= 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct fuzz_lua f;
  /* One state per input: a config may change any global, and the next must not see it. */
  fuzz_lua_open(&f, 32, 2000, 0); /* configs are small: a loop or a flood is cut early */
  lua_State *L = f.L;
  lua_pushnil(L);
  lua_setglobal(L, "require");
  lua_pushnil(L);
  lua_setglobal(L, "package");
  if (luaL_loadbufferx(L, (const char *)data, size, "=fuzz.lua", "t") == LUA_OK &&
      fuzz_lua_call(&f, 0, 1) == LUA_OK) {
    struct llm_config cfg;
    char err[512];
    int top = lua_gettop(L);
    f.steps = 0;
    int rc = llm_config_from_lua(&cfg, L, "fuzz.lua", err, sizeof err);
    CHECK(lua_gettop(L) == top);
    if (rc == 0) {
      check_config(&cfg);
      llm_config_free(&cfg);
    } else {
      CHECK(strncmp(err, "fuzz.lua: ", 10) == 0);
      CHECK(cfg.nproviders == 0 && cfg.providers == NULL && cfg.models == NULL);
    }
  }
  fuzz_lua_close(&f);
  return 0;
}

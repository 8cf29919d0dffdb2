/* llm.limits{provider=, max_inflight=, rpm=, tpm=}: read and change a provider's limits while
 * the runtime runs (the REPL's :limits).
 *
 * A provider's limits are copied into a gate (limiter) the first time each of its models is
 * used. A change applies to the provider's configuration, so models used from now on get it,
 * and to every gate of the provider that exists already (gate_reconfigure): the cap and the
 * per-minute budgets change at once; limits learned from headers still lower them. The
 * result says, per gate, what is in force. */
#include <math.h>
#include <string.h>

#include <lauxlib.h>

#include "core/rt.h"
#include "llm/gate.h"
#include "llm/llm.h"

int llm_limits_lua(lua_State *L);

void llm_push_limits(lua_State *L, const struct limiter_stats *s, int more) {
  lua_createtable(L, 0, 4 + more);
  lua_pushinteger(L, s->effective_cap);
  lua_setfield(L, -2, "cap");
  lua_pushinteger(L, s->in_flight);
  lua_setfield(L, -2, "in_flight");
  lua_pushnumber(L, s->rpm_capacity);
  lua_setfield(L, -2, "rpm");
  lua_pushnumber(L, s->tpm_capacity);
  lua_setfield(L, -2, "tpm");
}

static struct llm_provider *find_provider(lua_State *L, struct llm_config *cfg, const char *name) {
  if (name == NULL) {
    if (cfg->default_provider >= 0 && cfg->default_provider < cfg->nproviders)
      return &cfg->providers[cfg->default_provider];
    if (cfg->nproviders == 1)
      return &cfg->providers[0];
    luaL_error(L, "llm.limits: name the provider (there are %d)", cfg->nproviders);
  }
  for (int i = 0; i < cfg->nproviders; i++)
    if (strcmp(cfg->providers[i].name, name) == 0)
      return &cfg->providers[i];
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 0; i < cfg->nproviders; i++) {
    if (i > 0)
      luaL_addstring(&b, ", ");
    luaL_addstring(&b, cfg->providers[i].name);
  }
  luaL_pushresult(&b);
  luaL_error(L, "llm.limits: no provider '%s' (configured: %s)", name, lua_tostring(L, -1));
  return NULL;
}

/* An optional limit: nil keeps it, a number >= 0 sets it (0 = none). */
static int opt_limit(lua_State *L, const char *key, double *out) {
  int t = lua_getfield(L, 1, key);
  int set = 0;
  if (t != LUA_TNIL) {
    int isnum = 0;
    lua_Number v = lua_tonumberx(L, -1, &isnum);
    if (!isnum || !(v >= 0) || isinf(v))
      luaL_error(L, "llm.limits: %s must be a number >= 0 (0 = no limit)", key);
    *out = floor(v);
    set = 1;
  }
  lua_pop(L, 1);
  return set;
}

static void push_provider(lua_State *L, struct ml_rt *rt, const struct llm_provider *p) {
  lua_createtable(L, 0, 5);
  lua_pushstring(L, p->name);
  lua_setfield(L, -2, "provider");
  lua_pushinteger(L, p->max_inflight);
  lua_setfield(L, -2, "max_inflight");
  lua_pushinteger(L, p->rpm);
  lua_setfield(L, -2, "rpm");
  lua_pushinteger(L, p->tpm);
  lua_setfield(L, -2, "tpm");
  /* The gates of this provider's models: what is in force there. */
  lua_newtable(L);
  size_t plen = strlen(p->name);
  for (struct gate *g = gate_first(rt->llm->gates); g; g = gate_next(g)) {
    const char *gn = gate_name(g);
    if (strncmp(gn, p->name, plen) != 0 || gn[plen] != '/')
      continue;
    struct limiter_stats s = gate_stats(g);
    llm_push_limits(L, &s, 0);
    lua_setfield(L, -2, gn);
  }
  lua_setfield(L, -2, "models");
}

/* llm.limits([{provider=, max_inflight=, rpm=, tpm=}]) -> the provider's limits after the
 * change, and those in force per model ({models = {["p/m"] = {cap=, rpm=, tpm=, in_flight=}}}).
 * Without a provider name: the default provider. */
int llm_limits_lua(lua_State *L) {
  struct ml_rt *rt = rt_from_lua(L);
  if (lua_isnoneornil(L, 1))
    lua_newtable(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_getfield(L, 1, "provider");
  const char *name = lua_tostring(L, -1);
  struct llm_provider *p = find_provider(L, &rt->llm->cfg, name);
  lua_pop(L, 1);
  double inflight = 0, rpm = 0, tpm = 0;
  int set_inflight = opt_limit(L, "max_inflight", &inflight);
  int set_rpm = opt_limit(L, "rpm", &rpm);
  int set_tpm = opt_limit(L, "tpm", &tpm);
  if (set_inflight && inflight > 1e6)
    return luaL_error(L, "llm.limits: max_inflight %.0f is too large", inflight);
  if (set_rpm)
    p->rpm = (long)rpm;
  if (set_tpm)
    p->tpm = (long)tpm;
  if (set_inflight)
    p->max_inflight = (int)inflight;
  if (set_inflight || set_rpm || set_tpm) {
    size_t plen = strlen(p->name);
    for (struct gate *g = gate_first(rt->llm->gates); g; g = gate_next(g)) {
      const char *gn = gate_name(g);
      if (strncmp(gn, p->name, plen) != 0 || gn[plen] != '/')
        continue;
      struct limiter_config c;
      limiter_config_default(&c);
      c.max_inflight = p->max_inflight;
      c.rpm = p->rpm;
      c.tpm = p->tpm;
      gate_reconfigure(g, &c);
    }
  }
  push_provider(L, rt, p);
  return 1;
}

/* Loading moonloop.lua into C structs, validating every key so a typo is reported with
 * the file and the key's path instead of being silently ignored. The file runs in its
 * own throwaway Lua state: it is the user's own file, but nothing of it survives except
 * plain strings and numbers. */
#include "llm/config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#define DEFAULT_OPENAI_URL "https://api.openai.com/v1"
#define DEFAULT_OPENAI_MODEL "gpt-4o-mini"
#define DEFAULT_ANTHROPIC_URL "https://api.anthropic.com/v1"
#define DEFAULT_ANTHROPIC_MODEL "claude-sonnet-4-5"

/* Numbers above this are typos (and would not fit the longs and ints they go into). */
#define CONFIG_MAX_NUMBER 1e15
#define CONFIG_MAX_PROVIDERS 256
/* A config is a few small tables: more memory or instructions than this is a runaway
 * (a loop that never ends, a table that grows forever), reported instead of hanging or
 * exhausting the machine. */
#define CONFIG_MAX_BYTES ((size_t)64 << 20)
#define CONFIG_MAX_MINSTRUCTIONS 500 /* millions of Lua VM instructions */

static const char *const role_names[] = {"default", "strong", "weak",    "judge",
                                         "challenger", "checker", "analyst", NULL};

const char *llm_kind_name(enum llm_kind kind) {
  switch (kind) {
  case LLM_KIND_OPENAI: return "openai";
  case LLM_KIND_ANTHROPIC: return "anthropic";
  case LLM_KIND_SIM: return "sim";
  }
  return "?";
}

static char *xstrdup(const char *s) {
  return s ? strdup(s) : NULL;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static void provider_defaults(struct llm_provider *p) {
  p->connect_timeout_ms = 10000;
  p->timeout_ms = 600000;
  p->idle_timeout_ms = 120000;
  p->stream_usage = 1;
  p->max_attempts = 5;
  /* With dozens of requests in flight, a handful of failures in a row happens by chance on
   * a flaky but working server; twenty in a row is an outage. */
  p->breaker_threshold = 20;
}

static struct llm_provider *add_provider(struct llm_config *cfg, const char *name) {
  struct llm_provider *p = realloc(cfg->providers, (size_t)(cfg->nproviders + 1) * sizeof *p);
  if (p == NULL)
    return NULL;
  cfg->providers = p;
  p = &cfg->providers[cfg->nproviders++];
  memset(p, 0, sizeof *p);
  provider_defaults(p);
  p->name = xstrdup(name);
  return p;
}

void llm_config_offline(struct llm_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  struct llm_provider *p = add_provider(cfg, "sim");
  if (p) {
    p->kind = LLM_KIND_SIM;
    p->default_model = xstrdup("sim-default");
  }
  cfg->default_provider = 0;
  cfg->offline = 1;
  snprintf(cfg->source, sizeof cfg->source, "the offline simulator");
}

static void zero_config(struct llm_config *cfg) {
  const char *key = getenv("OPENAI_API_KEY");
  const char *url = getenv("OPENAI_BASE_URL");
  const char *akey = getenv("ANTHROPIC_API_KEY");
  if ((key == NULL || !*key) && (url == NULL || !*url) && akey && *akey) {
    /* Only Anthropic's key is set: every role goes to its default model. */
    memset(cfg, 0, sizeof *cfg);
    struct llm_provider *p = add_provider(cfg, "anthropic");
    if (p == NULL)
      return;
    p->kind = LLM_KIND_ANTHROPIC;
    const char *aurl = getenv("ANTHROPIC_BASE_URL");
    p->base_url = xstrdup(aurl && *aurl ? aurl : DEFAULT_ANTHROPIC_URL);
    size_t n = strlen(p->base_url);
    while (n > 0 && p->base_url[n - 1] == '/')
      p->base_url[--n] = '\0';
    p->api_key_env = xstrdup("ANTHROPIC_API_KEY");
    const char *model = getenv("MOONLOOP_MODEL");
    p->default_model = xstrdup(model && *model ? model : DEFAULT_ANTHROPIC_MODEL);
    cfg->default_provider = 0;
    snprintf(cfg->source, sizeof cfg->source, "environment (ANTHROPIC_API_KEY)");
    return;
  }
  if ((key == NULL || !*key) && (url == NULL || !*url)) {
    llm_config_offline(cfg);
    snprintf(cfg->source, sizeof cfg->source,
             "the offline simulator (no moonloop.lua, OPENAI_API_KEY and OPENAI_BASE_URL unset)");
    return;
  }
  memset(cfg, 0, sizeof *cfg);
  struct llm_provider *p = add_provider(cfg, "openai");
  if (p == NULL)
    return;
  p->kind = LLM_KIND_OPENAI;
  p->base_url = xstrdup(url && *url ? url : DEFAULT_OPENAI_URL);
  size_t n = strlen(p->base_url);
  while (n > 0 && p->base_url[n - 1] == '/')
    p->base_url[--n] = '\0';
  p->api_key_env = key && *key ? xstrdup("OPENAI_API_KEY") : NULL;
  const char *model = getenv("MOONLOOP_MODEL");
  p->default_model = xstrdup(model && *model ? model : DEFAULT_OPENAI_MODEL);
  cfg->default_provider = 0;
  snprintf(cfg->source, sizeof cfg->source, "environment (OPENAI_%s)",
           key && *key ? "API_KEY" : "BASE_URL");
}

/* ---------------------------------------------------------------------------------- */
/* Reading the table */

struct reader {
  lua_State *L;
  const char *file;
  char *err;
  size_t errlen;
};

static int fail(struct reader *r, const char *path, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  set_err(r->err, r->errlen, "%s: %s: %s", r->file, path, msg);
  return -1;
}

/* Reject keys not in `allowed` (a NULL-terminated list) in the table at the top. */
static int check_keys(struct reader *r, const char *path, const char *const *allowed) {
  lua_State *L = r->L;
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING) {
      lua_pop(L, 1);
      return fail(r, path, "keys must be strings");
    }
    const char *k = lua_tostring(L, -1);
    int ok = 0;
    for (int i = 0; allowed[i]; i++)
      ok |= strcmp(allowed[i], k) == 0;
    if (!ok) {
      char list[256] = "";
      for (int i = 0; allowed[i]; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, allowed[i], sizeof list - strlen(list) - 1);
      }
      int rc = fail(r, path, "unknown key '%s' (known keys: %s)", k, list);
      lua_pop(L, 1);
      return rc;
    }
  }
  return 0;
}

/* The offset of the first byte that does not start a well-formed UTF-8 sequence (no
 * overlongs, surrogates or code points above U+10FFFF), or len when all of s is UTF-8.
 * Strings from the config end up in JSON requests, which must be UTF-8. */
static size_t utf8_invalid_at(const char *str, size_t len) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < len) {
    unsigned c = s[i];
    size_t n = c < 0x80             ? 1
               : (c & 0xE0) == 0xC0 ? 2
               : (c & 0xF0) == 0xE0 ? 3
               : (c & 0xF8) == 0xF0 ? 4
                                    : 0;
    if (n == 0 || len - i < n || (n == 2 && c < 0xC2))
      return i;
    for (size_t k = 1; k < n; k++)
      if ((s[i + k] & 0xC0) != 0x80)
        return i;
    if (n == 3) {
      unsigned c1 = s[i + 1];
      if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 >= 0xA0))
        return i;
    } else if (n == 4) {
      unsigned c1 = s[i + 1];
      if ((c == 0xF0 && c1 < 0x90) || c > 0xF4 || (c == 0xF4 && c1 >= 0x90))
        return i;
    }
    i += n;
  }
  return len;
}

/* Field getters on the table at the top. Return 0 absent, 1 present, -1 wrong type. */
static int get_string(struct reader *r, const char *path, const char *key, char **out) {
  lua_getfield(r->L, -1, key);
  int t = lua_type(r->L, -1);
  if (t == LUA_TNIL) {
    lua_pop(r->L, 1);
    return 0;
  }
  if (t != LUA_TSTRING) {
    lua_pop(r->L, 1);
    return fail(r, path, "'%s' must be a string", key);
  }
  size_t len;
  const char *v = lua_tolstring(r->L, -1, &len);
  size_t bad = utf8_invalid_at(v, len);
  if (bad < len || strlen(v) != len) {
    lua_pop(r->L, 1);
    return bad < len ? fail(r, path, "'%s' is not valid UTF-8 (byte %zu)", key, bad + 1)
                     : fail(r, path, "'%s' contains a NUL byte", key);
  }
  free(*out);
  *out = xstrdup(lua_tostring(r->L, -1));
  lua_pop(r->L, 1);
  return 1;
}

static int get_number(struct reader *r, const char *path, const char *key, double *out) {
  lua_getfield(r->L, -1, key);
  int t = lua_type(r->L, -1);
  if (t == LUA_TNIL) {
    lua_pop(r->L, 1);
    return 0;
  }
  double v = t == LUA_TNUMBER ? lua_tonumber(r->L, -1) : -1;
  lua_pop(r->L, 1);
  /* NaN fails the first test; the bound keeps every later cast to long defined. */
  if (!(v >= 0))
    return fail(r, path, "'%s' must be a non-negative number", key);
  if (v > CONFIG_MAX_NUMBER)
    return fail(r, path, "'%s' is too large (at most %.0e)", key, CONFIG_MAX_NUMBER);
  *out = v;
  return 1;
}

static int get_ms(struct reader *r, const char *path, const char *key, long *out) {
  double v = 0;
  int rc = get_number(r, path, key, &v);
  if (rc == 1)
    *out = (long)v;
  return rc < 0 ? -1 : 0;
}

/* A count that ends up in an int: at most `max`. */
static int get_count(struct reader *r, const char *path, const char *key, long max, int *out) {
  long v = *out;
  if (get_ms(r, path, key, &v) < 0)
    return -1;
  if (v > max)
    return fail(r, path, "'%s' is too large (at most %ld)", key, max);
  *out = (int)v;
  return 0;
}

static int read_provider(struct reader *r, struct llm_config *cfg, const char *name) {
  static const char *const keys[] = {"kind", "base_url", "api_key_env", "model",
                                     "connect_timeout_ms", "timeout_ms", "idle_timeout_ms",
                                     "stream_usage", "ca_file", "max_attempts", "max_inflight", "rpm",
                                     "tpm", "breaker_threshold", NULL};
  char path[160];
  snprintf(path, sizeof path, "providers.%s", name);
  if (!lua_istable(r->L, -1))
    return fail(r, path, "must be a table like { kind = \"openai\", base_url = ... }");
  if (check_keys(r, path, keys) < 0)
    return -1;
  struct llm_provider *p = add_provider(cfg, name);
  if (p == NULL)
    return fail(r, path, "out of memory");
  char *kind = NULL;
  if (get_string(r, path, "kind", &kind) <= 0) {
    free(kind);
    return kind ? -1 : fail(r, path, "'kind' is required: \"openai\", \"anthropic\" or \"sim\"");
  }
  if (strcmp(kind, "openai") == 0)
    p->kind = LLM_KIND_OPENAI;
  else if (strcmp(kind, "anthropic") == 0)
    p->kind = LLM_KIND_ANTHROPIC;
  else if (strcmp(kind, "sim") == 0)
    p->kind = LLM_KIND_SIM;
  else {
    int rc = fail(r, path, "kind \"%s\" is not one of \"openai\", \"anthropic\", \"sim\"", kind);
    free(kind);
    return rc;
  }
  free(kind);
  if (get_string(r, path, "base_url", &p->base_url) < 0 ||
      get_string(r, path, "api_key_env", &p->api_key_env) < 0 ||
      get_string(r, path, "model", &p->default_model) < 0 ||
      get_string(r, path, "ca_file", &p->ca_file) < 0 ||
      get_ms(r, path, "connect_timeout_ms", &p->connect_timeout_ms) < 0 ||
      get_ms(r, path, "timeout_ms", &p->timeout_ms) < 0 ||
      get_ms(r, path, "idle_timeout_ms", &p->idle_timeout_ms) < 0)
    return -1;
  long attempts = p->max_attempts;
  if (get_ms(r, path, "max_attempts", &attempts) < 0)
    return -1;
  if (attempts < 1 || attempts > 100)
    return fail(r, path, "'max_attempts' must be between 1 and 100");
  p->max_attempts = (int)attempts;
  if (get_count(r, path, "max_inflight", 1000000, &p->max_inflight) < 0 ||
      get_ms(r, path, "rpm", &p->rpm) < 0 || get_ms(r, path, "tpm", &p->tpm) < 0 ||
      get_count(r, path, "breaker_threshold", 1000000, &p->breaker_threshold) < 0)
    return -1;
  lua_getfield(r->L, -1, "stream_usage");
  if (!lua_isnil(r->L, -1))
    p->stream_usage = lua_toboolean(r->L, -1);
  lua_pop(r->L, 1);
  if (p->kind == LLM_KIND_OPENAI && p->base_url == NULL)
    p->base_url = xstrdup(DEFAULT_OPENAI_URL);
  if (p->kind == LLM_KIND_ANTHROPIC && p->base_url == NULL)
    p->base_url = xstrdup(DEFAULT_ANTHROPIC_URL);
  if (p->base_url) {
    const char *u = p->base_url;
    const char *host = strncmp(u, "http://", 7) == 0    ? u + 7
                       : strncmp(u, "https://", 8) == 0 ? u + 8
                                                        : NULL;
    if (host == NULL || *host == '\0' || *host == '/')
      return fail(r, path,
                  "base_url \"%s\" must start with http:// or https:// and name a host "
                  "(like http://127.0.0.1:8000/v1)",
                  u);
    size_t n = strlen(p->base_url);
    while (n > 0 && p->base_url[n - 1] == '/')
      p->base_url[--n] = '\0';
  }
  if (p->default_model == NULL)
    p->default_model = xstrdup(p->kind == LLM_KIND_SIM         ? "sim-default"
                               : p->kind == LLM_KIND_ANTHROPIC ? DEFAULT_ANTHROPIC_MODEL
                                                               : DEFAULT_OPENAI_MODEL);
  return 0;
}

static int find_provider(const struct llm_config *cfg, const char *name, size_t len) {
  for (int i = 0; i < cfg->nproviders; i++)
    if (strlen(cfg->providers[i].name) == len && strncmp(cfg->providers[i].name, name, len) == 0)
      return i;
  return -1;
}

static int read_model(struct reader *r, struct llm_config *cfg, const char *alias) {
  static const char *const keys[] = {"provider", "model", "price", NULL};
  char path[160];
  snprintf(path, sizeof path, "models.%s", alias);
  struct llm_model *m = realloc(cfg->models, (size_t)(cfg->nmodels + 1) * sizeof *m);
  if (m == NULL)
    return fail(r, path, "out of memory");
  cfg->models = m;
  m = &cfg->models[cfg->nmodels++];
  memset(m, 0, sizeof *m);
  m->alias = xstrdup(alias);
  m->provider = -1;
  lua_State *L = r->L;
  if (lua_type(L, -1) == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    if (utf8_invalid_at(s, len) < len || strlen(s) != len)
      return fail(r, path, "is not valid UTF-8 text");
    const char *slash = strchr(s, '/');
    if (slash == NULL || slash == s || slash[1] == '\0')
      return fail(r, path, "\"%s\" should be \"provider/model\" or a table", s);
    m->provider = find_provider(cfg, s, (size_t)(slash - s));
    if (m->provider < 0)
      return fail(r, path, "provider \"%.*s\" is not defined under providers", (int)(slash - s), s);
    m->model = xstrdup(slash + 1);
    return 0;
  }
  if (!lua_istable(L, -1))
    return fail(r, path, "must be \"provider/model\" or { provider = ..., model = ... }");
  if (check_keys(r, path, keys) < 0)
    return -1;
  char *prov = NULL;
  if (get_string(r, path, "provider", &prov) <= 0) {
    free(prov);
    return fail(r, path, "'provider' is required");
  }
  m->provider = find_provider(cfg, prov, strlen(prov));
  if (m->provider < 0) {
    int rc = fail(r, path, "provider \"%s\" is not defined under providers", prov);
    free(prov);
    return rc;
  }
  free(prov);
  if (get_string(r, path, "model", &m->model) < 0)
    return -1;
  if (m->model == NULL)
    m->model = xstrdup(cfg->providers[m->provider].default_model);
  lua_getfield(L, -1, "price");
  if (!lua_isnil(L, -1)) {
    static const char *const pkeys[] = {"input", "output", NULL};
    char ppath[192];
    snprintf(ppath, sizeof ppath, "%s.price", path);
    if (!lua_istable(L, -1) || check_keys(r, ppath, pkeys) < 0 ||
        get_number(r, ppath, "input", &m->price_in) <= 0 ||
        get_number(r, ppath, "output", &m->price_out) <= 0) {
      lua_pop(L, 1);
      if (!r->err[0])
        fail(r, ppath, "must be { input = USD per million tokens, output = USD per million }");
      return -1;
    }
    m->has_price = 1;
  }
  lua_pop(L, 1);
  return 0;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int read_config(struct reader *r, struct llm_config *cfg) {
  static const char *const keys[] = {"providers", "models", "default_provider", "cache", "budget",
                                     NULL};
  lua_State *L = r->L;
  if (!lua_istable(L, -1))
    return fail(r, "(file)", "must return a table (got %s)", luaL_typename(L, -1));
  if (check_keys(r, "(top level)", keys) < 0)
    return -1;

  lua_getfield(L, -1, "providers");
  if (!lua_istable(L, -1))
    return fail(r, "providers", "is required: a table of named providers");
  /* Sorted by name so the order (and the default) never depends on hash order. The names
   * live in a Lua array (freed by the GC if reading fails half way) and are sorted here in
   * C: the config may have replaced or removed the global `table`. */
  lua_newtable(L);
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, -3)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      return fail(r, "providers", "keys must be provider names (strings)");
    if (n >= CONFIG_MAX_PROVIDERS)
      return fail(r, "providers", "more than %d providers", CONFIG_MAX_PROVIDERS);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, ++n);
  }
  const char *names[CONFIG_MAX_PROVIDERS];
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i); /* anchored in the array, so the pointer stays valid */
    names[i - 1] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  qsort(names, (size_t)n, sizeof names[0], cmp_names);
  for (int i = 0; i < n; i++) {
    size_t len = strlen(names[i]);
    if (len > 100)
      return fail(r, "providers", "the name \"%.40s...\" is longer than 100 bytes", names[i]);
    if (len == 0 || utf8_invalid_at(names[i], len) < len)
      return fail(r, "providers", "a provider name is empty or not valid UTF-8");
    lua_pushstring(L, names[i]);
    lua_rawget(L, -3);
    if (read_provider(r, cfg, names[i]) < 0)
      return -1;
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
  if (cfg->nproviders == 0)
    return fail(r, "providers", "is empty: define at least one provider");

  cfg->default_provider = cfg->nproviders == 1 ? 0 : -1;
  char *def = NULL;
  if (get_string(r, "default_provider", "default_provider", &def) < 0)
    return -1;
  if (def) {
    cfg->default_provider = find_provider(cfg, def, strlen(def));
    if (cfg->default_provider < 0) {
      int rc = fail(r, "default_provider", "\"%s\" is not defined under providers", def);
      free(def);
      return rc;
    }
    free(def);
  }

  lua_getfield(L, -1, "cache");
  if (!lua_isnil(L, -1)) {
    static const char *const ckeys[] = {"path", "mode", NULL};
    char *mode = NULL;
    if (!lua_istable(L, -1) || check_keys(r, "cache", ckeys) < 0 ||
        get_string(r, "cache", "path", &cfg->cache_path) < 0 ||
        get_string(r, "cache", "mode", &mode) < 0) {
      free(mode);
      if (!r->err[0])
        fail(r, "cache", "must be { path = \"~/.cache/moonloop/cache.db\", mode = \"readwrite\" }");
      return -1;
    }
    snprintf(cfg->cache_mode, sizeof cfg->cache_mode, "%s", mode ? mode : "readwrite");
    free(mode);
    if (strcmp(cfg->cache_mode, "off") && strcmp(cfg->cache_mode, "read") &&
        strcmp(cfg->cache_mode, "readwrite") && strcmp(cfg->cache_mode, "refresh"))
      return fail(r, "cache", "mode \"%s\" is not one of off, read, readwrite, refresh",
                  cfg->cache_mode);
    if (cfg->cache_path == NULL)
      cfg->cache_path = xstrdup("~/.cache/moonloop/cache.db");
  }
  lua_pop(L, 1);

  lua_getfield(L, -1, "budget");
  if (!lua_isnil(L, -1)) {
    static const char *const bkeys[] = {"usd", "requests", NULL};
    double req = 0;
    if (!lua_istable(L, -1) || check_keys(r, "budget", bkeys) < 0 ||
        get_number(r, "budget", "usd", &cfg->budget_usd) < 0 ||
        get_number(r, "budget", "requests", &req) < 0) {
      if (!r->err[0])
        fail(r, "budget", "must be { usd = dollars, requests = count }");
      return -1;
    }
    cfg->budget_requests = (long)req;
  }
  lua_pop(L, 1);

  lua_getfield(L, -1, "models");
  if (!lua_isnil(L, -1)) {
    if (!lua_istable(L, -1))
      return fail(r, "models", "must be a table of role aliases");
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      if (lua_type(L, -2) != LUA_TSTRING)
        return fail(r, "models", "keys must be alias names (strings)");
      size_t alen;
      const char *a = lua_tolstring(L, -2, &alen);
      if (alen > 100)
        return fail(r, "models", "the alias \"%.40s...\" is longer than 100 bytes", a);
      if (alen == 0 || utf8_invalid_at(a, alen) < alen || strlen(a) != alen)
        return fail(r, "models", "an alias is empty or not valid UTF-8");
      char alias[128];
      snprintf(alias, sizeof alias, "%s", lua_tostring(L, -2));
      if (read_model(r, cfg, alias) < 0)
        return -1;
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  return 0;
}

static int file_exists(const char *path) {
  return access(path, R_OK) == 0;
}

/* read_config in protected mode: a metamethod of the returned table (or memory running out)
 * may raise an error at any lua_getfield, and an error outside a pcall aborts the process. */
struct read_call {
  struct reader *r;
  struct llm_config *cfg;
  int rc;
};

static int read_config_lua(lua_State *L) {
  struct read_call *c = lua_touserdata(L, 1);
  lua_settop(L, 2);
  c->rc = read_config(c->r, c->cfg);
  return 0;
}

int llm_config_from_lua(struct llm_config *cfg, lua_State *L, const char *file, char *err,
                        size_t errlen) {
  memset(cfg, 0, sizeof *cfg);
  err[0] = '\0';
  struct reader r = {L, file, err, errlen};
  struct read_call c = {&r, cfg, -1};
  int top = lua_gettop(L);
  if (top < 1 || !lua_checkstack(L, 8)) {
    set_err(err, errlen, "%s: nothing to read", file);
    return -1;
  }
  lua_pushcfunction(L, read_config_lua);
  lua_pushlightuserdata(L, &c);
  lua_pushvalue(L, top);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    const char *m = lua_tostring(L, -1);
    if (!err[0])
      set_err(err, errlen, "%s: error while reading the returned table: %s", file,
              m ? m : "(no message)");
    c.rc = -1;
  }
  lua_settop(L, top);
  if (c.rc < 0) {
    if (!err[0])
      set_err(err, errlen, "%s: cannot read the returned table", file);
    llm_config_free(cfg);
    return -1;
  }
  snprintf(cfg->source, sizeof cfg->source, "%s", file);
  return 0;
}

/* The config's Lua state: its allocations are counted and capped, and a count hook stops a
 * config that runs for too long. */
struct config_budget {
  size_t used, cap;
  int hit_cap;
  long minstructions;
};

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  struct config_budget *b = ud;
  if (ptr == NULL)
    osize = 0;
  if (nsize == 0) {
    free(ptr);
    b->used -= osize;
    return NULL;
  }
  if (nsize > osize && nsize - osize > b->cap - b->used) {
    b->hit_cap = 1;
    return NULL;
  }
  void *p = realloc(ptr, nsize);
  if (p != NULL)
    b->used = b->used - osize + nsize;
  return p;
}

static void count_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  void *ud = NULL;
  lua_getallocf(L, &ud);
  struct config_budget *b = ud;
  if (++b->minstructions > CONFIG_MAX_MINSTRUCTIONS) {
    luaL_where(L, 0); /* level 0 in a hook is the config's function: "file:line:" */
    lua_pushfstring(L, "the config ran for more than %d million instructions (a loop that "
                       "never ends?)", CONFIG_MAX_MINSTRUCTIONS);
    lua_concat(L, 2);
    lua_error(L);
  }
}

int llm_config_load(struct llm_config *cfg, const char *path, char *err, size_t errlen) {
  char found[512];
  memset(cfg, 0, sizeof *cfg);
  err[0] = '\0';
  if (path == NULL) {
    const char *xdg = getenv("XDG_CONFIG_HOME");
    const char *home = getenv("HOME");
    if (file_exists("moonloop.lua"))
      path = "moonloop.lua";
    else if (xdg && *xdg && snprintf(found, sizeof found, "%s/moonloop/config.lua", xdg) > 0 &&
             file_exists(found))
      path = found;
    else if (home && *home &&
             snprintf(found, sizeof found, "%s/.config/moonloop/config.lua", home) > 0 &&
             file_exists(found))
      path = found;
  }
  if (path == NULL) {
    zero_config(cfg);
    return cfg->nproviders > 0 ? 0 : (set_err(err, errlen, "out of memory"), -1);
  }

  struct config_budget budget = {0, CONFIG_MAX_BYTES, 0, 0};
  lua_State *L = lua_newstate(capped_alloc, &budget);
  if (L == NULL) {
    set_err(err, errlen, "out of memory");
    return -1;
  }
  luaL_openlibs(L);
  lua_sethook(L, count_hook, LUA_MASKCOUNT, 1000000);
  int rc = -1;
  int status = luaL_loadfilex(L, path, "t");
  if (status == LUA_OK)
    status = lua_pcall(L, 0, 1, 0);
  if (status != LUA_OK) {
    /* The message usually names the file and line already ("moonloop.lua:3: ..."). */
    const char *m = lua_tostring(L, -1);
    if (m == NULL)
      m = "cannot load the config";
    if (budget.hit_cap)
      set_err(err, errlen, "%s: the config used more than %zu MiB of memory", path,
              CONFIG_MAX_BYTES >> 20);
    else if (strncmp(m, path, strlen(path)) == 0)
      set_err(err, errlen, "%s", m);
    else /* "C stack overflow", "attempt to load a binary chunk": name the file */
      set_err(err, errlen, "%s: %s", path, m);
  } else {
    rc = llm_config_from_lua(cfg, L, path, err, errlen);
    if (rc < 0 && budget.hit_cap)
      set_err(err, errlen, "%s: the config used more than %zu MiB of memory", path,
              CONFIG_MAX_BYTES >> 20);
  }
  lua_close(L);
  if (rc < 0)
    llm_config_free(cfg);
  return rc;
}

void llm_config_free(struct llm_config *cfg) {
  for (int i = 0; i < cfg->nproviders; i++) {
    free(cfg->providers[i].name);
    free(cfg->providers[i].base_url);
    free(cfg->providers[i].api_key_env);
    free(cfg->providers[i].default_model);
    free(cfg->providers[i].ca_file);
  }
  for (int i = 0; i < cfg->nmodels; i++) {
    free(cfg->models[i].alias);
    free(cfg->models[i].model);
  }
  free(cfg->providers);
  free(cfg->models);
  free(cfg->cache_path);
  cfg->cache_path = NULL;
  cfg->providers = NULL;
  cfg->models = NULL;
  cfg->nproviders = cfg->nmodels = 0;
}

int llm_config_resolve(const struct llm_config *cfg, const char *name,
                       const struct llm_provider **prov, const char **model,
                       const struct llm_model **alias, char *err, size_t errlen) {
  *alias = NULL;
  if (name == NULL)
    name = "default";
  for (int i = 0; i < cfg->nmodels; i++) {
    if (strcmp(cfg->models[i].alias, name) == 0) {
      *alias = &cfg->models[i];
      *prov = &cfg->providers[cfg->models[i].provider];
      *model = cfg->models[i].model;
      return 0;
    }
  }
  const char *slash = strchr(name, '/');
  if (slash) {
    int p = find_provider(cfg, name, (size_t)(slash - name));
    if (p >= 0) {
      *prov = &cfg->providers[p];
      *model = slash + 1;
      return 0;
    }
  }
  if (cfg->default_provider < 0) {
    set_err(err, errlen,
            "model \"%s\" is not an alias under models in %s, and with several providers "
            "there is no default: write \"provider/model\", add it to models, or set "
            "default_provider", name, cfg->source);
    return -1;
  }
  *prov = &cfg->providers[cfg->default_provider];
  *model = name;
  for (int i = 0; role_names[i]; i++)
    if (strcmp(role_names[i], name) == 0)
      *model = (*prov)->default_model;
  return 0;
}

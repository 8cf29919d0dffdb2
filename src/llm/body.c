/* Chat request bodies from llm.chat spec tables.
 *
 * body_tree is the general builder. body_text is a shortcut for what nearly every call
 * sends (a prompt or plain messages, a few numbers): building, printing and freeing a
 * cJSON tree for that costs more than the rest of the request, so the text is written
 * directly, byte for byte what cJSON_PrintUnformatted prints for the tree (cJSON's number
 * and string formats included), so servers, logs and body hashes cannot tell the two
 * apart. Anything outside the shortcut's shapes goes to body_tree, which also reports the
 * errors. tests/unit/test_body.c compares the two on many specs. */
#include "llm/body.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "lua/json.h"

int spec_key_id(const char *s, size_t n) {
#define K(lit, id)                                          \
  if (n == sizeof lit - 1 && memcmp(s, lit, sizeof lit - 1) == 0) \
    return id
  switch (n) {
  case 1: K("n", SK_N); break;
  case 4:
    K("stop", SK_STOP);
    K("json", SK_JSON);
    K("tags", SK_TAGS);
    K("seed", SK_SEED);
    break;
  case 5:
    K("model", SK_MODEL);
    K("cache", SK_CACHE);
    K("extra", SK_EXTRA);
    K("top_p", SK_TOP_P);
    break;
  case 6:
    K("prompt", SK_PROMPT);
    K("system", SK_SYSTEM);
    K("schema", SK_SCHEMA);
    K("stream", SK_STREAM);
    break;
  case 8:
    K("messages", SK_MESSAGES);
    K("attempts", SK_ATTEMPTS);
    break;
  case 10:
    K("max_tokens", SK_MAX_TOKENS);
    K("timeout_ms", SK_TIMEOUT_MS);
    break;
  case 11: K("temperature", SK_TEMPERATURE); break;
  default: break;
  }
#undef K
  return -1;
}

/* Push spec[name], or nil without a lookup when the spec does not hold the key. */
static int spec_get(lua_State *L, int spec, const struct body_opts *o, enum spec_key k,
                    const char *name) {
  if (!(o->present & (1u << k))) {
    lua_pushnil(L);
    return LUA_TNIL;
  }
  return lua_getfield(L, spec, name);
}

/* ---------------------------------------------------------------------------------- */
/* The tree */

static int add_number(lua_State *L, int spec, const struct body_opts *o, cJSON *body,
                      enum spec_key k, const char *key, int integer) {
  spec_get(L, spec, o, k, key);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  if (!lua_isnumber(L, -1)) {
    cJSON_Delete(body);
    return luaL_error(L, "llm.chat: '%s' must be a number, got %s", key, luaL_typename(L, -1));
  }
  if (integer)
    cJSON_AddNumberToObject(body, key, (double)lua_tointeger(L, -1));
  else
    cJSON_AddNumberToObject(body, key, lua_tonumber(L, -1));
  lua_pop(L, 1);
  return 0;
}

/* Convert the value on top of the stack (spec[key]) to JSON; raise on unconvertible
 * values. */
static cJSON *lua_field_json(lua_State *L, cJSON *body, const char *key) {
  char err[256];
  cJSON *v = ml_json_from_lua(L, -1, err, sizeof err);
  if (v == NULL) {
    cJSON_Delete(body);
    luaL_error(L, "llm.chat: '%s' cannot be sent as JSON: %s", key, err);
  }
  return v;
}

cJSON *body_tree(lua_State *L, int spec, const struct body_opts *o, int *want_json) {
  spec = lua_absindex(L, spec);
  cJSON *body = cJSON_CreateObject();
  if (body == NULL)
    luaL_error(L, "out of memory");
  cJSON_AddStringToObject(body, "model", o->model);

  cJSON *messages;
  spec_get(L, spec, o, SK_MESSAGES, "messages");
  if (lua_istable(L, -1)) {
    messages = lua_field_json(L, body, "messages");
    if (!cJSON_IsArray(messages)) {
      cJSON_Delete(messages);
      cJSON_Delete(body);
      luaL_error(L, "llm.chat: 'messages' must be a list of {role=, content=} tables");
    }
  } else if (!lua_isnil(L, -1)) {
    cJSON_Delete(body);
    luaL_error(L, "llm.chat: 'messages' must be a list, got %s", luaL_typename(L, -1));
    return NULL;
  } else {
    spec_get(L, spec, o, SK_PROMPT, "prompt");
    if (lua_type(L, -1) != LUA_TSTRING) {
      cJSON_Delete(body);
      luaL_error(L, "llm.chat needs messages = {...} or prompt = \"...\"");
    }
    messages = cJSON_CreateArray();
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "user");
    cJSON_AddStringToObject(m, "content", lua_tostring(L, -1));
    cJSON_AddItemToArray(messages, m);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  spec_get(L, spec, o, SK_SYSTEM, "system");
  if (lua_type(L, -1) == LUA_TSTRING) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "system");
    cJSON_AddStringToObject(m, "content", lua_tostring(L, -1));
    cJSON_InsertItemInArray(messages, 0, m);
  } else if (!lua_isnil(L, -1)) {
    cJSON_Delete(messages);
    cJSON_Delete(body);
    luaL_error(L, "llm.chat: 'system' must be a string");
  }
  lua_pop(L, 1);
  cJSON_AddItemToObject(body, "messages", messages);

  add_number(L, spec, o, body, SK_TEMPERATURE, "temperature", 0);
  add_number(L, spec, o, body, SK_TOP_P, "top_p", 0);
  add_number(L, spec, o, body, SK_MAX_TOKENS, "max_tokens", 1);
  add_number(L, spec, o, body, SK_SEED, "seed", 1);
  if (o->n > 1)
    cJSON_AddNumberToObject(body, "n", o->n);

  spec_get(L, spec, o, SK_STOP, "stop");
  if (lua_type(L, -1) == LUA_TSTRING || lua_istable(L, -1))
    cJSON_AddItemToObject(body, "stop", lua_field_json(L, body, "stop"));
  lua_pop(L, 1);

  spec_get(L, spec, o, SK_SCHEMA, "schema");
  if (lua_istable(L, -1)) {
    cJSON *schema = lua_field_json(L, body, "schema");
    cJSON *rf = cJSON_AddObjectToObject(body, "response_format");
    cJSON_AddStringToObject(rf, "type", "json_schema");
    cJSON *js = cJSON_AddObjectToObject(rf, "json_schema");
    cJSON_AddStringToObject(js, "name", "output");
    cJSON_AddItemToObject(js, "schema", schema);
    *want_json = 1;
  } else if (*want_json) {
    cJSON *rf = cJSON_AddObjectToObject(body, "response_format");
    cJSON_AddStringToObject(rf, "type", "json_object");
  }
  lua_pop(L, 1);

  if (o->stream) {
    cJSON_AddBoolToObject(body, "stream", 1);
    if (o->stream_usage) {
      cJSON *so = cJSON_AddObjectToObject(body, "stream_options");
      cJSON_AddBoolToObject(so, "include_usage", 1);
    }
  }

  /* extra = { ... }: provider-specific fields passed through as they are. */
  spec_get(L, spec, o, SK_EXTRA, "extra");
  if (lua_istable(L, -1)) {
    cJSON *extra = lua_field_json(L, body, "extra");
    cJSON *item = extra ? extra->child : NULL;
    while (item) {
      cJSON *next = item->next;
      cJSON_DetachItemViaPointer(extra, item);
      cJSON_DeleteItemFromObjectCaseSensitive(body, item->string);
      cJSON_AddItemToObject(body, item->string, item);
      item = next;
    }
    cJSON_Delete(extra);
  }
  lua_pop(L, 1);
  return body;
}

/* ---------------------------------------------------------------------------------- */
/* The text */

struct out {
  char *p;
  size_t len, cap;
  int oom;
};

static void put(struct out *b, const char *s, size_t n) {
  if (b->oom)
    return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

#define PUT(b, lit) put(b, lit, sizeof lit - 1)

/* A string as cJSON prints it: quotes, backslashes and the C escapes; other bytes below
 * 0x20 as \u00xx; everything else (UTF-8 or not) as it is. */
static void put_string(struct out *b, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  size_t run = 0;
  PUT(b, "\"");
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\')
      continue;
    put(b, s + run, i - run);
    run = i + 1;
    switch (c) {
    case '"': PUT(b, "\\\""); break;
    case '\\': PUT(b, "\\\\"); break;
    case '\b': PUT(b, "\\b"); break;
    case '\f': PUT(b, "\\f"); break;
    case '\n': PUT(b, "\\n"); break;
    case '\r': PUT(b, "\\r"); break;
    case '\t': PUT(b, "\\t"); break;
    default: {
      char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      put(b, u, sizeof u);
    }
    }
  }
  put(b, s + run, len - run);
  PUT(b, "\"");
}

/* A number as cJSON prints one: %1.15g when that reads back, else %1.17g; NaN and the
 * infinities as null. An integral value below 1e15 is written with the same digits
 * without going through printf. */
static void put_number(struct out *b, double d) {
  char buf[32];
  int n;
  if (isnan(d) || isinf(d)) {
    n = snprintf(buf, sizeof buf, "null");
  } else if (d == floor(d) && fabs(d) < 1e15 && !(d == 0 && signbit(d))) {
    long long v = (long long)d;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    char *p = buf + sizeof buf;
    do {
      *--p = (char)('0' + u % 10);
      u /= 10;
    } while (u);
    if (v < 0)
      *--p = '-';
    put(b, p, (size_t)(buf + sizeof buf - p));
    return;
  } else {
    n = snprintf(buf, sizeof buf, "%1.15g", d);
    double test = strtod(buf, NULL);
    double max = fabs(test) > fabs(d) ? fabs(test) : fabs(d);
    if (!(fabs(test - d) <= max * DBL_EPSILON))
      n = snprintf(buf, sizeof buf, "%1.17g", d);
  }
  if (n > 0)
    put(b, buf, (size_t)n);
}

/* The string at idx when it can be sent as it is: no NUL (cJSON strings end there), and
 * valid UTF-8 when `checked` (the fields that go through ml_json_from_lua). */
static const char *plain_string(lua_State *L, int idx, int checked, size_t *len) {
  if (lua_type(L, idx) != LUA_TSTRING)
    return NULL;
  const char *s = lua_tolstring(L, idx, len);
  if (memchr(s, '\0', *len) != NULL)
    return NULL;
  if (checked && ml_json_utf8_check(s, *len) != *len)
    return NULL;
  return s;
}

struct member {
  const char *k, *v;
  size_t klen, vlen;
};

/* One element of `messages` (at the top of the stack): a table of string fields, written
 * with its keys in bytewise order as ml_json_from_lua orders them. 0, or -1 for anything
 * else. */
static int put_message(lua_State *L, struct out *b) {
  struct member m[8];
  int n = 0;
  int t = lua_gettop(L);
  if (!lua_istable(L, t) || lua_getmetatable(L, t)) {
    if (lua_gettop(L) > t)
      lua_pop(L, 1);
    return -1;
  }
  lua_pushnil(L);
  while (lua_next(L, t)) {
    if (n == 8 || lua_type(L, -2) != LUA_TSTRING ||
        (m[n].k = plain_string(L, -2, 1, &m[n].klen)) == NULL ||
        (m[n].v = plain_string(L, -1, 1, &m[n].vlen)) == NULL) {
      lua_pop(L, 2);
      return -1;
    }
    n++;
    lua_pop(L, 1); /* the strings stay alive: the table holds them */
  }
  for (int i = 1; i < n; i++) { /* insertion sort: a message has two or three fields */
    struct member x = m[i];
    int j = i - 1;
    for (; j >= 0; j--) {
      size_t c = m[j].klen < x.klen ? m[j].klen : x.klen;
      int r = memcmp(m[j].k, x.k, c);
      if (r < 0 || (r == 0 && m[j].klen <= x.klen))
        break;
      m[j + 1] = m[j];
    }
    m[j + 1] = x;
  }
  PUT(b, "{");
  for (int i = 0; i < n; i++) {
    if (i)
      PUT(b, ",");
    put_string(b, m[i].k, m[i].klen);
    PUT(b, ":");
    put_string(b, m[i].v, m[i].vlen);
  }
  PUT(b, "}");
  return 0;
}

/* `messages` (at the top of the stack): a sequence 1..n of messages. */
static int put_messages(lua_State *L, struct out *b) {
  int t = lua_gettop(L);
  if (lua_getmetatable(L, t)) {
    lua_pop(L, 1);
    return -1;
  }
  lua_Integer n = (lua_Integer)lua_rawlen(L, t), count = 0;
  if (n < 1)
    return -1;
  lua_pushnil(L);
  while (lua_next(L, t)) { /* every key must be one of 1..n */
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n) {
      lua_pop(L, 1);
      return -1;
    }
    count++;
  }
  if (count != n)
    return -1;
  for (lua_Integer i = 1; i <= n; i++) {
    if (i > 1)
      PUT(b, ",");
    lua_rawgeti(L, t, i);
    int rc = put_message(L, b);
    lua_pop(L, 1);
    if (rc != 0)
      return -1;
  }
  return 0;
}

/* A number field: 0 when absent (nothing written), 1 when written, -1 when not a plain
 * number (body_tree decides: a numeric string is accepted there, a table an error). */
static int put_number_field(lua_State *L, int spec, const struct body_opts *o, struct out *b,
                            enum spec_key k, const char *key, int integer) {
  int type = spec_get(L, spec, o, k, key);
  int rc = 0;
  if (type == LUA_TNUMBER) {
    PUT(b, ",\"");
    put(b, key, strlen(key));
    PUT(b, "\":");
    put_number(b, integer ? (double)lua_tointeger(L, -1) : lua_tonumber(L, -1));
    rc = 1;
  } else if (type != LUA_TNIL) {
    rc = -1;
  }
  lua_pop(L, 1);
  return rc;
}

char *body_text(lua_State *L, int spec, const struct body_opts *o) {
  struct out b = {NULL, 0, 0, 0};
  size_t len;
  const char *s;
  spec = lua_absindex(L, spec);
  if (!lua_checkstack(L, 8))
    return NULL;
  /* Options that only the tree handles. */
  int t = spec_get(L, spec, o, SK_SCHEMA, "schema");
  lua_pop(L, 1);
  if (t == LUA_TTABLE)
    goto general;
  t = spec_get(L, spec, o, SK_EXTRA, "extra");
  lua_pop(L, 1);
  if (t == LUA_TTABLE)
    goto general;

  PUT(&b, "{\"model\":");
  put_string(&b, o->model, strlen(o->model));
  PUT(&b, ",\"messages\":[");
  t = spec_get(L, spec, o, SK_SYSTEM, "system");
  if (t != LUA_TNIL) {
    if ((s = plain_string(L, -1, 0, &len)) == NULL) {
      lua_pop(L, 1);
      goto general;
    }
    PUT(&b, "{\"role\":\"system\",\"content\":");
    put_string(&b, s, len);
    PUT(&b, "}");
  }
  int had_system = t != LUA_TNIL;
  t = spec_get(L, spec, o, SK_MESSAGES, "messages");
  if (t == LUA_TTABLE) {
    if (had_system)
      PUT(&b, ",");
    int rc = put_messages(L, &b);
    lua_pop(L, 2);
    if (rc != 0)
      goto general;
  } else if (t == LUA_TNIL) {
    lua_pop(L, 1);
    spec_get(L, spec, o, SK_PROMPT, "prompt");
    if ((s = plain_string(L, -1, 0, &len)) == NULL) {
      lua_pop(L, 2);
      goto general;
    }
    if (had_system)
      PUT(&b, ",");
    PUT(&b, "{\"role\":\"user\",\"content\":");
    put_string(&b, s, len);
    PUT(&b, "}");
    lua_pop(L, 2);
  } else {
    lua_pop(L, 2);
    goto general;
  }
  PUT(&b, "]");

  if (put_number_field(L, spec, o, &b, SK_TEMPERATURE, "temperature", 0) < 0 ||
      put_number_field(L, spec, o, &b, SK_TOP_P, "top_p", 0) < 0 ||
      put_number_field(L, spec, o, &b, SK_MAX_TOKENS, "max_tokens", 1) < 0 ||
      put_number_field(L, spec, o, &b, SK_SEED, "seed", 1) < 0)
    goto general;
  if (o->n > 1) {
    PUT(&b, ",\"n\":");
    put_number(&b, o->n);
  }
  t = spec_get(L, spec, o, SK_STOP, "stop");
  if (t == LUA_TSTRING) {
    if ((s = plain_string(L, -1, 1, &len)) == NULL) {
      lua_pop(L, 1);
      goto general;
    }
    PUT(&b, ",\"stop\":");
    put_string(&b, s, len);
  } else if (t == LUA_TTABLE) {
    lua_pop(L, 1);
    goto general;
  }
  lua_pop(L, 1);
  if (o->json)
    PUT(&b, ",\"response_format\":{\"type\":\"json_object\"}");
  if (o->stream) {
    PUT(&b, ",\"stream\":true");
    if (o->stream_usage)
      PUT(&b, ",\"stream_options\":{\"include_usage\":true}");
  }
  PUT(&b, "}");
  if (b.oom)
    goto general;
  b.p[b.len] = '\0';
  return b.p;
general:
  free(b.p);
  return NULL;
}

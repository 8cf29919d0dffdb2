/* The `json` Lua module and its C helpers, on cJSON (contracts and number rules in json.h).
 * cJSON parses and holds trees. Written here by hand is only what it lacks: exact 64-bit
 * integers, sorted keys and our number format on output, messages that name the key path
 * or byte position, and a string-aware bracket scanner that finds JSON inside model text. */
#include "lua/json.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

/* The address of this byte is json.null: unique, constant, and comparable from C and Lua. */
static const char null_anchor = 0;

/* Registry name of json.array_mt; luaL_newmetatable creates it on first use per state. */
#define ARRAY_MT "moonloop.json.array"

/* Doubles hold every integer up to 2^53 exactly; beyond that cJSON numbers would round. */
#define EXACT_DOUBLE 9007199254740992.0
#define EXACT_INT ((lua_Integer)1 << 53)

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (err == NULL || errlen == 0)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static int is_ws(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* ---- Growable output buffer; an allocation failure is remembered, not raised. ---- */

struct sbuf {
  char *p;
  size_t len, cap;
  int oom;
};

static void sb_add(struct sbuf *b, const char *s, size_t n) {
  if (b->oom)
    return;
  if (b->cap - b->len <= n) { /* keep a byte for the terminating NUL */
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len <= n) {
      if (cap > SIZE_MAX / 2) {
        b->oom = 1;
        return;
      }
      cap *= 2;
    }
    char *np = realloc(b->p, cap);
    if (np == NULL) {
      b->oom = 1;
      return;
    }
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

static void sb_addc(struct sbuf *b, char c) {
  sb_add(b, &c, 1);
}

static void sb_adds(struct sbuf *b, const char *s) {
  sb_add(b, s, strlen(s));
}

/* Fixed buffer for messages: a piece that does not fit whole is dropped, so truncation
 * never splits a UTF-8 sequence or an escape. */
struct fbuf {
  char *p;
  size_t cap, len;
  int full;
};

static void fb_add(struct fbuf *f, const char *s, size_t n) {
  if (f->full || f->len + n + 4 > f->cap) { /* room for "..." and NUL */
    if (!f->full && f->len + 4 <= f->cap) {
      memcpy(f->p + f->len, "...", 3);
      f->len += 3;
      f->p[f->len] = '\0';
    }
    f->full = 1;
    return;
  }
  memcpy(f->p + f->len, s, n);
  f->len += n;
  f->p[f->len] = '\0';
}

static void fb_adds(struct fbuf *f, const char *s) {
  fb_add(f, s, strlen(s));
}

/* ---- UTF-8 ---- */

/* Length of the valid UTF-8 sequence at s (n bytes available), or 0 when it is not one:
 * overlong forms, surrogates and code points past U+10FFFF are refused. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  unsigned lo = 0x80, hi = 0xBF;
  size_t len;
  if (c < 0x80)
    return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0)
      lo = 0xA0;
    else if (c == 0xED)
      hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0)
      lo = 0x90;
    else if (c == 0xF4)
      hi = 0x8F;
  } else {
    return 0;
  }
  if (n < len || s[1] < lo || s[1] > hi)
    return 0;
  for (size_t i = 2; i < len; i++)
    if ((s[i] & 0xC0) != 0x80)
      return 0;
  return len;
}

/* Offset of the first byte that is not valid UTF-8, or len when the whole string is. */
static size_t utf8_check(const char *s, size_t len) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0;
  while (i < len) {
    if (u[i] < 0x80) {
      i++;
      continue;
    }
    size_t n = utf8_seq(u + i, len - i);
    if (n == 0)
      return i;
    i += n;
  }
  return len;
}

size_t ml_json_utf8_check(const char *s, size_t len) {
  return utf8_check(s, len);
}

/* Up to 24 bytes of s from `at`, made safe to quote in a message: escapes for quotes,
 * control bytes and invalid UTF-8, "..." when cut short. */
static void excerpt(const char *s, size_t len, size_t at, char *out, size_t cap) {
  struct fbuf f = {out, cap, 0, 0};
  size_t stop = len - at > 24 ? at + 24 : len;
  out[0] = '\0';
  for (size_t i = at; i < stop && !f.full;) {
    unsigned char c = (unsigned char)s[i];
    char tmp[8];
    size_t n = 1;
    if (c == '\n') {
      fb_adds(&f, "\\n");
    } else if (c == '\t') {
      fb_adds(&f, "\\t");
    } else if (c == '\r') {
      fb_adds(&f, "\\r");
    } else if (c == '"' || c == '\\') {
      tmp[0] = '\\';
      tmp[1] = (char)c;
      fb_add(&f, tmp, 2);
    } else if (c >= 0x80 && (n = utf8_seq((const unsigned char *)s + i, len - i)) != 0) {
      fb_add(&f, s + i, n);
    } else if (c < 0x20 || c >= 0x7f) {
      n = 1;
      snprintf(tmp, sizeof tmp, "\\x%02x", c);
      fb_adds(&f, tmp);
    } else {
      fb_add(&f, s + i, 1);
    }
    i += n;
  }
  if (stop < len && !f.full)
    fb_add(&f, "...", 3);
}

/* ---- Output: a cJSON tree to text ---- */

/* The JSON form of a finite double (see json.h for the rules); out has 32 bytes. */
static void format_double(double d, char *out, size_t cap) {
  if (d == 0 && signbit(d)) {
    snprintf(out, cap, "-0.0");
  } else if (d == floor(d) && fabs(d) < EXACT_DOUBLE) {
    snprintf(out, cap, "%lld", (long long)d);
  } else {
    for (int prec = 15; prec <= 17; prec++) {
      snprintf(out, cap, "%.*g", prec, d);
      if (strtod(out, NULL) == d)
        break;
    }
  }
}

static void emit_escaped(struct sbuf *b, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  size_t run = 0; /* start of the bytes that need no escape */
  sb_addc(b, '"');
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\')
      continue;
    sb_add(b, s + run, i - run);
    run = i + 1;
    switch (c) {
    case '"': sb_adds(b, "\\\""); break;
    case '\\': sb_adds(b, "\\\\"); break;
    case '\b': sb_adds(b, "\\b"); break;
    case '\f': sb_adds(b, "\\f"); break;
    case '\n': sb_adds(b, "\\n"); break;
    case '\r': sb_adds(b, "\\r"); break;
    case '\t': sb_adds(b, "\\t"); break;
    default: {
      char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      sb_add(b, u, sizeof u);
    }
    }
  }
  sb_add(b, s + run, len - run);
  sb_addc(b, '"');
}

struct emitter {
  struct sbuf out;
  int pretty, sort;
  char *err;
  size_t errlen;
};

static int cmp_bytes(const char *a, size_t alen, const char *b, size_t blen) {
  int r = memcmp(a, b, alen < blen ? alen : blen);
  if (r != 0)
    return r;
  return (alen > blen) - (alen < blen);
}

static int cmp_children(const void *pa, const void *pb) {
  const cJSON *a = *(const cJSON *const *)pa, *b = *(const cJSON *const *)pb;
  const char *ka = a->string ? a->string : "", *kb = b->string ? b->string : "";
  return cmp_bytes(ka, strlen(ka), kb, strlen(kb));
}

static void emit_indent(struct emitter *e, int depth) {
  sb_addc(&e->out, '\n');
  for (int i = 0; i < depth; i++)
    sb_add(&e->out, "  ", 2);
}

static int emit_value(struct emitter *e, const cJSON *v, int depth);

/* Arrays and objects; depth counts the containers already open around this one. */
static int emit_container(struct emitter *e, const cJSON *v, int depth) {
  int is_obj = cJSON_IsObject(v);
  size_t n = 0;
  const cJSON **kids = NULL;
  int rc = 0;
  if (depth >= ML_JSON_MAX_DEPTH) {
    set_err(e->err, e->errlen, "nested deeper than %d", ML_JSON_MAX_DEPTH);
    return -1;
  }
  for (const cJSON *c = v->child; c != NULL; c = c->next)
    n++;
  if (is_obj && e->sort && n > 1) {
    kids = malloc(n * sizeof *kids);
    if (kids == NULL) {
      set_err(e->err, e->errlen, "out of memory");
      return -1;
    }
    size_t i = 0;
    for (const cJSON *c = v->child; c != NULL; c = c->next)
      kids[i++] = c;
    qsort(kids, n, sizeof *kids, cmp_children);
  }
  sb_addc(&e->out, is_obj ? '{' : '[');
  const cJSON *c = v->child;
  for (size_t i = 0; i < n; i++, c = c->next) {
    const cJSON *kid = kids ? kids[i] : c;
    if (i > 0)
      sb_addc(&e->out, ',');
    if (e->pretty)
      emit_indent(e, depth + 1);
    if (is_obj) {
      const char *k = kid->string ? kid->string : "";
      size_t klen = strlen(k), bad = utf8_check(k, klen);
      if (bad < klen) {
        set_err(e->err, e->errlen, "invalid UTF-8 at byte %zu of an object key", bad + 1);
        rc = -1;
        break;
      }
      emit_escaped(&e->out, k, klen);
      sb_adds(&e->out, e->pretty ? ": " : ":");
    }
    if ((rc = emit_value(e, kid, depth + 1)) != 0)
      break;
  }
  free(kids);
  if (rc != 0)
    return rc;
  if (e->pretty && n > 0)
    emit_indent(e, depth);
  sb_addc(&e->out, is_obj ? '}' : ']');
  return 0;
}

static int emit_value(struct emitter *e, const cJSON *v, int depth) {
  char num[40];
  switch (v->type & 0xFF) {
  case cJSON_NULL: sb_adds(&e->out, "null"); return 0;
  case cJSON_True: sb_adds(&e->out, "true"); return 0;
  case cJSON_False: sb_adds(&e->out, "false"); return 0;
  case cJSON_Number:
    if (!isfinite(v->valuedouble)) {
      set_err(e->err, e->errlen, "cannot encode %s", isnan(v->valuedouble) ? "NaN"
              : v->valuedouble > 0 ? "inf" : "-inf");
      return -1;
    }
    format_double(v->valuedouble, num, sizeof num);
    sb_adds(&e->out, num);
    return 0;
  case cJSON_Raw:
    if (v->valuestring == NULL)
      break;
    sb_adds(&e->out, v->valuestring);
    return 0;
  case cJSON_String: {
    const char *s = v->valuestring ? v->valuestring : "";
    size_t len = strlen(s), bad = utf8_check(s, len);
    if (bad < len) {
      set_err(e->err, e->errlen, "invalid UTF-8 at byte %zu of a string", bad + 1);
      return -1;
    }
    emit_escaped(&e->out, s, len);
    return 0;
  }
  case cJSON_Array:
  case cJSON_Object: return emit_container(e, v, depth);
  default: break;
  }
  set_err(e->err, e->errlen, "cannot print an invalid cJSON item");
  return -1;
}

static char *emit_tree(const cJSON *v, int flags, int sort, char *err, size_t errlen) {
  struct emitter e = {{NULL, 0, 0, 0}, (flags & ML_JSON_PRETTY) != 0, sort, err, errlen};
  if (v == NULL) {
    set_err(err, errlen, "no value to print");
    return NULL;
  }
  int rc = emit_value(&e, v, 0);
  sb_add(&e.out, "", 0);
  if (rc == 0 && (e.out.oom || e.out.p == NULL)) {
    set_err(err, errlen, "out of memory");
    rc = -1;
  }
  if (rc != 0) {
    free(e.out.p);
    return NULL;
  }
  e.out.p[e.out.len] = '\0';
  return e.out.p;
}

char *ml_json_print(const cJSON *v, int flags, char *err, size_t errlen) {
  return emit_tree(v, flags, (flags & ML_JSON_SORT_KEYS) != 0, err, errlen);
}

/* ---- Lua to cJSON ---- */

/* One step from a container to a child: a string key, or an array index when key is NULL. */
struct path_step {
  const char *key;
  size_t keylen;
  lua_Integer index;
};

struct walker {
  lua_State *L;
  int sort;
  int depth;                                   /* tables open around the current value */
  const void *open[ML_JSON_MAX_DEPTH];         /* those tables, to find cycles */
  struct path_step path[ML_JSON_MAX_DEPTH + 1];
  char where[160];                             /* rendered path, for messages */
  char *err;
  size_t errlen;
};

static int is_identifier(const char *s, size_t len) {
  if (len == 0 || (s[0] >= '0' && s[0] <= '9'))
    return 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
      return 0;
  }
  return 1;
}

/* Render the first n steps of the path like Lua source: messages[2].content, or
 * ["odd key"] for keys that are not identifiers. Long paths keep both ends: a[1]...[1].x */
static const char *render_path(struct walker *w, int n) {
  struct fbuf f = {w->where, sizeof w->where, 0, 0};
  w->where[0] = '\0';
  if (n == 0) {
    fb_adds(&f, "the top level");
    return w->where;
  }
  for (int i = 0; i < n && !f.full; i++) {
    if (n > 16 && i == 8) {
      fb_adds(&f, "...");
      i = n - 8;
    }
    const struct path_step *st = &w->path[i];
    char tmp[32];
    if (st->key == NULL) {
      snprintf(tmp, sizeof tmp, "[%lld]", (long long)st->index);
      fb_adds(&f, tmp);
    } else if (is_identifier(st->key, st->keylen) && st->keylen < 48) {
      if (i > 0 && !(n > 16 && i == n - 8)) /* no dot right after the "..." */
        fb_add(&f, ".", 1);
      fb_add(&f, st->key, st->keylen);
    } else {
      char shown[96];
      excerpt(st->key, st->keylen, 0, shown, sizeof shown);
      fb_adds(&f, "[\"");
      fb_adds(&f, shown);
      fb_adds(&f, "\"]");
    }
  }
  return w->where;
}

static const char *here(struct walker *w) {
  return render_path(w, w->depth);
}

static cJSON *walk(struct walker *w, int idx);

/* Describe a table key that is neither a string nor an integer, for messages. */
static void describe_key(lua_State *L, int idx, char *out, size_t cap) {
  if (lua_type(L, idx) == LUA_TNUMBER)
    snprintf(out, cap, "%.14g", lua_tonumber(L, idx));
  else if (lua_type(L, idx) == LUA_TBOOLEAN)
    snprintf(out, cap, "%s", lua_toboolean(L, idx) ? "true" : "false");
  else
    snprintf(out, cap, "of type %s", luaL_typename(L, idx));
}

static int is_marked_array(lua_State *L, int idx) {
  if (!lua_getmetatable(L, idx))
    return 0;
  luaL_getmetatable(L, ARRAY_MT);
  int same = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return same;
}

struct key_ref {
  const char *s;
  size_t len;
};

static int cmp_keys(const void *pa, const void *pb) {
  const struct key_ref *a = pa, *b = pb;
  return cmp_bytes(a->s, a->len, b->s, b->len);
}

/* Add the value on top of the stack to obj under key; pops it. */
static int walk_member(struct walker *w, cJSON *obj, const char *key, size_t keylen) {
  lua_State *L = w->L;
  w->path[w->depth - 1] = (struct path_step){key, keylen, 0};
  size_t bad = utf8_check(key, keylen);
  cJSON *kid = NULL;
  if (bad < keylen) {
    set_err(w->err, w->errlen, "invalid UTF-8 at byte %zu of the key at %s", bad + 1, here(w));
  } else if (memchr(key, '\0', keylen) != NULL) {
    set_err(w->err, w->errlen, "the key at %s contains a NUL byte", here(w));
  } else if ((kid = walk(w, lua_gettop(L))) != NULL && !cJSON_AddItemToObject(obj, key, kid)) {
    cJSON_Delete(kid);
    kid = NULL;
    set_err(w->err, w->errlen, "out of memory");
  }
  lua_pop(L, 1);
  return kid ? 0 : -1;
}

static cJSON *walk_object(struct walker *w, int idx, size_t nkeys) {
  lua_State *L = w->L;
  cJSON *obj = cJSON_CreateObject();
  if (obj == NULL) {
    set_err(w->err, w->errlen, "out of memory");
    return NULL;
  }
  if (!w->sort) {
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      size_t klen;
      const char *k = lua_tolstring(L, -2, &klen); /* a string: checked by the caller */
      if (walk_member(w, obj, k, klen) != 0) {
        lua_pop(L, 1);
        cJSON_Delete(obj);
        return NULL;
      }
    }
    return obj;
  }
  /* Key strings stay valid while the table holds them; Lua's collector does not move. */
  struct key_ref *keys = malloc(nkeys * sizeof *keys);
  size_t n = 0;
  if (keys == NULL) {
    set_err(w->err, w->errlen, "out of memory");
    cJSON_Delete(obj);
    return NULL;
  }
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (n < nkeys) {
      keys[n].s = lua_tolstring(L, -2, &keys[n].len);
      n++;
    }
    lua_pop(L, 1);
  }
  qsort(keys, n, sizeof *keys, cmp_keys);
  for (size_t i = 0; i < n; i++) {
    lua_pushlstring(L, keys[i].s, keys[i].len);
    lua_rawget(L, idx);
    if (walk_member(w, obj, keys[i].s, keys[i].len) != 0) {
      free(keys);
      cJSON_Delete(obj);
      return NULL;
    }
  }
  free(keys);
  return obj;
}

static cJSON *walk_array(struct walker *w, int idx, lua_Integer n) {
  lua_State *L = w->L;
  cJSON *arr = cJSON_CreateArray();
  if (arr == NULL) {
    set_err(w->err, w->errlen, "out of memory");
    return NULL;
  }
  for (lua_Integer i = 1; i <= n; i++) {
    w->path[w->depth - 1] = (struct path_step){NULL, 0, i};
    lua_rawgeti(L, idx, i);
    cJSON *kid = walk(w, lua_gettop(L));
    lua_pop(L, 1);
    if (kid != NULL && !cJSON_AddItemToArray(arr, kid)) {
      cJSON_Delete(kid);
      kid = NULL;
      set_err(w->err, w->errlen, "out of memory");
    }
    if (kid == NULL) {
      cJSON_Delete(arr);
      return NULL;
    }
  }
  return arr;
}

/* A table becomes an array (keys exactly 1..n, or empty and marked) or an object (all
 * keys strings); anything else is refused with the offending key named. */
static cJSON *walk_table(struct walker *w, int idx) {
  lua_State *L = w->L;
  const void *me = lua_topointer(L, idx);
  if (w->depth >= ML_JSON_MAX_DEPTH) {
    set_err(w->err, w->errlen, "nested deeper than %d at %s", ML_JSON_MAX_DEPTH, here(w));
    return NULL;
  }
  for (int i = 0; i < w->depth; i++) {
    if (w->open[i] == me) {
      char first[sizeof w->where];
      snprintf(first, sizeof first, "%s", render_path(w, i));
      set_err(w->err, w->errlen, "cycle: the table at %s contains itself (again at %s)", first,
              here(w));
      return NULL;
    }
  }
  if (!lua_checkstack(L, 4)) {
    set_err(w->err, w->errlen, "Lua stack exhausted at %s", here(w));
    return NULL;
  }

  lua_Integer nint = 0, maxint = 0, firstint = 0, badint = 0;
  int have_bad = 0;
  size_t nstr = 0;
  const char *firststr = NULL;
  size_t firstlen = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) == LUA_TSTRING) {
      if (nstr++ == 0)
        firststr = lua_tolstring(L, -2, &firstlen);
    } else if (lua_isinteger(L, -2)) {
      lua_Integer k = lua_tointeger(L, -2);
      if (nint++ == 0)
        firstint = k;
      if (k < 1 && !have_bad) {
        badint = k;
        have_bad = 1;
      }
      if (k > maxint)
        maxint = k;
    } else {
      char desc[48];
      describe_key(L, -2, desc, sizeof desc);
      lua_pop(L, 2);
      set_err(w->err, w->errlen,
              "table key %s at %s cannot be encoded (object keys must be strings, array keys "
              "1..n)", desc, here(w));
      return NULL;
    }
    lua_pop(L, 1);
  }

  char shown[64];
  if (firststr != NULL)
    excerpt(firststr, firstlen, 0, shown, sizeof shown);
  int marked = is_marked_array(L, idx);
  if (nint > 0 && nstr > 0) {
    set_err(w->err, w->errlen, "mixed table at %s: string key \"%s\" alongside integer key %lld",
            here(w), shown, (long long)firstint);
    return NULL;
  }
  if (have_bad || maxint != nint) {
    set_err(w->err, w->errlen,
            "table at %s has integer key %lld but is not a sequence 1..n (%lld integer keys)",
            here(w), (long long)(have_bad ? badint : maxint), (long long)nint);
    return NULL;
  }
  if (marked && nstr > 0) {
    set_err(w->err, w->errlen, "table at %s is marked as an array but has string key \"%s\"",
            here(w), shown);
    return NULL;
  }

  w->open[w->depth++] = me;
  cJSON *out = (nint > 0 || marked) ? walk_array(w, idx, nint) : walk_object(w, idx, nstr);
  w->depth--;
  return out;
}

static cJSON *walk(struct walker *w, int idx) {
  lua_State *L = w->L;
  cJSON *out = NULL;
  switch (lua_type(L, idx)) {
  case LUA_TNIL: out = cJSON_CreateNull(); break;
  case LUA_TBOOLEAN: out = cJSON_CreateBool(lua_toboolean(L, idx)); break;
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) {
      lua_Integer i = lua_tointeger(L, idx);
      if (i >= -EXACT_INT && i <= EXACT_INT) {
        out = cJSON_CreateNumber((double)i);
      } else {
        char num[32];
        snprintf(num, sizeof num, LUA_INTEGER_FMT, (LUAI_UACINT)i);
        out = cJSON_CreateRaw(num);
      }
    } else {
      double d = lua_tonumber(L, idx);
      if (!isfinite(d)) {
        set_err(w->err, w->errlen, "cannot encode %s at %s",
                isnan(d) ? "NaN" : d > 0 ? "inf" : "-inf", here(w));
        return NULL;
      }
      out = cJSON_CreateNumber(d);
    }
    break;
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    size_t bad = utf8_check(s, len);
    if (bad < len) {
      set_err(w->err, w->errlen, "invalid UTF-8 at byte %zu of the string at %s", bad + 1,
              here(w));
      return NULL;
    }
    if (memchr(s, '\0', len) == NULL) {
      out = cJSON_CreateString(s);
    } else { /* cJSON strings end at NUL, so keep the escaped JSON text instead */
      struct sbuf b = {NULL, 0, 0, 0};
      emit_escaped(&b, s, len);
      sb_add(&b, "", 0);
      if (!b.oom && b.p != NULL) {
        b.p[b.len] = '\0';
        out = cJSON_CreateRaw(b.p);
      }
      free(b.p);
    }
    break;
  }
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) == (void *)&null_anchor) {
      out = cJSON_CreateNull();
      break;
    }
    /* fall through */
  case LUA_TFUNCTION:
  case LUA_TUSERDATA:
  case LUA_TTHREAD:
  default:
    set_err(w->err, w->errlen, "cannot encode %s at %s", luaL_typename(L, idx), here(w));
    return NULL;
  case LUA_TTABLE: return walk_table(w, idx);
  }
  if (out == NULL)
    set_err(w->err, w->errlen, "out of memory");
  return out;
}

static cJSON *from_lua(lua_State *L, int idx, int sort, char *err, size_t errlen) {
  struct walker *w = malloc(sizeof *w); /* ~5 KB: keep it off the C stack */
  if (w == NULL) {
    set_err(err, errlen, "out of memory");
    return NULL;
  }
  w->L = L;
  w->sort = sort;
  w->depth = 0;
  w->err = err;
  w->errlen = errlen;
  cJSON *out = walk(w, lua_absindex(L, idx));
  free(w);
  return out;
}

cJSON *ml_json_from_lua(lua_State *L, int idx, char *err, size_t errlen) {
  return from_lua(L, idx, 1, err, errlen);
}

char *ml_json_encode(lua_State *L, int idx, int flags, char *err, size_t errlen) {
  cJSON *tree = from_lua(L, idx, (flags & ML_JSON_SORT_KEYS) != 0, err, errlen);
  if (tree == NULL)
    return NULL;
  char *out = emit_tree(tree, flags, 0, err, errlen); /* the walker already sorted */
  cJSON_Delete(tree);
  return out;
}

/* ---- Scanner: string-aware bracket matching and the byte checks cJSON skips ---- */

enum scan_status {
  SCAN_CLOSED,   /* stop mode: the first bracket closed at pos; full mode: nothing wrong */
  SCAN_OPEN,     /* input ended inside a string or an unclosed bracket */
  SCAN_TOO_DEEP, /* the bracket at pos would be nested deeper than ML_JSON_MAX_DEPTH */
  SCAN_MISMATCH, /* stop mode: the bracket at pos closes the wrong kind */
  SCAN_BAD,      /* a byte cJSON would accept but we refuse; `bad` says which */
};

struct scan {
  enum scan_status status;
  size_t pos;
  const char *bad;
  int depth;                            /* brackets open at the end */
  int in_string;                        /* ended inside a string that starts at string_at */
  size_t string_at;
  size_t stack[ML_JSON_MAX_DEPTH];      /* positions of the open brackets, outermost first */
};

/* Scan text[from, to). In stop mode text[from] is `{` or `[` and the scan ends where it
 * closes; otherwise it runs to the end and only reports depth and bad bytes (cJSON reports
 * the syntax). Refused: NUL anywhere, \u0000, and invalid UTF-8 inside strings, because
 * cJSON would truncate or pass them through. */
static void scan_json(const char *text, size_t from, size_t to, int stop_mode, struct scan *sc) {
  const unsigned char *t = (const unsigned char *)text;
  size_t i = from;
  int depth = 0;
  sc->in_string = 0;
  while (i < to) {
    unsigned char c = t[i];
    if (c == '"') {
      size_t open = i++;
      for (;;) {
        if (i >= to) {
          sc->in_string = 1;
          sc->string_at = open;
          goto ended;
        }
        c = t[i];
        if (c == '"') {
          i++;
          break;
        } else if (c == '\\') {
          if (to - i >= 6 && memcmp(t + i + 1, "u0000", 5) == 0) {
            sc->bad = "a \\u0000 escape (NUL is not supported)";
            sc->status = SCAN_BAD;
            sc->pos = i;
            return;
          }
          i += 2;
        } else if (c >= 0x80) {
          size_t n = utf8_seq(t + i, to - i);
          if (n == 0) {
            sc->bad = "invalid UTF-8";
            sc->status = SCAN_BAD;
            sc->pos = i;
            return;
          }
          i += n;
        } else if (c == 0) {
          break; /* reported below */
        } else {
          i++;
        }
      }
      if (i >= to || t[i] != 0)
        continue;
      c = 0;
    }
    switch (c) {
    case '{':
    case '[':
      if (depth >= ML_JSON_MAX_DEPTH) {
        sc->status = SCAN_TOO_DEEP;
        sc->pos = i;
        sc->depth = depth;
        return;
      }
      sc->stack[depth++] = i;
      break;
    case '}':
    case ']':
      if (depth == 0)
        break; /* full mode only: cJSON will say what is wrong */
      if ((t[sc->stack[depth - 1]] == '{') != (c == '}') && stop_mode) {
        sc->status = SCAN_MISMATCH;
        sc->pos = i;
        sc->depth = depth;
        return;
      }
      if (--depth == 0 && stop_mode) {
        sc->status = SCAN_CLOSED;
        sc->pos = i;
        sc->depth = 0;
        return;
      }
      break;
    case 0:
      sc->bad = "a NUL byte";
      sc->status = SCAN_BAD;
      sc->pos = i;
      return;
    default: break;
    }
    i++;
  }
ended:
  sc->depth = depth;
  sc->pos = to;
  sc->status = (depth > 0 || sc->in_string) ? SCAN_OPEN : SCAN_CLOSED;
}

/* ---- cJSON to Lua ---- */

struct pusher {
  lua_State *L;
  int mt;           /* stack index of json.array_mt */
  const char *text; /* the parsed text, to read integers exactly; NULL when unknown */
  size_t len, pos;
};

/* Containers nest at most ML_JSON_MAX_DEPTH deep below v (depth already open above). */
static int tree_depth_ok(const cJSON *v, int depth) {
  if (!cJSON_IsArray(v) && !cJSON_IsObject(v))
    return 1;
  if (depth >= ML_JSON_MAX_DEPTH)
    return 0;
  for (const cJSON *c = v->child; c != NULL; c = c->next)
    if (!tree_depth_ok(c, depth + 1))
      return 0;
  return 1;
}

static int is_number_byte(unsigned char c) {
  return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

/* Number tokens occur in the text in the same order as a depth-first walk of the tree
 * meets cJSON numbers (keys are strings and literals hold no digits), so the next one is
 * the lexeme of the number being pushed. cJSON already validated the text. */
static int next_number(struct pusher *p, const char **tok, size_t *toklen) {
  const char *t = p->text;
  size_t i = p->pos;
  while (i < p->len) {
    unsigned char c = (unsigned char)t[i];
    if (c == '"') {
      for (i++; i < p->len && t[i] != '"'; i++)
        if (t[i] == '\\')
          i++;
      i++;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      size_t start = i;
      while (i < p->len && is_number_byte((unsigned char)t[i]))
        i++;
      *tok = t + start;
      *toklen = i - start;
      p->pos = i;
      return 1;
    } else {
      i++;
    }
  }
  p->pos = p->len;
  return 0;
}

/* Integer lexeme (optional '-' and digits only) that fits lua_Integer? */
static int lexeme_integer(const char *tok, size_t len, lua_Integer *out) {
  char buf[32];
  size_t i = (len > 0 && tok[0] == '-') ? 1 : 0;
  if (len == i || len >= sizeof buf)
    return 0;
  for (size_t j = i; j < len; j++)
    if (tok[j] < '0' || tok[j] > '9')
      return 0;
  memcpy(buf, tok, len);
  buf[len] = '\0';
  errno = 0;
  char *end;
  long long v = strtoll(buf, &end, 10);
  if (errno == ERANGE || *end != '\0')
    return 0;
  *out = (lua_Integer)v;
  return 1;
}

static void push_number(struct pusher *p, const cJSON *v) {
  double d = v->valuedouble;
  const char *tok;
  size_t toklen;
  lua_Integer i;
  if (p->text != NULL && next_number(p, &tok, &toklen)) {
    if (lexeme_integer(tok, toklen, &i))
      lua_pushinteger(p->L, i);
    else
      lua_pushnumber(p->L, d);
  } else if (d == floor(d) && fabs(d) <= EXACT_DOUBLE) {
    lua_pushinteger(p->L, (lua_Integer)d);
  } else {
    lua_pushnumber(p->L, d);
  }
}

/* Pushes one value; on error leaves garbage on the stack for the caller to drop. */
static int push_value(struct pusher *p, const cJSON *v, char *err, size_t errlen) {
  lua_State *L = p->L;
  int n = 0;
  switch (v->type & 0xFF) {
  case cJSON_NULL: ml_json_push_null(L); return 0;
  case cJSON_False: lua_pushboolean(L, 0); return 0;
  case cJSON_True: lua_pushboolean(L, 1); return 0;
  case cJSON_Number: push_number(p, v); return 0;
  case cJSON_String: lua_pushstring(L, v->valuestring ? v->valuestring : ""); return 0;
  case cJSON_Array:
    for (const cJSON *c = v->child; c != NULL; c = c->next)
      n++;
    lua_createtable(L, n, 0);
    n = 0;
    for (const cJSON *c = v->child; c != NULL; c = c->next) {
      if (push_value(p, c, err, errlen) != 0)
        return -1;
      lua_rawseti(L, -2, ++n);
    }
    lua_pushvalue(L, p->mt);
    lua_setmetatable(L, -2);
    return 0;
  case cJSON_Object:
    for (const cJSON *c = v->child; c != NULL; c = c->next)
      n++;
    lua_createtable(L, 0, n);
    for (const cJSON *c = v->child; c != NULL; c = c->next) {
      lua_pushstring(L, c->string ? c->string : "");
      if (push_value(p, c, err, errlen) != 0)
        return -1;
      lua_rawset(L, -3);
    }
    return 0;
  case cJSON_Raw: { /* ml_json_from_lua makes these for big integers and NUL strings */
    lua_Integer i;
    const char *s = v->valuestring ? v->valuestring : "";
    if (lexeme_integer(s, strlen(s), &i)) {
      lua_pushinteger(L, i);
      return 0;
    }
    set_err(err, errlen, "cannot convert raw cJSON text \"%.40s\"", s);
    return -1;
  }
  default: set_err(err, errlen, "cannot convert an invalid cJSON item"); return -1;
  }
}

static int push_tree(lua_State *L, const cJSON *v, const char *text, size_t len, char *err,
                     size_t errlen) {
  if (v == NULL) {
    set_err(err, errlen, "no value to push");
    return -1;
  }
  if (!tree_depth_ok(v, 0)) {
    set_err(err, errlen, "nested deeper than %d", ML_JSON_MAX_DEPTH);
    return -1;
  }
  /* Each open level holds a table and a key; checked here so pushing cannot overflow. */
  if (!lua_checkstack(L, 2 * ML_JSON_MAX_DEPTH + 8)) {
    set_err(err, errlen, "Lua stack exhausted");
    return -1;
  }
  int base = lua_gettop(L);
  luaL_newmetatable(L, ARRAY_MT);
  struct pusher p = {L, base + 1, text, len, 0};
  if (push_value(&p, v, err, errlen) != 0) {
    lua_settop(L, base);
    return -1;
  }
  lua_remove(L, base + 1);
  return 0;
}

int ml_json_push(lua_State *L, const cJSON *v, char *err, size_t errlen) {
  return push_tree(L, v, NULL, 0, err, errlen);
}

void ml_json_push_null(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&null_anchor);
}

int ml_json_is_null(lua_State *L, int idx) {
  return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == &null_anchor;
}

/* ---- Parsing whole texts and spans ---- */

/* A message for cJSON's failure at byte `at` of s: position, excerpt, and a hint for the
 * two mistakes models make most (single quotes, trailing commas). */
static void syntax_error(const char *s, size_t len, size_t at, const char *what, char *out,
                         size_t cap) {
  char near[128];
  const char *hint = "";
  if (at > len)
    at = len;
  excerpt(s, len, at, near, sizeof near);
  if ((at < len && s[at] == '\'') || (at > 0 && at <= len && s[at - 1] == '\'')) {
    hint = " (JSON strings and keys need double quotes)";
  } else if (at < len && (s[at] == '}' || s[at] == ']')) {
    size_t j = at;
    while (j > 0 && is_ws((unsigned char)s[j - 1]))
      j--;
    if (j > 0 && s[j - 1] == ',')
      hint = " (trailing comma)";
  }
  if (at >= len)
    snprintf(out, cap, "%s: unexpected end of input at byte %zu", what, at + 1);
  else
    snprintf(out, cap, "%s at byte %zu near \"%s\"%s", what, at + 1, near, hint);
}

static const char *kind_of(char open) {
  return open == '{' ? "object" : "array";
}

int ml_json_decode(lua_State *L, const char *s, size_t len, char *err, size_t errlen) {
  struct scan *sc = malloc(sizeof *sc);
  char msg[320];
  if (sc == NULL) {
    set_err(err, errlen, "out of memory");
    return -1;
  }
  size_t first = 0;
  while (first < len && is_ws((unsigned char)s[first]))
    first++;
  if (first == len) {
    set_err(err, errlen, "empty input (%zu bytes of whitespace)", len);
    free(sc);
    return -1;
  }
  scan_json(s, 0, len, 0, sc);
  size_t problem = (sc->status == SCAN_BAD || sc->status == SCAN_TOO_DEEP) ? sc->pos : SIZE_MAX;

  const char *endp = NULL;
  cJSON *tree = cJSON_ParseWithLengthOpts(s, len, &endp, 0);
  size_t fail = SIZE_MAX;
  const char *what = "invalid JSON";
  if (tree == NULL) {
    fail = endp ? (size_t)(endp - s) : 0;
  } else {
    size_t e = (size_t)(endp - s);
    while (e < len && is_ws((unsigned char)s[e]))
      e++;
    if (e < len) {
      fail = e;
      what = "unexpected text after the JSON value";
    }
  }

  int rc = -1;
  if (problem != SIZE_MAX && problem <= fail) {
    if (sc->status == SCAN_TOO_DEEP)
      set_err(err, errlen, "nested deeper than %d at byte %zu", ML_JSON_MAX_DEPTH, problem + 1);
    else
      set_err(err, errlen, "%s at byte %zu", sc->bad, problem + 1);
  } else if (fail != SIZE_MAX) {
    syntax_error(s, len, fail, what, msg, sizeof msg);
    if (sc->status == SCAN_OPEN && tree == NULL) {
      if (sc->in_string)
        set_err(err, errlen, "%s; the string at byte %zu is not closed", msg, sc->string_at + 1);
      else
        set_err(err, errlen, "%s; the %s at byte %zu is not closed", msg,
                kind_of(s[sc->stack[sc->depth - 1]]), sc->stack[sc->depth - 1] + 1);
    } else {
      set_err(err, errlen, "%s", msg);
    }
  } else {
    rc = push_tree(L, tree, s, len, err, errlen);
  }
  cJSON_Delete(tree);
  free(sc);
  return rc;
}

/* ---- Extract: the first JSON object or array in model text ---- */

struct extract {
  const char *text;
  size_t len;
  int tries, gave_up;
  char why[320]; /* the first candidate's failure, for the final message */
  int have_why;
  /* Brackets left open by the last unterminated scan: a later scan from any of them
   * would retrace it and also run off the end, so they are skipped without scanning. */
  size_t dead[ML_JSON_MAX_DEPTH];
  int ndead, dead_at;
  struct scan sc;
  cJSON *tree;
  size_t start, end;
};

static void note(struct extract *x, const char *fmt, ...) {
  if (x->have_why)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(x->why, sizeof x->why, fmt, ap);
  va_end(ap);
  x->have_why = 1;
}

/* Could a JSON value start at the bracket at i? Filters prose like {x} or [citation]
 * cheaply; single quotes pass so the parser can say they are not JSON. */
static int plausible_start(const char *t, size_t i, size_t to) {
  size_t j = i + 1;
  while (j < to && is_ws((unsigned char)t[j]))
    j++;
  if (j == to)
    return 1; /* unterminated: worth reporting */
  char c = t[j];
  if (c == '\'' || c == '"')
    return 1;
  if (t[i] == '{')
    return c == '}';
  return c == ']' || c == '{' || c == '[' || c == '-' || (c >= '0' && c <= '9') || c == 't' ||
         c == 'f' || c == 'n';
}

static int is_dead(struct extract *x, size_t i) {
  while (x->dead_at < x->ndead && x->dead[x->dead_at] < i)
    x->dead_at++;
  return x->dead_at < x->ndead && x->dead[x->dead_at] == i;
}

/* Try successive brackets in text[from, to); 1 when one parsed (x->tree set). */
static int try_range(struct extract *x, size_t from, size_t to) {
  const char *t = x->text;
  struct scan *sc = &x->sc;
  x->ndead = x->dead_at = 0; /* dead brackets are only dead within the range they ran to */
  for (size_t i = from; i < to; i++) {
    if (t[i] != '{' && t[i] != '[')
      continue;
    if (is_dead(x, i) || !plausible_start(t, i, to))
      continue;
    if (x->tries >= ML_JSON_EXTRACT_MAX_TRIES) {
      x->gave_up = 1;
      return 0;
    }
    x->tries++;
    const char *kind = kind_of(t[i]);
    scan_json(t, i, to, 1, sc);
    switch (sc->status) {
    case SCAN_CLOSED: {
      const char *endp = NULL;
      size_t e = sc->pos + 1;
      cJSON *tree = cJSON_ParseWithLengthOpts(t + i, e - i, &endp, 0);
      if (tree != NULL && endp == t + e) {
        x->tree = tree;
        x->start = i;
        x->end = e;
        return 1;
      }
      cJSON_Delete(tree);
      if (!x->have_why) {
        char msg[200], head[64];
        size_t at = i + (endp ? (size_t)(endp - (t + i)) : 0);
        snprintf(head, sizeof head, "the %s at byte %zu does not parse", kind, i + 1);
        syntax_error(t, e, at, "invalid JSON", msg, sizeof msg);
        note(x, "%s: %s", head, msg);
      }
      break;
    }
    case SCAN_OPEN:
      note(x, "an unterminated %s starts at byte %zu", kind, i + 1);
      memcpy(x->dead, sc->stack, (size_t)sc->depth * sizeof sc->stack[0]);
      x->ndead = sc->depth;
      x->dead_at = 0;
      break;
    case SCAN_TOO_DEEP:
      note(x, "the %s at byte %zu is nested deeper than %d", kind, i + 1, ML_JSON_MAX_DEPTH);
      break;
    case SCAN_MISMATCH:
      note(x, "the %s at byte %zu is closed by a mismatched '%c' at byte %zu", kind, i + 1,
           t[sc->pos], sc->pos + 1);
      break;
    case SCAN_BAD:
      note(x, "the %s at byte %zu has %s at byte %zu", kind, i + 1, sc->bad, sc->pos + 1);
      break;
    }
  }
  return 0;
}

struct fence {
  size_t at;             /* the opening line */
  size_t ticks;          /* length of the opening backtick run */
  size_t body, body_end; /* the lines between the fences */
  size_t after;          /* just past the closing line */
  int is_json;
};

static size_t line_end(const char *t, size_t len, size_t from) {
  const char *nl = memchr(t + from, '\n', len - from);
  return nl ? (size_t)(nl - t) : len;
}

/* Does the line at ls open a ``` fence (up to three spaces of indent, an info string
 * without backticks, as in CommonMark)? Looks at that line only. */
static int fence_open(const char *t, size_t len, size_t ls, struct fence *f) {
  size_t i = ls, ticks = 0;
  while (i < len && i - ls < 3 && t[i] == ' ')
    i++;
  while (i + ticks < len && t[i + ticks] == '`')
    ticks++;
  if (ticks < 3)
    return 0;
  i += ticks;
  size_t eol = line_end(t, len, i);
  if (memchr(t + i, '`', eol - i) != NULL)
    return 0;
  while (i < eol && (t[i] == ' ' || t[i] == '\t'))
    i++;
  f->at = ls;
  f->ticks = ticks;
  f->is_json = eol - i >= 4 && (t[i] | 0x20) == 'j' && (t[i + 1] | 0x20) == 's' &&
               (t[i + 2] | 0x20) == 'o' && (t[i + 3] | 0x20) == 'n';
  f->body = eol < len ? eol + 1 : len;
  return 1;
}

/* Find the closing line (at least as many backticks, nothing else); a fence that never
 * closes runs to the end of the text. */
static void fence_close(const char *t, size_t len, struct fence *f) {
  for (size_t ln = f->body; ln < len;) {
    size_t le = line_end(t, len, ln), j = ln, n = 0;
    while (j < le && j - ln < 3 && t[j] == ' ')
      j++;
    while (j + n < le && t[j + n] == '`')
      n++;
    if (n >= f->ticks) {
      j += n;
      while (j < le && (t[j] == ' ' || t[j] == '\t' || t[j] == '\r'))
        j++;
      if (j == le) {
        f->body_end = ln;
        f->after = le < len ? le + 1 : len;
        return;
      }
    }
    ln = le + 1;
  }
  f->body_end = f->after = len;
}

/* Search ```json fences anywhere, also inside other fences; returns 1 when one holds
 * JSON and sets *any when at least one exists. Only json fences are searched for their
 * close, and their bodies are skipped afterwards, so the line walk stays linear. */
static int try_json_fences(struct extract *x, int *any) {
  struct fence f;
  for (size_t ls = 0; ls < x->len;) {
    if (fence_open(x->text, x->len, ls, &f) && f.is_json) {
      int before = x->tries;
      *any = 1;
      fence_close(x->text, x->len, &f);
      if (try_range(x, f.body, f.body_end))
        return 1;
      if (x->gave_up)
        return 0;
      if (x->tries == before)
        note(x, "the ```json fence at byte %zu holds no object or array", f.at + 1);
      ls = f.after;
      continue;
    }
    ls = line_end(x->text, x->len, ls) + 1;
  }
  return 0;
}

/* Other fences, outermost only, in order. */
static int try_other_fences(struct extract *x) {
  struct fence f;
  for (size_t ls = 0; ls < x->len;) {
    if (fence_open(x->text, x->len, ls, &f)) {
      fence_close(x->text, x->len, &f);
      if (try_range(x, f.body, f.body_end) || x->gave_up)
        return x->tree != NULL;
      ls = f.after;
      continue;
    }
    ls = line_end(x->text, x->len, ls) + 1;
  }
  return 0;
}

/* When no bracket was worth trying: is the text just a JSON scalar? */
static void describe_no_candidates(struct extract *x) {
  const char *t = x->text;
  size_t a = 0, b = x->len;
  while (a < b && is_ws((unsigned char)t[a]))
    a++;
  while (b > a && is_ws((unsigned char)t[b - 1]))
    b--;
  const char *endp = NULL;
  cJSON *v = a < b ? cJSON_ParseWithLengthOpts(t + a, b - a, &endp, 0) : NULL;
  if (v != NULL && endp == t + b) {
    const char *kind = cJSON_IsString(v) ? "string" : cJSON_IsNumber(v) ? "number"
                       : cJSON_IsBool(v) ? "boolean" : "null";
    note(x, "found only a bare %s", kind);
  } else if (memchr(t, '{', x->len) == NULL && memchr(t, '[', x->len) == NULL) {
    note(x, "it has no '{' or '['");
  } else {
    note(x, "no '{' or '[' in it starts a JSON value");
  }
  cJSON_Delete(v);
}

cJSON *ml_json_extract(const char *text, size_t len, size_t *start, size_t *end, char *err,
                       size_t errlen) {
  struct extract *x = calloc(1, sizeof *x);
  if (x == NULL) {
    set_err(err, errlen, "out of memory");
    return NULL;
  }
  x->text = text;
  x->len = len;
  int any_json_fence = 0;
  int found = text != NULL && len > 0 &&
              (try_json_fences(x, &any_json_fence) ||
               (!any_json_fence && !x->gave_up &&
                (try_other_fences(x) || (!x->gave_up && try_range(x, 0, len)))));
  cJSON *out = NULL;
  if (found) {
    out = x->tree;
    if (start)
      *start = x->start;
    if (end)
      *end = x->end;
  } else if (text == NULL || len == 0) {
    set_err(err, errlen, "no JSON object or array in text (0 bytes)");
  } else {
    char head[96];
    if (!x->have_why)
      describe_no_candidates(x);
    excerpt(text, len, 0, head, sizeof head);
    if (x->gave_up)
      set_err(err, errlen,
              "no JSON object or array in text (%zu bytes, starts \"%s\"); %s; gave up after %d "
              "candidates", len, head, x->why, ML_JSON_EXTRACT_MAX_TRIES);
    else
      set_err(err, errlen, "no JSON object or array in text (%zu bytes, starts \"%s\"); %s", len,
              head, x->why);
  }
  free(x);
  return out;
}

/* ---- The Lua module ---- */

static int l_encode(lua_State *L) {
  luaL_checkany(L, 1);
  int flags = 0;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 2)) {
      const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
      if (k != NULL && strcmp(k, "pretty") == 0) {
        if (lua_toboolean(L, -1))
          flags |= ML_JSON_PRETTY;
      } else if (k != NULL && strcmp(k, "sort_keys") == 0) {
        if (lua_toboolean(L, -1))
          flags |= ML_JSON_SORT_KEYS;
      } else {
        return luaL_error(L, "json.encode: unknown option %s (known: pretty, sort_keys)",
                          k ? k : luaL_typename(L, -2));
      }
      lua_pop(L, 1);
    }
  }
  char err[512];
  char *s = ml_json_encode(L, 1, flags, err, sizeof err);
  if (s == NULL)
    return luaL_error(L, "json.encode: %s", err);
  lua_pushstring(L, s);
  free(s);
  return 1;
}

static int l_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  char err[512];
  if (ml_json_decode(L, s, len, err, sizeof err) != 0)
    return luaL_error(L, "json.decode: %s", err);
  return 1;
}

/* Returns the value and its 1-based inclusive byte span, for text:sub(start, finish). */
static int l_extract(lua_State *L) {
  size_t len, start = 0, end = 0;
  const char *s = luaL_checklstring(L, 1, &len);
  char err[512];
  cJSON *tree = ml_json_extract(s, len, &start, &end, err, sizeof err);
  if (tree == NULL)
    return luaL_error(L, "json.extract: %s", err);
  int rc = push_tree(L, tree, s + start, end - start, err, sizeof err);
  cJSON_Delete(tree);
  if (rc != 0)
    return luaL_error(L, "json.extract: %s", err);
  lua_pushinteger(L, (lua_Integer)start + 1);
  lua_pushinteger(L, (lua_Integer)end);
  return 3;
}

/* json.array(t): mark t so it encodes as an array even when empty; returns t. */
static int l_array(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  luaL_newmetatable(L, ARRAY_MT);
  if (lua_getmetatable(L, 1) && !lua_rawequal(L, -1, -2))
    return luaL_argerror(L, 1, "table already has a metatable");
  lua_settop(L, 2);
  lua_setmetatable(L, 1);
  return 1;
}

int ml_json_open(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"encode", l_encode}, {"decode", l_decode}, {"extract", l_extract},
      {"array", l_array},   {NULL, NULL},
  };
  luaL_newlib(L, fns);
  ml_json_push_null(L);
  lua_setfield(L, -2, "null");
  luaL_newmetatable(L, ARRAY_MT);
  lua_setfield(L, -2, "array_mt");
  return 1;
}

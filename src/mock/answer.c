/* Answers for the mock server: the Lua state that runs the answer function, and the JSON
 * text of chat completions, stream events and errors. Responses are written by hand into
 * reusable buffers rather than built as cJSON trees: at 20k requests/s the tree is waste. */
#include "mock/server.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <lauxlib.h>
#include <lualib.h>

#include "core/paths.h"
#include "lua/json.h"

/* A fixed creation time keeps answers byte-identical across runs (2023-11-14). */
#define MOCK_CREATED 1700000000

/* ---- Buffers ----------------------------------------------------------------------- */

int mock_buf_reserve(struct mock_buf *b, size_t extra) {
  if (b->cap - b->len >= extra)
    return 0;
  size_t cap = b->cap ? b->cap : 1024;
  while (cap - b->len < extra) {
    if (cap > SIZE_MAX / 2)
      return UV_ENOMEM;
    cap *= 2;
  }
  char *p = realloc(b->data, cap);
  if (p == NULL)
    return UV_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int mock_buf_add(struct mock_buf *b, const void *p, size_t n) {
  if (mock_buf_reserve(b, n))
    return UV_ENOMEM;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

int mock_buf_adds(struct mock_buf *b, const char *s) { return mock_buf_add(b, s, strlen(s)); }

int mock_buf_printf(struct mock_buf *b, const char *fmt, ...) {
  va_list ap;
  for (int attempt = 0; attempt < 2; attempt++) {
    size_t room = b->cap - b->len;
    va_start(ap, fmt);
    int n = vsnprintf(b->data ? b->data + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0)
      return UV_EINVAL;
    if ((size_t)n < room) {
      b->len += (size_t)n;
      return 0;
    }
    if (mock_buf_reserve(b, (size_t)n + 1))
      return UV_ENOMEM;
  }
  return UV_ENOMEM;
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when it is not one (overlong
 * forms, surrogates and code points above U+10FFFF are invalid). */
static size_t utf8_len(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t k;
  unsigned min;
  if (c >= 0xc2 && c <= 0xdf)
    k = 2, min = 0x80;
  else if (c >= 0xe0 && c <= 0xef)
    k = 3, min = 0x800;
  else if (c >= 0xf0 && c <= 0xf4)
    k = 4, min = 0x10000;
  else
    return 0;
  if (n < k)
    return 0;
  unsigned cp = c & (0x3f >> (k - 1));
  for (size_t i = 1; i < k; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return k;
}

int mock_buf_json_str(struct mock_buf *b, const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  /* Worst case is 6 output bytes per input byte (\u00XX). */
  if (n > (SIZE_MAX - 2) / 6 || mock_buf_reserve(b, n * 6 + 2))
    return UV_ENOMEM;
  char *o = b->data + b->len;
  *o++ = '"';
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      *o++ = (char)c;
      i++;
    } else if (c >= 0x80) {
      size_t k = utf8_len(s + i, n - i);
      if (k == 0) {
        memcpy(o, "\\ufffd", 6);
        o += 6;
        i++;
      } else {
        memcpy(o, s + i, k);
        o += k;
        i += k;
      }
    } else {
      static const char hex[] = "0123456789abcdef";
      *o++ = '\\';
      switch (c) {
      case '"': *o++ = '"'; break;
      case '\\': *o++ = '\\'; break;
      case '\n': *o++ = 'n'; break;
      case '\r': *o++ = 'r'; break;
      case '\t': *o++ = 't'; break;
      default:
        memcpy(o, "u00", 3);
        o[3] = hex[c >> 4];
        o[4] = hex[c & 15];
        o += 5;
      }
      i++;
    }
  }
  *o++ = '"';
  b->len = (size_t)(o - b->data);
  return 0;
}

void mock_buf_free(struct mock_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

/* ---- The Lua answer function ------------------------------------------------------- */

int mock_answer_open(struct mock_answerer *a, const char *path, char *err, size_t errlen) {
  static char default_path[4096];
  memset(a, 0, sizeof *a);
  a->chat_ref = LUA_NOREF;
  const char *dir = ml_lua_dir();
  if (path == NULL) {
    int n = snprintf(default_path, sizeof default_path, "%s/moonloop/mock/answer.lua", dir);
    if (n < 0 || (size_t)n >= sizeof default_path) {
      snprintf(err, errlen, "mock-server: Lua library path too long: %s", dir);
      return -1;
    }
    path = default_path;
  }
  a->path = path;
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    snprintf(err, errlen, "mock-server: out of memory creating the Lua state");
    return -1;
  }
  a->L = L;
  luaL_openlibs(L);
  /* Requests make short-lived tables; the generational collector handles that best. */
  lua_gc(L, LUA_GCGEN, 0, 0);
  /* Answer files may use the runtime's json module and require moonloop.* modules. */
  luaL_requiref(L, "json", ml_json_open, 1);
  lua_pop(L, 1);
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;", dir, dir);
  lua_getfield(L, -2, "path");
  lua_concat(L, 2);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);

  if (luaL_loadfile(L, path) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
    snprintf(err, errlen, "mock-server: cannot load answer file: %s", lua_tostring(L, -1));
    goto fail;
  }
  if (!lua_istable(L, -1)) {
    snprintf(err, errlen,
             "mock-server: answer file %s must return a table { chat = function(req, index, "
             "meta) ... end }, got a %s",
             path, luaL_typename(L, -1));
    goto fail;
  }
  lua_getfield(L, -1, "chat");
  if (!lua_isfunction(L, -1)) {
    snprintf(err, errlen, "mock-server: answer file %s: field 'chat' must be a function, got %s",
             path, luaL_typename(L, -1));
    goto fail;
  }
  a->chat_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_settop(L, 0);
  return 0;

fail:
  lua_close(L);
  a->L = NULL;
  return -1;
}

void mock_answer_close(struct mock_answerer *a) {
  if (a->L)
    lua_close(a->L);
  a->L = NULL;
}

void mock_answer_release(struct mock_answerer *a) { lua_settop(a->L, a->base); }

static long long estimate_tokens(size_t bytes) { return (long long)((bytes + 3) / 4); }

/* Read one result (at the stack top) into out; leaves the strings it points to on the
 * stack so they stay valid until mock_answer_release. */
static int read_result(lua_State *L, int index, struct mock_choice *out, char *err, size_t errlen) {
  int res = lua_gettop(L);
  memset(out, 0, sizeof *out);
  out->input_tokens = out->output_tokens = -1;
  if (lua_type(L, res) == LUA_TSTRING) {
    out->text = lua_tolstring(L, res, &out->text_len);
  } else if (lua_istable(L, res)) {
    if (lua_getfield(L, res, "text") != LUA_TSTRING) {
      snprintf(err, errlen, "chat(req, %d) returned a table whose 'text' is a %s, not a string",
               index, luaL_typename(L, -1));
      return -1;
    }
    out->text = lua_tolstring(L, -1, &out->text_len);
    int t = lua_getfield(L, res, "finish_reason");
    if (t == LUA_TSTRING) {
      out->finish_reason = lua_tolstring(L, -1, &out->finish_len);
    } else if (t != LUA_TNIL) {
      snprintf(err, errlen, "chat(req, %d) returned a 'finish_reason' that is a %s", index,
               luaL_typename(L, -1));
      return -1;
    }
    if (lua_getfield(L, res, "usage") == LUA_TTABLE) {
      int isnum = 0;
      lua_getfield(L, -1, "input");
      lua_Number in = lua_tonumberx(L, -1, &isnum);
      if (isnum && in >= 0 && in < 1e15)
        out->input_tokens = (long long)in;
      lua_getfield(L, -2, "output");
      lua_Number o = lua_tonumberx(L, -1, &isnum);
      if (isnum && o >= 0 && o < 1e15)
        out->output_tokens = (long long)o;
      lua_pop(L, 2);
    }
    lua_pop(L, 1);
  } else {
    snprintf(err, errlen, "chat(req, %d) returned a %s; expected { text = \"...\" } or a string",
             index, luaL_typename(L, res));
    return -1;
  }
  if (out->finish_reason == NULL) {
    out->finish_reason = "stop";
    out->finish_len = 4;
  }
  if (out->output_tokens < 0)
    out->output_tokens = estimate_tokens(out->text_len);
  return 0;
}

/* Bytes of message text in the request, for the prompt token estimate. */
static size_t prompt_bytes(const cJSON *req) {
  size_t total = 0;
  const cJSON *m;
  cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(req, "messages")) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
    if (cJSON_IsString(c)) {
      total += strlen(c->valuestring);
    } else if (cJSON_IsArray(c)) {
      const cJSON *part;
      cJSON_ArrayForEach(part, c) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (cJSON_IsString(t))
          total += strlen(t->valuestring);
      }
    }
    total += 4; /* role and framing */
  }
  return total;
}

int mock_answer_chat(struct mock_answerer *a, const void *req_json, int n, const char *role,
                     size_t role_len, struct mock_choice *out, char *err, size_t errlen) {
  lua_State *L = a->L;
  const cJSON *req = req_json;
  a->base = lua_gettop(L);
  if (!lua_checkstack(L, 4 * n + 8)) {
    snprintf(err, errlen, "too many choices (n = %d) for the Lua stack", n);
    return -1;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->chat_ref);
  int fn = lua_gettop(L);
  if (ml_json_push(L, req, err, errlen) != 0)
    goto fail;
  int arg = lua_gettop(L);
  /* meta: what the request says about itself outside the body (the role header). */
  lua_createtable(L, 0, 1);
  if (role != NULL) {
    lua_pushlstring(L, role, role_len);
    lua_setfield(L, -2, "role");
  }
  int meta = lua_gettop(L);
  long long prompt = -1;
  for (int i = 0; i < n; i++) {
    lua_pushvalue(L, fn);
    lua_pushvalue(L, arg);
    lua_pushinteger(L, i);
    lua_pushvalue(L, meta);
    if (lua_pcall(L, 3, 1, 0) != LUA_OK) {
      const char *msg = luaL_tolstring(L, -1, NULL);
      snprintf(err, errlen, "answer function failed: %s", msg);
      goto fail;
    }
    if (read_result(L, i, &out[i], err, errlen) != 0)
      goto fail;
    if (out[i].input_tokens < 0) {
      if (prompt < 0)
        prompt = estimate_tokens(prompt_bytes(req));
      out[i].input_tokens = prompt;
    }
  }
  return 0;

fail:
  lua_settop(L, a->base);
  return -1;
}

/* ---- Rendering --------------------------------------------------------------------- */

static int usage_json(struct mock_buf *b, const struct mock_chat *c) {
  long long in = c->n > 0 ? c->choices[0].input_tokens : 0, out = 0;
  for (int i = 0; i < c->n; i++)
    out += c->choices[i].output_tokens;
  return mock_buf_printf(b,
                         "\"usage\":{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,"
                         "\"total_tokens\":%lld}",
                         in, out, in + out);
}

int mock_render_completion(struct mock_buf *b, const struct mock_chat *c) {
  int rc = mock_buf_printf(b,
                           "{\"id\":\"chatcmpl-mock%016llx\",\"object\":\"chat.completion\","
                           "\"created\":%d,\"model\":",
                           (unsigned long long)c->body_hash, MOCK_CREATED);
  rc = rc ? rc : mock_buf_json_str(b, c->model, c->model_len);
  rc = rc ? rc : mock_buf_adds(b, ",\"choices\":[");
  for (int i = 0; i < c->n && rc == 0; i++) {
    const struct mock_choice *ch = &c->choices[i];
    rc = mock_buf_printf(
        b, "%s{\"index\":%d,\"message\":{\"role\":\"assistant\",\"content\":", i ? "," : "", i);
    rc = rc ? rc : mock_buf_json_str(b, ch->text, ch->text_len);
    rc = rc ? rc : mock_buf_adds(b, ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":");
    rc = rc ? rc : mock_buf_json_str(b, ch->finish_reason, ch->finish_len);
    rc = rc ? rc : mock_buf_adds(b, "}");
  }
  rc = rc ? rc : mock_buf_adds(b, "],");
  rc = rc ? rc : usage_json(b, c);
  rc = rc ? rc : mock_buf_adds(b, ",\"system_fingerprint\":\"fp_mock\"}");
  return rc;
}

/* Moved forward off UTF-8 continuation bytes so no event carries half a character. */
size_t mock_piece_start(const struct mock_choice *ch, int j, int k) {
  size_t at = (size_t)((double)ch->text_len * j / k);
  while (at < ch->text_len && ((unsigned char)ch->text[at] & 0xc0) == 0x80)
    at++;
  return at;
}

int mock_render_stream(struct mock_buf *s, const struct mock_chat *c, int bad_event,
                       mock_event_fn fn, void *ud) {
  const char *tail = c->include_usage ? "],\"usage\":null}\n\n" : "]}\n\n";
  s->len = 0;
  int rc = mock_buf_printf(s,
                           "data: {\"id\":\"chatcmpl-mock%016llx\",\"object\":\"chat.completion."
                           "chunk\",\"created\":%d,\"model\":",
                           (unsigned long long)c->body_hash, MOCK_CREATED);
  rc = rc ? rc : mock_buf_json_str(s, c->model, c->model_len);
  rc = rc ? rc : mock_buf_adds(s, ",\"system_fingerprint\":\"fp_mock\",\"choices\":[");
  if (rc)
    return rc;
  size_t head = s->len; /* every chunk event starts with these bytes */

  for (int i = 0; i < c->n && rc == 0; i++) {
    s->len = head;
    rc = mock_buf_printf(s,
                         "{\"index\":%d,\"delta\":{\"role\":\"assistant\",\"content\":\"\","
                         "\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}%s",
                         i, tail);
    rc = rc ? rc : fn(ud, s->data, s->len);
  }
  if (bad_event && rc == 0) {
    s->len = head;
    rc = mock_buf_adds(s, "{\"index\":0,\"delta\":{\"content\":\"unterminated\n\n");
    rc = rc ? rc : fn(ud, s->data, s->len);
  }
  int k = c->stream_chunks > 0 ? c->stream_chunks : 1;
  for (int j = 0; j < k && rc == 0; j++) {
    for (int i = 0; i < c->n && rc == 0; i++) {
      const struct mock_choice *ch = &c->choices[i];
      size_t b = mock_piece_start(ch, j, k), e = mock_piece_start(ch, j + 1, k);
      if (e <= b)
        continue;
      s->len = head;
      rc = mock_buf_printf(s, "{\"index\":%d,\"delta\":{\"content\":", i);
      rc = rc ? rc : mock_buf_json_str(s, ch->text + b, e - b);
      rc = rc ? rc : mock_buf_printf(s, "},\"logprobs\":null,\"finish_reason\":null}%s", tail);
      rc = rc ? rc : fn(ud, s->data, s->len);
    }
  }
  for (int i = 0; i < c->n && rc == 0; i++) {
    const struct mock_choice *ch = &c->choices[i];
    s->len = head;
    rc = mock_buf_printf(s, "{\"index\":%d,\"delta\":{},\"logprobs\":null,\"finish_reason\":", i);
    rc = rc ? rc : mock_buf_json_str(s, ch->finish_reason, ch->finish_len);
    rc = rc ? rc : mock_buf_printf(s, "}%s", tail);
    rc = rc ? rc : fn(ud, s->data, s->len);
  }
  if (c->include_usage && rc == 0) {
    s->len = head;
    rc = mock_buf_adds(s, "],");
    rc = rc ? rc : usage_json(s, c);
    rc = rc ? rc : mock_buf_adds(s, "}\n\n");
    rc = rc ? rc : fn(ud, s->data, s->len);
  }
  if (rc == 0) {
    static const char done[] = "data: [DONE]\n\n";
    rc = fn(ud, done, sizeof done - 1);
  }
  return rc;
}

int mock_render_error(struct mock_buf *b, const char *message, const char *type, const char *code) {
  int rc = mock_buf_adds(b, "{\"error\":{\"message\":");
  rc = rc ? rc : mock_buf_json_str(b, message, strlen(message));
  rc = rc ? rc : mock_buf_adds(b, ",\"type\":");
  rc = rc ? rc : mock_buf_json_str(b, type, strlen(type));
  rc = rc ? rc : mock_buf_adds(b, ",\"param\":null,\"code\":");
  if (code)
    rc = rc ? rc : mock_buf_json_str(b, code, strlen(code));
  else
    rc = rc ? rc : mock_buf_adds(b, "null");
  rc = rc ? rc : mock_buf_adds(b, "}}");
  return rc;
}

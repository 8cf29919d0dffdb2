/* The `text` Lua module: prompt templates, UTF-8-safe truncation, word counts, a
 * near-duplicate score and a stable 128-bit hash. Pure functions with no I/O and no global
 * state, so the sandbox can hand this module to untrusted code as it is.
 * The hash and the similarity are written here rather than taken from a library because
 * they must stay bit-for-bit stable (they key caches and journals) and are a few dozen lines. */
#include "lua/modules.h"

#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

/* ---------------------------------------------------------------------------------- */
/* UTF-8 */

static int is_cont(unsigned char c) {
  return (c & 0xC0) == 0x80;
}

/* Length of the sequence a lead byte announces, or 1 for anything that is not a lead. */
static size_t utf8_seq_len(unsigned char c) {
  if (c >= 0xF0 && c <= 0xF4)
    return 4;
  if (c >= 0xE0)
    return c <= 0xEF ? 3 : 1;
  if (c >= 0xC2)
    return 2;
  return 1;
}

size_t text_utf8_cut(const char *s, size_t len, size_t max) {
  if (len <= max)
    return len;
  const unsigned char *u = (const unsigned char *)s;
  if (!is_cont(u[max]))
    return max; /* the cut falls between characters */
  /* Walk back over at most three continuation bytes to the lead byte; cut before it only if
   * its sequence really reaches past the cut (stray continuation bytes are cut anywhere). */
  for (size_t back = 1; back <= 3 && back <= max; back++) {
    unsigned char c = u[max - back];
    if (is_cont(c))
      continue;
    return utf8_seq_len(c) > back ? max - back : max;
  }
  return max;
}

/* ---------------------------------------------------------------------------------- */
/* 128-bit hash: MurmurHash3, x64 variant, seed 0 (Austin Appleby's public-domain design),
 * written from its description. Reads are assembled byte by byte in little-endian order so
 * the result does not depend on the machine. */

static uint64_t rotl64(uint64_t x, int r) {
  return (x << r) | (x >> (64 - r));
}

static uint64_t fmix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

static uint64_t load_le(const unsigned char *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = n; i > 0; i--)
    v = (v << 8) | p[i - 1];
  return v;
}

void text_hash128(const void *data, size_t len, uint64_t out[2]) {
  const unsigned char *p = data;
  const uint64_t c1 = 0x87c37b91114253d5ULL, c2 = 0x4cf5ad432745937fULL;
  uint64_t h1 = 0, h2 = 0;
  size_t nblocks = len / 16;
  for (size_t i = 0; i < nblocks; i++, p += 16) {
    uint64_t k1 = load_le(p, 8), k2 = load_le(p + 8, 8);
    k1 *= c1;
    k1 = rotl64(k1, 31);
    k1 *= c2;
    h1 ^= k1;
    h1 = rotl64(h1, 27);
    h1 += h2;
    h1 = h1 * 5 + 0x52dce729;
    k2 *= c2;
    k2 = rotl64(k2, 33);
    k2 *= c1;
    h2 ^= k2;
    h2 = rotl64(h2, 31);
    h2 += h1;
    h2 = h2 * 5 + 0x38495ab5;
  }
  size_t rest = len & 15;
  if (rest > 8) {
    uint64_t k2 = load_le(p + 8, rest - 8);
    k2 *= c2;
    k2 = rotl64(k2, 33);
    k2 *= c1;
    h2 ^= k2;
  }
  if (rest > 0) {
    uint64_t k1 = load_le(p, rest > 8 ? 8 : rest);
    k1 *= c1;
    k1 = rotl64(k1, 31);
    k1 *= c2;
    h1 ^= k1;
  }
  h1 ^= (uint64_t)len;
  h2 ^= (uint64_t)len;
  h1 += h2;
  h2 += h1;
  h1 = fmix64(h1);
  h2 = fmix64(h2);
  h1 += h2;
  h2 += h1;
  out[0] = h1;
  out[1] = h2;
}

void text_hash_hex(const void *data, size_t len, char out[33]) {
  static const char digits[] = "0123456789abcdef";
  uint64_t h[2];
  text_hash128(data, len, h);
  for (int half = 0; half < 2; half++)
    for (int i = 0; i < 16; i++)
      out[half * 16 + i] = digits[(h[half] >> (60 - 4 * i)) & 15];
  out[32] = '\0';
}

/* ---------------------------------------------------------------------------------- */
/* Words */

static int is_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int is_word_byte(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

/* Find the next word at or after *pos; set *hash to the 64-bit FNV-1a of its normalized
 * bytes (word bytes only, ASCII lowercased) and return 1, or return 0 at the end. */
static int next_word(const char *s, size_t len, size_t *pos, uint64_t *hash) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = *pos;
  while (i < len) {
    while (i < len && is_space(u[i]))
      i++;
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t kept = 0;
    for (; i < len && !is_space(u[i]); i++) {
      unsigned char c = u[i];
      if (!is_word_byte(c))
        continue;
      if (c >= 'A' && c <= 'Z')
        c = (unsigned char)(c - 'A' + 'a');
      h = (h ^ c) * 0x100000001b3ULL;
      kept++;
    }
    if (kept > 0) {
      *pos = i;
      *hash = h;
      return 1;
    }
  }
  *pos = len;
  return 0;
}

size_t text_word_count(const char *s, size_t len) {
  size_t n = 0, pos = 0;
  uint64_t h;
  while (next_word(s, len, &pos, &h))
    n++;
  return n;
}

/* ---------------------------------------------------------------------------------- */
/* Similarity: sets of 64-bit element hashes in open-addressing tables (0 marks a free slot,
 * so an element that hashes to 0 is stored as 1; one more collision in 2^64 is harmless). */

struct hset {
  uint64_t *slot;
  size_t mask, count;
};

static int hset_init(struct hset *h, size_t n) {
  size_t cap = 16;
  while (cap < 2 * n + 2)
    cap *= 2;
  h->slot = calloc(cap, sizeof *h->slot);
  h->mask = cap - 1;
  h->count = 0;
  return h->slot ? 0 : -1;
}

/* Returns 1 when k was added, 0 when it was already there. */
static int hset_add(struct hset *h, uint64_t k) {
  k = k ? k : 1;
  for (size_t i = (size_t)fmix64(k) & h->mask;; i = (i + 1) & h->mask) {
    if (h->slot[i] == k)
      return 0;
    if (h->slot[i] == 0) {
      h->slot[i] = k;
      h->count++;
      return 1;
    }
  }
}

static int hset_has(const struct hset *h, uint64_t k) {
  k = k ? k : 1;
  for (size_t i = (size_t)fmix64(k) & h->mask;; i = (i + 1) & h->mask) {
    if (h->slot[i] == k)
      return 1;
    if (h->slot[i] == 0)
      return 0;
  }
}

/* Iterates the elements of a text: word hashes (width 1) or 3-shingle hashes (width 3). */
struct elems {
  const char *s;
  size_t len, pos;
  int width, have;
  uint64_t w[3];
};

static int elems_next(struct elems *e, uint64_t *out) {
  uint64_t h;
  while (next_word(e->s, e->len, &e->pos, &h)) {
    e->w[0] = e->w[1];
    e->w[1] = e->w[2];
    e->w[2] = h;
    if (++e->have < e->width)
      continue;
    if (e->width == 1)
      *out = h;
    else /* order matters: "a b c" and "c b a" are different shingles */
      *out = fmix64(fmix64(fmix64(e->w[0] + 0x9e3779b97f4a7c15ULL) ^ e->w[1]) ^ e->w[2]);
    return 1;
  }
  return 0;
}

double text_similarity(const char *a, size_t alen, const char *b, size_t blen) {
  size_t na = text_word_count(a, alen), nb = text_word_count(b, blen);
  if (na == 0 && nb == 0)
    return 1.0;
  if (na == 0 || nb == 0)
    return 0.0;
  int width = (na >= 3 && nb >= 3) ? 3 : 1;
  struct hset sa = {0}, sb = {0};
  double result = -1;
  if (hset_init(&sa, na) != 0 || hset_init(&sb, nb) != 0)
    goto fail;
  struct elems ea = {.s = a, .len = alen, .width = width};
  struct elems eb = {.s = b, .len = blen, .width = width};
  uint64_t k;
  while (elems_next(&ea, &k))
    hset_add(&sa, k);
  size_t inter = 0;
  while (elems_next(&eb, &k))
    if (hset_add(&sb, k) && hset_has(&sa, k))
      inter++;
  result = (double)inter / (double)(sa.count + sb.count - inter);
fail:
  free(sa.slot);
  free(sb.slot);
  return result;
}

/* ---------------------------------------------------------------------------------- */
/* Templates */

static int is_ident_start(unsigned char c) {
  return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_ident(unsigned char c) {
  return is_ident_start(c) || (c >= '0' && c <= '9');
}

static size_t skip_blanks(const char *s, size_t len, size_t i) {
  while (i < len && (s[i] == ' ' || s[i] == '\t'))
    i++;
  return i;
}

void text_template_next(const char *s, size_t len, size_t *pos, struct text_token *tok) {
  size_t i = *pos;
  memset(tok, 0, sizeof *tok);
  tok->at = i;
  if (i >= len) {
    tok->kind = TEXT_TOK_END;
    return;
  }
  if (!(s[i] == '{' && i + 1 < len && s[i + 1] == '{')) {
    /* Plain text up to the next `{{`. */
    const char *open = NULL;
    for (size_t j = i; j + 1 < len; j++) {
      if (s[j] == '{' && s[j + 1] == '{') {
        open = s + j;
        break;
      }
    }
    size_t end = open ? (size_t)(open - s) : len;
    tok->kind = TEXT_TOK_LITERAL;
    tok->start = i;
    tok->len = end - i;
    *pos = end;
    return;
  }
  size_t j = skip_blanks(s, len, i + 2);
  size_t start = j;
  if (j < len && s[j] == '"') {
    start = ++j;
    while (j < len && s[j] != '"')
      j++;
    if (j >= len) {
      tok->kind = TEXT_TOK_ERROR;
      tok->why = "unterminated \"...\" literal in a placeholder";
      return;
    }
    tok->kind = TEXT_TOK_LITERAL;
    tok->len = j - start;
    j++;
  } else if (j < len && is_ident_start((unsigned char)s[j])) {
    while (j < len && is_ident((unsigned char)s[j]))
      j++;
    tok->kind = TEXT_TOK_NAME;
    tok->len = j - start;
  } else {
    tok->kind = TEXT_TOK_ERROR;
    tok->why = "expected a name or a \"...\" literal after {{ (write {{\"{{\"}} for a literal {{)";
    return;
  }
  tok->start = start;
  j = skip_blanks(s, len, j);
  if (!(j + 1 < len && s[j] == '}' && s[j + 1] == '}')) {
    tok->kind = TEXT_TOK_ERROR;
    tok->why = "expected }} to close the placeholder";
    return;
  }
  *pos = j + 2;
}

/* ---------------------------------------------------------------------------------- */
/* Lua bindings */

/* 1-based line and column of byte offset `at`, for error messages about long templates. */
static void line_col(const char *s, size_t at, size_t *line, size_t *col) {
  *line = 1;
  size_t line_start = 0;
  for (size_t i = 0; i < at; i++) {
    if (s[i] == '\n') {
      (*line)++;
      line_start = i + 1;
    }
  }
  *col = at - line_start + 1;
}

/* text.render(template [, vars]) -> string. Every {{name}} becomes tostring(vars[name]);
 * a missing name (nil) is an error that names it and where it is. */
static int l_render(lua_State *L) {
  size_t len;
  const char *tpl = luaL_checklstring(L, 1, &len);
  int has_vars = !lua_isnoneornil(L, 2);
  if (has_vars)
    luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  size_t pos = 0, line, col;
  for (;;) {
    struct text_token tok;
    text_template_next(tpl, len, &pos, &tok);
    switch (tok.kind) {
    case TEXT_TOK_END: luaL_pushresult(&b); return 1;
    case TEXT_TOK_LITERAL: luaL_addlstring(&b, tpl + tok.start, tok.len); break;
    case TEXT_TOK_ERROR:
      line_col(tpl, tok.at, &line, &col);
      return luaL_error(L, "text.render: %s at position %d (line %d, column %d)", tok.why,
                        (int)(tok.at + 1), (int)line, (int)col);
    case TEXT_TOK_NAME:
      if (has_vars) {
        lua_pushlstring(L, tpl + tok.start, tok.len);
        lua_gettable(L, 2);
      } else {
        lua_pushnil(L);
      }
      if (lua_isnil(L, -1)) {
        line_col(tpl, tok.at, &line, &col);
        return luaL_error(L, "text.render: unknown name '%s' at position %d (line %d, column %d)",
                          lua_pushlstring(L, tpl + tok.start, tok.len), (int)(tok.at + 1),
                          (int)line, (int)col);
      }
      luaL_tolstring(L, -1, NULL);
      lua_remove(L, -2);
      luaL_addvalue(&b);
      break;
    }
  }
}

/* text.truncate(s, max_bytes [, ellipsis]) -> string of at most max_bytes bytes (ellipsis
 * included), cut at a UTF-8 character boundary; s itself when it already fits. */
static int l_truncate(lua_State *L) {
  size_t len, elen = 0;
  const char *s = luaL_checklstring(L, 1, &len);
  lua_Integer max = luaL_checkinteger(L, 2);
  const char *ell = luaL_optlstring(L, 3, "", &elen);
  luaL_argcheck(L, max >= 0, 2, "max_bytes must be >= 0");
  if ((lua_Unsigned)max >= len) {
    lua_settop(L, 1);
    return 1;
  }
  if (elen > (size_t)max) { /* not even the ellipsis fits: it is cut too */
    lua_pushlstring(L, ell, text_utf8_cut(ell, elen, (size_t)max));
    return 1;
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addlstring(&b, s, text_utf8_cut(s, len, (size_t)max - elen));
  luaL_addlstring(&b, ell, elen);
  luaL_pushresult(&b);
  return 1;
}

/* text.similarity(a, b) -> number in [0, 1]. */
static int l_similarity(lua_State *L) {
  size_t alen, blen;
  const char *a = luaL_checklstring(L, 1, &alen);
  const char *b = luaL_checklstring(L, 2, &blen);
  double r = text_similarity(a, alen, b, blen);
  if (r < 0)
    return luaL_error(L, "text.similarity: out of memory");
  lua_pushnumber(L, r);
  return 1;
}

/* text.hash(s) -> 32 lowercase hex digits. */
static int l_hash(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  char hex[33];
  text_hash_hex(s, len, hex);
  lua_pushlstring(L, hex, 32);
  return 1;
}

/* text.words(s) -> integer. */
static int l_words(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  lua_pushinteger(L, (lua_Integer)text_word_count(s, len));
  return 1;
}

int text_open(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"render", l_render}, {"truncate", l_truncate}, {"similarity", l_similarity},
      {"hash", l_hash},     {"words", l_words},       {NULL, NULL},
  };
  luaL_newlib(L, fns);
  return 1;
}

/* The general-purpose Lua modules: fs, proc and sqlite (trusted code only) and text (pure,
 * safe for untrusted code). Also the pure C algorithms behind `text`, declared here so the
 * unit tests (tests/unit/test_text.c) can call them without a Lua state. */
#ifndef ML_MODULES_H
#define ML_MODULES_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

struct ml_rt;

/* luaopen-style: each pushes its module table. */
int fs_open(lua_State *L);
int proc_open(lua_State *L);
int text_open(lua_State *L);
int store_sqlite_open(lua_State *L);

/* Set the globals fs, proc, text and sqlite in the (trusted) main state. A sandboxed state
 * gets text_open() alone: it is the only one of the four without I/O. */
static inline void modules_open(lua_State *L, struct ml_rt *rt) {
  (void)rt;
  fs_open(L);
  lua_setglobal(L, "fs");
  proc_open(L);
  lua_setglobal(L, "proc");
  text_open(L);
  lua_setglobal(L, "text");
  store_sqlite_open(L);
  lua_setglobal(L, "sqlite");
}

/* ---- Pure text algorithms (src/lua/text.c) ---- */

/* The length of the longest prefix of s[0..len) that is at most max bytes long and does not
 * end inside a UTF-8 sequence. Bytes that are not valid UTF-8 count as one character each,
 * so invalid input is cut at max and never loops. */
size_t text_utf8_cut(const char *s, size_t len, size_t max);

/* 128-bit MurmurHash3 (x64 variant, seed 0) of data, as two 64-bit halves. Byte order is
 * fixed (little-endian reads), so the value is the same on every machine. */
void text_hash128(const void *data, size_t len, uint64_t out[2]);

/* text_hash128 as 32 lowercase hex digits (out[0] then out[1], each big-endian) plus NUL. */
void text_hash_hex(const void *data, size_t len, char out[33]);

/* Words are runs of bytes between ASCII whitespace that contain at least one ASCII letter
 * or digit or any byte >= 0x80 (so "---" is not a word, "naïve" and "東京" are). */
size_t text_word_count(const char *s, size_t len);

/* Near-duplicate score in [0, 1]: the Jaccard index of the sets of word 3-shingles, or of
 * the word sets when either text has fewer than 3 words. Words are compared lowercased
 * (ASCII) with ASCII punctuation removed. Two texts without words score 1, one empty and
 * one not score 0. Returns -1 when memory runs out. */
double text_similarity(const char *a, size_t alen, const char *b, size_t blen);

/* Template scanning for text.render: a placeholder is `{{`, optional spaces or tabs, then a
 * name ([A-Za-z_][A-Za-z0-9_]*) or a double-quoted literal without `"` inside, optional
 * spaces or tabs, `}}`. The literal form is the escape: `{{"{{"}}` writes `{{`. Any other
 * `{{` is an error, so a typo cannot pass through into a prompt unnoticed. */
enum text_tok { TEXT_TOK_END, TEXT_TOK_LITERAL, TEXT_TOK_NAME, TEXT_TOK_ERROR };

struct text_token {
  enum text_tok kind;
  size_t start, len; /* LITERAL: bytes to copy; NAME: the name */
  size_t at;         /* offset of the token in the template (of the `{{` for placeholders) */
  const char *why;   /* ERROR: what is wrong, as a static string */
};

/* Read the next token of template s[0..len) starting at *pos and advance *pos. */
void text_template_next(const char *s, size_t len, size_t *pos, struct text_token *tok);

#endif

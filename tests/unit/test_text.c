/* Unit tests for the pure algorithms behind the `text` module (src/lua/text.c): UTF-8 cuts,
 * the 128-bit hash (pinned values: it keys caches and journals, so it must never drift),
 * word counting, similarity and the template scanner. No Lua state involved. */
#include "lua/modules.h"

#include <string.h>

#include "ml_test.h"

#define CUT(s, max) text_utf8_cut((s), strlen(s), (max))

static void utf8_cut_keeps_ascii_at_max(void) {
  ML_CHECK_INT(CUT("hello", 3), 3);
  ML_CHECK_INT(CUT("hello", 5), 5);
  ML_CHECK_INT(CUT("hello", 99), 5);
  ML_CHECK_INT(CUT("hello", 0), 0);
}

static void utf8_cut_backs_off_to_a_character_start(void) {
  const char *s = "a\xc3\xa9\xe6\x9d\xb1\xf0\x9f\x98\x80"; /* a é 東 😀: 1+2+3+4 bytes */
  ML_CHECK_INT(CUT(s, 1), 1);
  ML_CHECK_INT(CUT(s, 2), 1); /* inside é */
  ML_CHECK_INT(CUT(s, 3), 3);
  ML_CHECK_INT(CUT(s, 4), 3); /* inside 東 */
  ML_CHECK_INT(CUT(s, 5), 3);
  ML_CHECK_INT(CUT(s, 6), 6);
  ML_CHECK_INT(CUT(s, 7), 6); /* inside 😀 */
  ML_CHECK_INT(CUT(s, 9), 6);
  ML_CHECK_INT(CUT(s, 10), 10);
}

static void utf8_cut_treats_stray_bytes_as_characters(void) {
  ML_CHECK_INT(CUT("\x80\x80\x80\x80\x80", 3), 3); /* continuation bytes without a lead */
  ML_CHECK_INT(CUT("\xff\xfe\xfd", 1), 1);
  ML_CHECK_INT(CUT("a\xc3\xa9\x80\x80x", 4), 4); /* é then stray continuations */
  ML_CHECK_INT(CUT("\xc3\xa9", 1), 0);
}

static void hash_matches_murmur3_x64_128(void) {
  char h[33];
  const char *fox = "The quick brown fox jumps over the lazy dog";
  text_hash_hex(fox, strlen(fox), h);
  ML_CHECK_STR(h, "e34bbc7bbc071b6c7a433ca9c49a9347");
  text_hash_hex("", 0, h);
  ML_CHECK_STR(h, "00000000000000000000000000000000");
}

/* Lengths around the 8- and 16-byte boundaries exercise every tail path. */
static void hash_values_are_pinned(void) {
  static const struct {
    size_t len;
    const char *hex;
  } pinned[] = {
      {1, "2ac9debed546a3803a8de9e53c875e09"},  {7, "13eb9fb82606f7a6b4ebef492fdef34e"},
      {8, "8236039b7387354dc3369387d8964920"},  {9, "4c1e87519fe738ba72a17af899d597f1"},
      {15, "a62dd5f6c0bf23514fccf50c7c544cf0"}, {16, "4be06d94cf4ad1a787c35b5c63a708da"},
      {17, "8e32612daa45f9de0800f4c206c372ee"}, {31, "b828780c1a6e05423922739113a7e9b2"},
      {32, "2f285ccec0edf1f7c405d66374dea50b"}, {33, "e82017bf95741128ddc56eb32bc3a99a"},
  };
  const char *s = "0123456789abcdefghijklmnopqrstuvwxyz";
  for (size_t i = 0; i < sizeof pinned / sizeof pinned[0]; i++) {
    char h[33];
    text_hash_hex(s, pinned[i].len, h);
    ML_CHECK_STR(h, pinned[i].hex);
  }
}

static void hash_hex_agrees_with_the_two_halves(void) {
  uint64_t v[2];
  char h[33], want[33];
  text_hash128("abc", 3, v);
  text_hash_hex("abc", 3, h);
  snprintf(want, sizeof want, "%016llx%016llx", (unsigned long long)v[0], (unsigned long long)v[1]);
  ML_CHECK_STR(h, want);
}

static void words_are_counted_between_whitespace(void) {
  ML_CHECK_INT(text_word_count("", 0), 0);
  ML_CHECK_INT(text_word_count(" \t\n", 3), 0);
  ML_CHECK_INT(text_word_count("a b  c", 6), 3);
  ML_CHECK_INT(text_word_count("-- , ! a", 8), 1);
  ML_CHECK_INT(text_word_count("x\0y z", 5), 2); /* NUL is not whitespace */
}

#define SIM(a, b) text_similarity((a), strlen(a), (b), strlen(b))

static void similarity_bounds_and_symmetry(void) {
  ML_CHECK(SIM("a b c d", "a b c d") == 1.0);
  ML_CHECK(SIM("a b c d", "e f g h") == 0.0);
  ML_CHECK(SIM("", "") == 1.0);
  ML_CHECK(SIM("", "a") == 0.0);
  ML_CHECK(SIM("a b c d e", "a b c d f") == SIM("a b c d f", "a b c d e"));
}

static void similarity_counts_shingles_once(void) {
  /* Shingles of "a b c a b c": {abc, bca, cab}; of "a b c": {abc}. Jaccard 1/3. */
  double s = SIM("a b c a b c", "a b c");
  ML_CHECK(s > 0.333 && s < 0.334);
}

static void similarity_is_case_and_punctuation_blind(void) {
  ML_CHECK(SIM("Hello, World! How are you?", "hello world how are you") == 1.0);
}

/* Scan a template and describe its tokens as "L:text N:name E" for comparison. */
static const char *scan(const char *tpl) {
  static char out[256];
  size_t pos = 0, n = 0, len = strlen(tpl);
  out[0] = '\0';
  for (int guard = 0; guard < 32; guard++) {
    struct text_token tok;
    text_template_next(tpl, len, &pos, &tok);
    const char *tag = tok.kind == TEXT_TOK_LITERAL ? "L:"
                      : tok.kind == TEXT_TOK_NAME  ? "N:"
                      : tok.kind == TEXT_TOK_ERROR ? "E@"
                                                   : "";
    if (tok.kind == TEXT_TOK_END)
      break;
    if (tok.kind == TEXT_TOK_ERROR) {
      n += (size_t)snprintf(out + n, sizeof out - n, "%s%zu", tag, tok.at);
      break;
    }
    n += (size_t)snprintf(out + n, sizeof out - n, "%s%.*s|", tag, (int)tok.len, tpl + tok.start);
  }
  return out;
}

static void template_splits_text_and_names(void) {
  ML_CHECK_STR(scan("Hi {{name}}!"), "L:Hi |N:name|L:!|");
  ML_CHECK_STR(scan("{{ a }}{{b}}"), "N:a|N:b|");
  ML_CHECK_STR(scan("no placeholders"), "L:no placeholders|");
  ML_CHECK_STR(scan(""), "");
}

static void template_literal_escape(void) {
  ML_CHECK_STR(scan("{{\"{{\"}}x}}"), "L:{{|L:x}}|");
  ML_CHECK_STR(scan("{{ \"\" }}"), "L:|");
}

static void template_errors_point_at_the_braces(void) {
  ML_CHECK_STR(scan("ab{{"), "L:ab|E@2");
  ML_CHECK_STR(scan("{{ x"), "E@0");
  ML_CHECK_STR(scan("{{ x }"), "E@0");
  ML_CHECK_STR(scan("a {{9}}"), "L:a |E@2");
  ML_CHECK_STR(scan("{{\"abc}}"), "E@0");
}

static void template_single_braces_are_text(void) {
  ML_CHECK_STR(scan("{a} }} {"), "L:{a} }} {|");
}

ML_TEST_MAIN(ML_CASE(utf8_cut_keeps_ascii_at_max), ML_CASE(utf8_cut_backs_off_to_a_character_start),
             ML_CASE(utf8_cut_treats_stray_bytes_as_characters),
             ML_CASE(hash_matches_murmur3_x64_128), ML_CASE(hash_values_are_pinned),
             ML_CASE(hash_hex_agrees_with_the_two_halves),
             ML_CASE(words_are_counted_between_whitespace), ML_CASE(similarity_bounds_and_symmetry),
             ML_CASE(similarity_counts_shingles_once),
             ML_CASE(similarity_is_case_and_punctuation_blind),
             ML_CASE(template_splits_text_and_names), ML_CASE(template_literal_escape),
             ML_CASE(template_errors_point_at_the_braces), ML_CASE(template_single_braces_are_text))

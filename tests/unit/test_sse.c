/* Unit tests for the SSE parser (src/http/sse.c): recorded provider streams cut at every
 * byte, WHATWG/WebKit framing vectors, limits, and random input.
 * Fixtures live in tests/data/sse; ctest passes that directory's parent in ML_TEST_DATA. */
#include "http/sse.h"
#include "ml_test.h"

#include <stdint.h>
#include <stdlib.h>

/* ---- recording events ------------------------------------------------------------- */

struct rec_event {
  char *event, *data, *id;
  size_t event_len, data_len;
};

struct rec {
  struct rec_event *ev;
  size_t n, cap;
  int unterminated; /* callbacks whose data or event was not NUL-terminated */
  int stop_after;   /* ask the parser to stop after this many events; 0 = never */
};

static char *dup_bytes(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d == NULL)
    abort();
  if (n > 0)
    memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

static int rec_cb(void *ud, const struct sse_event *ev) {
  struct rec *r = ud;
  if (ev->data[ev->data_len] != '\0' || ev->event[ev->event_len] != '\0')
    r->unterminated++;
  if (r->n == r->cap) {
    r->cap = r->cap ? r->cap * 2 : 16;
    r->ev = realloc(r->ev, r->cap * sizeof *r->ev);
    if (r->ev == NULL)
      abort();
  }
  struct rec_event *e = &r->ev[r->n++];
  e->event = dup_bytes(ev->event, ev->event_len);
  e->event_len = ev->event_len;
  e->data = dup_bytes(ev->data, ev->data_len);
  e->data_len = ev->data_len;
  e->id = dup_bytes(ev->id, strlen(ev->id));
  return r->stop_after > 0 && r->n >= (size_t)r->stop_after;
}

static void rec_free(struct rec *r) {
  for (size_t i = 0; i < r->n; i++) {
    free(r->ev[i].event);
    free(r->ev[i].data);
    free(r->ev[i].id);
  }
  free(r->ev);
  memset(r, 0, sizeof *r);
}

static int rec_equal(const struct rec *a, const struct rec *b) {
  if (a->n != b->n)
    return 0;
  for (size_t i = 0; i < a->n; i++) {
    const struct rec_event *x = &a->ev[i], *y = &b->ev[i];
    if (x->event_len != y->event_len || memcmp(x->event, y->event, x->event_len) != 0)
      return 0;
    if (x->data_len != y->data_len || memcmp(x->data, y->data, x->data_len) != 0)
      return 0;
    if (strcmp(x->id, y->id) != 0)
      return 0;
  }
  return 1;
}

/* ---- feeding helpers ------------------------------------------------------------- */

/* Outcome of one parse: the events, the last return code and whether bytes were left. */
struct run {
  struct rec rec;
  int rc;
  int pending;
  long retry_ms;
};

/* Feed `s` cut at each offset in cuts[0..ncuts) (ascending); the last piece runs to the end. */
static struct run feed_cuts(const char *s, size_t len, const size_t *cuts, size_t ncuts) {
  struct run out;
  memset(&out, 0, sizeof out);
  struct sse_parser p;
  sse_init(&p, rec_cb, &out.rec);
  size_t at = 0;
  for (size_t i = 0; i <= ncuts; i++) {
    size_t end = i < ncuts ? cuts[i] : len;
    out.rc = sse_feed(&p, s + at, end - at);
    at = end;
  }
  out.pending = sse_pending(&p);
  out.retry_ms = p.retry_ms;
  sse_free(&p);
  return out;
}

static struct run feed_whole(const char *s, size_t len) { return feed_cuts(s, len, NULL, 0); }

static struct run feed_str(const char *s) { return feed_whole(s, strlen(s)); }

static struct run feed_bytes(const char *s, size_t len) {
  struct run out;
  memset(&out, 0, sizeof out);
  struct sse_parser p;
  sse_init(&p, rec_cb, &out.rec);
  for (size_t i = 0; i < len; i++)
    out.rc = sse_feed(&p, s + i, 1);
  out.pending = sse_pending(&p);
  out.retry_ms = p.retry_ms;
  sse_free(&p);
  return out;
}

/* Checks that cutting `s` into two chunks at every offset, and into single bytes, gives
 * exactly the events, return code and pending state of a whole feed. Returns the number
 * of mismatching feeds. */
static int mismatches_at_every_split(const char *s, size_t len) {
  struct run whole = feed_whole(s, len);
  int bad = whole.rec.unterminated;
  for (size_t at = 0; at <= len; at++) {
    struct run r = feed_cuts(s, len, &at, 1);
    if (!rec_equal(&whole.rec, &r.rec) || r.rc != whole.rc || r.pending != whole.pending) {
      if (bad == 0)
        fprintf(stderr, "  first mismatch when split at byte %zu\n", at);
      bad++;
    }
    rec_free(&r.rec);
  }
  struct run b = feed_bytes(s, len);
  if (!rec_equal(&whole.rec, &b.rec) || b.rc != whole.rc || b.pending != whole.pending) {
    fprintf(stderr, "  mismatch when fed byte by byte\n");
    bad++;
  }
  rec_free(&b.rec);
  rec_free(&whole.rec);
  return bad;
}

/* ---- fixtures -------------------------------------------------------------------- */

static char *read_fixture(const char *name, size_t *len) {
  char dirs[3][512];
  const char *env = getenv("ML_TEST_DATA");
  snprintf(dirs[0], sizeof dirs[0], "%s", env != NULL && env[0] != '\0' ? env : "tests/data");
  /* By hand, from anywhere: tests/unit/test_sse.c -> tests/data. */
  const char *file = __FILE__;
  const char *slash = strrchr(file, '/');
  int dirlen = slash != NULL ? (int)(slash - file) : 1;
  snprintf(dirs[1], sizeof dirs[1], "%.*s/../data", dirlen, slash != NULL ? file : ".");
  snprintf(dirs[2], sizeof dirs[2], "../data"); /* run from tests/unit */

  for (int i = 0; i < 3; i++) {
    char path[1024];
    int pn = snprintf(path, sizeof path, "%s/sse/%s", dirs[i], name);
    if (pn < 0 || (size_t)pn >= sizeof path)
      continue;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
      continue;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf != NULL && (got = fread(buf + n, 1, cap - n, f)) > 0) {
      n += got;
      if (n == cap) {
        cap *= 2;
        buf = realloc(buf, cap);
      }
    }
    fclose(f);
    if (buf == NULL)
      abort();
    *len = n;
    return buf;
  }
  fprintf(stderr, "  fixture sse/%s not found; set ML_TEST_DATA to tests/data\n", name);
  return NULL;
}

/* The same stream with every LF replaced by `eol` (to replay fixtures as CRLF or CR). */
static char *with_line_ends(const char *s, size_t len, const char *eol, size_t *out_len) {
  size_t el = strlen(eol), n = 0;
  char *d = malloc(len * el + 1);
  if (d == NULL)
    abort();
  for (size_t i = 0; i < len; i++) {
    if (s[i] == '\n') {
      memcpy(d + n, eol, el);
      n += el;
    } else {
      d[n++] = s[i];
    }
  }
  *out_len = n;
  return d;
}

/* ---- recorded provider streams ---------------------------------------------------- */

static void test_openai_stream_gives_one_event_per_chunk(void) {
  size_t len;
  char *s = read_fixture("openai_chat.txt", &len);
  ML_CHECK(s != NULL);
  if (s == NULL)
    return;
  struct run r = feed_whole(s, len);
  ML_CHECK_INT(r.rc, SSE_OK);
  ML_CHECK_INT(r.pending, 0);
  ML_CHECK_INT(r.rec.n, 8);
  ML_CHECK_INT(r.rec.unterminated, 0);
  if (r.rec.n == 8) {
    ML_CHECK_STR(r.rec.ev[0].event, "message");
    ML_CHECK(strstr(r.rec.ev[0].data, "\"role\":\"assistant\"") != NULL);
    ML_CHECK(strstr(r.rec.ev[2].data, "\\\"naïve café\\\"\\nthen") != NULL);
    ML_CHECK(strstr(r.rec.ev[3].data, "日本語で 🚀") != NULL);
    ML_CHECK(strstr(r.rec.ev[5].data, "\"finish_reason\":\"stop\"") != NULL);
    ML_CHECK(strstr(r.rec.ev[6].data, "\"choices\":[],\"usage\":{") != NULL);
    ML_CHECK_STR(r.rec.ev[7].data, "[DONE]");
    ML_CHECK_STR(r.rec.ev[7].id, "");
  }
  rec_free(&r.rec);
  free(s);
}

static void test_openai_stream_same_events_at_every_split_and_byte_by_byte(void) {
  size_t len;
  char *s = read_fixture("openai_chat.txt", &len);
  ML_CHECK(s != NULL);
  if (s == NULL)
    return;
  ML_CHECK_INT(mismatches_at_every_split(s, len), 0);
  free(s);
}

static void test_anthropic_stream_gives_named_events_in_order(void) {
  static const char *const names[] = {
      "message_start",       "content_block_start", "ping",
      "content_block_delta", "content_block_delta", "content_block_stop",
      "content_block_start", "content_block_delta", "content_block_delta",
      "content_block_delta", "content_block_stop",  "message_delta",
      "message_stop",
  };
  size_t want = sizeof names / sizeof names[0];
  size_t len;
  char *s = read_fixture("anthropic_messages.txt", &len);
  ML_CHECK(s != NULL);
  if (s == NULL)
    return;
  struct run r = feed_whole(s, len);
  ML_CHECK_INT(r.rc, SSE_OK);
  ML_CHECK_INT(r.pending, 0);
  ML_CHECK_INT(r.rec.n, want);
  for (size_t i = 0; i < want && i < r.rec.n; i++) {
    ML_CHECK_STR(r.rec.ev[i].event, names[i]);
    /* Each data payload repeats its event name as "type". */
    char type[64];
    snprintf(type, sizeof type, "\"type\":\"%s\"", names[i]);
    if (strcmp(names[i], "ping") != 0)
      ML_CHECK(strstr(r.rec.ev[i].data, type) != NULL);
  }
  if (r.rec.n == want)
    ML_CHECK(strstr(r.rec.ev[9].data, "ürich\\\", \\\"unit\\\": \\\"°C\\\"}") != NULL);
  rec_free(&r.rec);
  free(s);
}

static void test_anthropic_stream_same_events_at_every_split_and_byte_by_byte(void) {
  size_t len;
  char *s = read_fixture("anthropic_messages.txt", &len);
  ML_CHECK(s != NULL);
  if (s == NULL)
    return;
  ML_CHECK_INT(mismatches_at_every_split(s, len), 0);
  free(s);
}

static void test_recorded_streams_same_events_with_crlf_and_cr_line_ends(void) {
  static const char *const files[] = {"openai_chat.txt", "anthropic_messages.txt"};
  static const char *const eols[] = {"\r\n", "\r"};
  for (size_t f = 0; f < 2; f++) {
    size_t len;
    char *s = read_fixture(files[f], &len);
    ML_CHECK(s != NULL);
    if (s == NULL)
      continue;
    struct run lf = feed_whole(s, len);
    for (size_t e = 0; e < 2; e++) {
      size_t tlen;
      char *t = with_line_ends(s, len, eols[e], &tlen);
      struct run r = feed_whole(t, tlen);
      ML_CHECK(rec_equal(&lf.rec, &r.rec));
      ML_CHECK_INT(mismatches_at_every_split(t, tlen), 0);
      rec_free(&r.rec);
      free(t);
    }
    rec_free(&lf.rec);
    free(s);
  }
}

static void test_recorded_stream_cut_before_blank_line_is_pending(void) {
  size_t len;
  char *s = read_fixture("anthropic_messages.txt", &len);
  ML_CHECK(s != NULL);
  if (s == NULL)
    return;
  /* Drop the final blank line: message_stop never arrives, the HTTP layer must notice. */
  struct run r = feed_whole(s, len - 1);
  ML_CHECK_INT(r.rc, SSE_OK);
  ML_CHECK_INT(r.pending, 1);
  ML_CHECK(r.rec.n > 0 && strcmp(r.rec.ev[r.rec.n - 1].event, "message_delta") == 0);
  rec_free(&r.rec);
  free(s);
}

/* ---- framing vectors (after WebKit's event-stream.php) ----------------------------- */

static void test_comment_lines_are_ignored(void) {
  struct run r = feed_str(": hello\n:\ndata: a\n: between\ndata: b\n\n: trailing keep-alive\n");
  ML_CHECK_INT(r.rec.n, 1);
  if (r.rec.n == 1)
    ML_CHECK_STR(r.rec.ev[0].data, "a\nb");
  ML_CHECK_INT(r.pending, 0);
  rec_free(&r.rec);
}

static void test_space_before_colon_makes_an_unknown_field(void) {
  struct run r = feed_str("data : x\n\ndata: y\n\n");
  ML_CHECK_INT(r.rec.n, 1);
  if (r.rec.n == 1)
    ML_CHECK_STR(r.rec.ev[0].data, "y");
  rec_free(&r.rec);
}

static void test_bare_data_line_dispatches_empty_data(void) {
  struct run r = feed_str("data\n\n");
  ML_CHECK_INT(r.rec.n, 1);
  if (r.rec.n == 1) {
    ML_CHECK_STR(r.rec.ev[0].data, "");
    ML_CHECK_INT(r.rec.ev[0].data_len, 0);
    ML_CHECK_STR(r.rec.ev[0].event, "message");
  }
  rec_free(&r.rec);
}

static void test_bare_data_lines_add_empty_lines_to_data(void) {
  struct run r = feed_str("data\ndata\ndata: x\ndata\n\n");
  ML_CHECK_INT(r.rec.n, 1);
  if (r.rec.n == 1)
    ML_CHECK_STR(r.rec.ev[0].data, "\n\nx\n");
  rec_free(&r.rec);
}

static void test_only_one_leading_space_is_removed_from_value(void) {
  struct run r = feed_str("data:x\n\ndata:  two\n\ndata:\tt\n\nevent:  e\ndata: y \n\n");
  ML_CHECK_INT(r.rec.n, 4);
  if (r.rec.n == 4) {
    ML_CHECK_STR(r.rec.ev[0].data, "x");
    ML_CHECK_STR(r.rec.ev[1].data, " two");
    ML_CHECK_STR(r.rec.ev[2].data, "\tt");
    ML_CHECK_STR(r.rec.ev[3].event, " e");
    ML_CHECK_STR(r.rec.ev[3].data, "y ");
  }
  rec_free(&r.rec);
}

static void test_value_keeps_later_colons(void) {
  struct run r = feed_str("data: a: b:c\n\n");
  ML_CHECK_INT(r.rec.n, 1);
  if (r.rec.n == 1)
    ML_CHECK_STR(r.rec.ev[0].data, "a: b:c");
  rec_free(&r.rec);
}

static void test_unknown_fields_are_ignored(void) {
  struct run r = feed_str("foo: bar\nDATA: no\nData: no\ndata: yes\nextra\n\n");
  ML_CHECK_INT(r.rec.n, 1);
  if (r.rec.n == 1)
    ML_CHECK_STR(r.rec.ev[0].data, "yes");
  rec_free(&r.rec);
}

static void test_cr_only_line_endings(void) {
  struct run r = feed_str("event: e\rdata: a\rdata: b\r\rdata: c\r\r");
  ML_CHECK_INT(r.rec.n, 2);
  if (r.rec.n == 2) {
    ML_CHECK_STR(r.rec.ev[0].event, "e");
    ML_CHECK_STR(r.rec.ev[0].data, "a\nb");
    ML_CHECK_STR(r.rec.ev[1].event, "message");
    ML_CHECK_STR(r.rec.ev[1].data, "c");
  }
  ML_CHECK_INT(r.pending, 0);
  rec_free(&r.rec);
}

static void test_crlf_line_endings(void) {
  struct run r = feed_str("data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n");
  ML_CHECK_INT(r.rec.n, 2);
  if (r.rec.n == 2) {
    ML_CHECK_STR(r.rec.ev[0].data, "a\nb");
    ML_CHECK_STR(r.rec.ev[1].data, "c");
  }
  rec_free(&r.rec);
}

static void test_mixed_line_endings(void) {
  const char *s = "data: a\rdata: b\ndata: c\r\n\n\rdata: d\r\r\n";
  struct run r = feed_str(s);
  ML_CHECK_INT(r.rec.n, 2);
  if (r.rec.n == 2) {
    ML_CHECK_STR(r.rec.ev[0].data, "a\nb\nc");
    ML_CHECK_STR(r.rec.ev[1].data, "d");
  }
  ML_CHECK_INT(mismatches_at_every_split(s, strlen(s)), 0);
  rec_free(&r.rec);
}

static void test_crlf_split_across_chunks_is_one_line_end(void) {
  /* Were the LF taken as a second line end, "a" would be dispatched on its own. */
  const char *s = "data: a\r\ndata: b\r\n\r\n";
  size_t cut = strlen("data: a\r");
  struct run r = feed_cuts(s, strlen(s), &cut, 1);
  ML_CHECK_INT(r.rec.n, 1);
  if (r.rec.n == 1)
    ML_CHECK_STR(r.rec.ev[0].data, "a\nb");
  rec_free(&r.rec);

  /* The blank line itself split between CR and LF dispatches exactly once. */
  const char *t = "data: x\r\n\r\ndata: y\r\n\r\n";
  size_t cuts[] = {strlen("data: x\r\n\r"), strlen("data: x\r\n\r\ndata: y\r\n\r")};
  r = feed_cuts(t, strlen(t), cuts, 2);
  ML_CHECK_INT(r.rec.n, 2);
  ML_CHECK_INT(r.pending, 0);
  rec_free(&r.rec);
}

static void test_cr_at_chunk_end_then_other_byte_is_a_line_end(void) {
  const char *s = "data: a\rdata: b\r\r";
  size_t cut = strlen("data: a\r");
  struct run r = feed_cuts(s, strlen(s), &cut, 1);
  ML_CHECK_INT(r.rec.n, 1);
  if (r.rec.n == 1)
    ML_CHECK_STR(r.rec.ev[0].data, "a\nb");
  rec_free(&r.rec);
}

static void test_event_name_split_across_chunks(void) {
  const char *s = "event: content_block_delta\ndata: {}\n\n";
  size_t cuts[] = {3, 9, 14};
  struct run r = feed_cuts(s, strlen(s), cuts, 3);
  ML_CHECK_INT(r.rec.n, 1);
  if (r.rec.n == 1)
    ML_CHECK_STR(r.rec.ev[0].event, "content_block_delta");
  rec_free(&r.rec);
  ML_CHECK_INT(mismatches_at_every_split(s, strlen(s)), 0);
}

static void test_multiline_data_joined_with_newline(void) {
  struct run r = feed_str("data: line one\ndata: line two\ndata:\ndata: line four\n\n");
  ML_CHECK_INT(r.rec.n, 1);
  if (r.rec.n == 1)
    ML_CHECK_STR(r.rec.ev[0].data, "line one\nline two\n\nline four");
  rec_free(&r.rec);
}

static void test_event_without_data_is_not_dispatched_and_resets_type(void) {
  struct run r = feed_str("event: lonely\n\ndata: x\n\n");
  ML_CHECK_INT(r.rec.n, 1);
  if (r.rec.n == 1)
    ML_CHECK_STR(r.rec.ev[0].event, "message");
  rec_free(&r.rec);
}

static void test_event_type_resets_after_dispatch(void) {
  struct run r = feed_str("event: first\ndata: 1\n\ndata: 2\n\nevent: a\nevent: b\ndata: 3\n\n");
  ML_CHECK_INT(r.rec.n, 3);
  if (r.rec.n == 3) {
    ML_CHECK_STR(r.rec.ev[0].event, "first");
    ML_CHECK_STR(r.rec.ev[1].event, "message");
    ML_CHECK_STR(r.rec.ev[2].event, "b");
  }
  rec_free(&r.rec);
}

static void test_empty_event_name_means_message(void) {
  struct run r = feed_str("event\ndata: x\n\nevent:\ndata: y\n\n");
  ML_CHECK_INT(r.rec.n, 2);
  if (r.rec.n == 2) {
    ML_CHECK_STR(r.rec.ev[0].event, "message");
    ML_CHECK_STR(r.rec.ev[1].event, "message");
  }
  rec_free(&r.rec);
}

static void test_blank_lines_alone_dispatch_nothing(void) {
  struct run r = feed_str("\n\n\r\n\r\r\n");
  ML_CHECK_INT(r.rec.n, 0);
  ML_CHECK_INT(r.pending, 0);
  rec_free(&r.rec);
}

static void test_retry_with_only_digits_sets_delay(void) {
  struct run r = feed_str("retry: 2500\n\n");
  ML_CHECK_INT(r.retry_ms, 2500);
  ML_CHECK_INT(r.rec.n, 0);
  rec_free(&r.rec);
  r = feed_str("retry: 100\nretry: 7\n");
  ML_CHECK_INT(r.retry_ms, 7);
  rec_free(&r.rec);
}

static void test_retry_with_other_characters_is_ignored(void) {
  static const char *const bad[] = {"retry: 12a\n",  "retry: -5\n",  "retry: 1.5\n",
                                    "retry:\n",      "retry\n",      "retry:  5\n",
                                    "retry: 5 \n",   "retry: +5\n",  "retry: ５\n"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char s[64];
    snprintf(s, sizeof s, "retry: 300\n%s", bad[i]);
    struct run r = feed_str(s);
    if (r.retry_ms != 300)
      fprintf(stderr, "  case %zu\n", i);
    ML_CHECK_INT(r.retry_ms, 300);
    rec_free(&r.rec);
  }
  struct run r = feed_str("retry: x\n");
  ML_CHECK_INT(r.retry_ms, -1);
  rec_free(&r.rec);
}

static void test_retry_too_large_saturates(void) {
  struct run r = feed_str("retry: 99999999999999999999999999999\n");
  ML_CHECK(r.retry_ms > 0);
  rec_free(&r.rec);
}

static void test_id_persists_across_events_until_changed(void) {
  struct run r = feed_str("id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: 9\n\ndata: d\n\n");
  ML_CHECK_INT(r.rec.n, 4);
  if (r.rec.n == 4) {
    ML_CHECK_STR(r.rec.ev[0].id, "1");
    ML_CHECK_STR(r.rec.ev[1].id, "1");
    ML_CHECK_STR(r.rec.ev[2].id, "");
    ML_CHECK_STR(r.rec.ev[3].id, "9");
  }
  rec_free(&r.rec);
}

static void test_id_containing_nul_is_ignored(void) {
  const char s[] = "id: keep\n\nid: ba\0d\ndata: x\n\n";
  struct run r = feed_whole(s, sizeof s - 1);
  ML_CHECK_INT(r.rec.n, 1);
  if (r.rec.n == 1)
    ML_CHECK_STR(r.rec.ev[0].id, "keep");
  rec_free(&r.rec);
}

static void test_data_with_embedded_nul_is_delivered_whole(void) {
  const char s[] = "data: a\0b\ndata: \0\n\n";
  struct run r = feed_whole(s, sizeof s - 1);
  ML_CHECK_INT(r.rec.n, 1);
  ML_CHECK_INT(r.rec.unterminated, 0);
  if (r.rec.n == 1) {
    ML_CHECK_INT(r.rec.ev[0].data_len, 5);
    ML_CHECK(memcmp(r.rec.ev[0].data, "a\0b\n\0", 5) == 0);
  }
  rec_free(&r.rec);
  ML_CHECK_INT(mismatches_at_every_split(s, sizeof s - 1), 0);
}

static void test_bom_is_stripped_once_at_start(void) {
  const char *s = "\xEF\xBB\xBF"
                  "data: a\n\n\xEF\xBB\xBF"
                  "data: b\n\n";
  struct run r = feed_str(s);
  /* The second BOM belongs to the field name "\xEF\xBB\xBFdata", which is unknown. */
  ML_CHECK_INT(r.rec.n, 1);
  if (r.rec.n == 1)
    ML_CHECK_STR(r.rec.ev[0].data, "a");
  rec_free(&r.rec);
  ML_CHECK_INT(mismatches_at_every_split(s, strlen(s)), 0);

  r = feed_str("\xEF\xBB\xBF\xEF\xBB\xBF"
               "data: twice\n\n");
  ML_CHECK_INT(r.rec.n, 0);
  rec_free(&r.rec);
}

static void test_bom_split_across_chunks_is_stripped(void) {
  const char *s = "\xEF\xBB\xBF"
                  "data: x\n\n";
  size_t cuts[] = {1, 2};
  struct run r = feed_cuts(s, strlen(s), cuts, 2);
  ML_CHECK_INT(r.rec.n, 1);
  if (r.rec.n == 1)
    ML_CHECK_STR(r.rec.ev[0].data, "x");
  rec_free(&r.rec);
}

static void test_incomplete_bom_is_kept_as_content(void) {
  /* "\xEF\xBB" then "data" is one unknown field name; dropping the two bytes would
   * wrongly turn it into a data line. */
  const char *s = "\xEF\xBB"
                  "data: x\n\ndata: y\n\n";
  struct run r = feed_str(s);
  ML_CHECK_INT(r.rec.n, 1);
  if (r.rec.n == 1)
    ML_CHECK_STR(r.rec.ev[0].data, "y");
  rec_free(&r.rec);
  ML_CHECK_INT(mismatches_at_every_split(s, strlen(s)), 0);

  struct sse_parser p;
  sse_init(&p, NULL, NULL);
  ML_CHECK_INT(sse_feed(&p, "\xEF\xBB", 2), SSE_OK);
  ML_CHECK_INT(sse_pending(&p), 1);
  sse_free(&p);
}

static void test_partial_final_event_is_not_dispatched_and_pending(void) {
  struct run r = feed_str("data: done\n\ndata: half");
  ML_CHECK_INT(r.rec.n, 1);
  ML_CHECK_INT(r.pending, 1);
  rec_free(&r.rec);
  r = feed_str("data: done\n\ndata: whole line but no blank\n");
  ML_CHECK_INT(r.rec.n, 1);
  ML_CHECK_INT(r.pending, 1);
  rec_free(&r.rec);
  r = feed_str("data: done\n\nevent: only_a_name\n");
  ML_CHECK_INT(r.pending, 1);
  rec_free(&r.rec);
}

static void test_nothing_pending_after_complete_events_and_comments(void) {
  struct sse_parser p;
  sse_init(&p, NULL, NULL);
  ML_CHECK_INT(sse_pending(&p), 0);
  const char *s = "data: a\n\n: ping\n";
  ML_CHECK_INT(sse_feed(&p, s, strlen(s)), SSE_OK);
  ML_CHECK_INT(sse_pending(&p), 0);
  ML_CHECK_INT(p.events, 1);
  ML_CHECK_INT(sse_feed(&p, ":", 1), SSE_OK);
  ML_CHECK_INT(sse_pending(&p), 1); /* a line in progress may still be anything */
  sse_free(&p);
  sse_free(&p); /* twice is harmless */
}

static void test_empty_feed_is_harmless(void) {
  struct sse_parser p;
  sse_init(&p, NULL, NULL);
  ML_CHECK_INT(sse_feed(&p, "", 0), SSE_OK);
  ML_CHECK_INT(sse_feed(&p, NULL, 0), SSE_OK);
  ML_CHECK_INT(sse_pending(&p), 0);
  ML_CHECK(p.line == NULL && p.data == NULL); /* nothing allocated until used */
  sse_free(&p);
}

/* ---- limits and hostile input ---------------------------------------------------- */

static void test_line_over_max_line_fails_and_stays_failed(void) {
  for (int bytewise = 0; bytewise < 2; bytewise++) {
    struct rec rec;
    memset(&rec, 0, sizeof rec);
    struct sse_parser p;
    sse_init(&p, rec_cb, &rec);
    p.max_line = 16;
    const char *ok = "data: 0123456789\n\n"; /* exactly 16 bytes of line */
    const char *big = ": 0123456789abcdef\n";
    int rc = SSE_OK;
    if (bytewise) {
      for (size_t i = 0; ok[i] != '\0'; i++)
        rc = sse_feed(&p, ok + i, 1);
      ML_CHECK_INT(rc, SSE_OK);
      for (size_t i = 0; big[i] != '\0'; i++)
        rc = sse_feed(&p, big + i, 1);
    } else {
      ML_CHECK_INT(sse_feed(&p, ok, strlen(ok)), SSE_OK);
      rc = sse_feed(&p, big, strlen(big));
    }
    ML_CHECK_INT(rc, SSE_ETOOBIG);
    ML_CHECK_INT(rec.n, 1);
    ML_CHECK_INT(sse_feed(&p, "data: x\n\n", 9), SSE_ETOOBIG);
    ML_CHECK_INT(rec.n, 1);
    sse_free(&p);
    rec_free(&rec);
  }
}

static void test_unterminated_line_over_max_line_fails_early(void) {
  struct sse_parser p;
  sse_init(&p, NULL, NULL);
  p.max_line = 1000;
  char chunk[256];
  memset(chunk, 'x', sizeof chunk);
  int rc = SSE_OK;
  for (int i = 0; i < 8 && rc == SSE_OK; i++)
    rc = sse_feed(&p, chunk, sizeof chunk);
  ML_CHECK_INT(rc, SSE_ETOOBIG);
  ML_CHECK(p.line_cap <= 1024); /* never buffered past the limit */
  sse_free(&p);
}

static void test_nothing_pending_once_failed(void) {
  /* Found by fuzzing: what is buffered at the moment of failure depends on chunking, so a
   * failed parser reports its error code and never a pending event. */
  struct sse_parser p;
  sse_init(&p, NULL, NULL);
  p.max_line = 8;
  ML_CHECK_INT(sse_feed(&p, "data: 1", 7), SSE_OK);
  ML_CHECK_INT(sse_pending(&p), 1);
  ML_CHECK_INT(sse_feed(&p, "23456789", 8), SSE_ETOOBIG);
  ML_CHECK_INT(sse_pending(&p), 0);
  sse_free(&p);
}

static void test_event_over_max_event_fails(void) {
  struct rec rec;
  memset(&rec, 0, sizeof rec);
  struct sse_parser p;
  sse_init(&p, rec_cb, &rec);
  p.max_event = 10;
  /* Ten bytes of data including the joining newline is allowed... */
  ML_CHECK_INT(sse_feed(&p, "data: 1234\ndata: 56789\n\n", 24), SSE_OK);
  ML_CHECK_INT(rec.n, 1);
  /* ...eleven is not, even though every line is short. */
  ML_CHECK_INT(sse_feed(&p, "data: 12345\ndata: 6789\ndata: \n", 30), SSE_ETOOBIG);
  ML_CHECK_INT(sse_feed(&p, "\n", 1), SSE_ETOOBIG);
  ML_CHECK_INT(rec.n, 1);
  ML_CHECK_STR(sse_strerror(SSE_ETOOBIG), "SSE line or event exceeds the configured limit");
  sse_free(&p);
  rec_free(&rec);
}

static void test_callback_abort_stops_parsing_and_is_sticky(void) {
  struct rec rec;
  memset(&rec, 0, sizeof rec);
  rec.stop_after = 2;
  struct sse_parser p;
  sse_init(&p, rec_cb, &rec);
  const char *s = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
  ML_CHECK_INT(sse_feed(&p, s, strlen(s)), SSE_EABORT);
  ML_CHECK_INT(rec.n, 2);
  ML_CHECK_INT(sse_feed(&p, "data: 4\n\n", 9), SSE_EABORT);
  ML_CHECK_INT(rec.n, 2);
  sse_free(&p);
  rec_free(&rec);
}

static void test_strerror_names_every_code(void) {
  ML_CHECK(strstr(sse_strerror(SSE_EABORT), "callback") != NULL);
  ML_CHECK(strstr(sse_strerror(SSE_ENOMEM), "memory") != NULL);
  ML_CHECK(sse_strerror(SSE_OK) != NULL);
  ML_CHECK(sse_strerror(-99) != NULL);
}

static void test_big_event_buffer_is_released_after_dispatch(void) {
  size_t n = 900 * 1024; /* under the default 1 MiB line limit */
  char *s = malloc(n + 16);
  ML_CHECK(s != NULL);
  if (s == NULL)
    return;
  memcpy(s, "data: ", 6);
  memset(s + 6, 'z', n);
  memcpy(s + 6 + n, "\n\n", 2);
  struct sse_parser p;
  struct rec rec;
  memset(&rec, 0, sizeof rec);
  sse_init(&p, rec_cb, &rec);
  /* 16 KiB chunks, as libcurl delivers them; the line straddles every chunk. */
  size_t total = n + 8;
  for (size_t at = 0; at < total; at += 16384) {
    size_t k = total - at < 16384 ? total - at : 16384;
    ML_CHECK_INT(sse_feed(&p, s + at, k), SSE_OK);
  }
  ML_CHECK_INT(rec.n, 1);
  if (rec.n == 1)
    ML_CHECK_INT(rec.ev[0].data_len, n);
  ML_CHECK(p.data_cap <= 64 * 1024);
  ML_CHECK(p.line_cap <= 64 * 1024);
  sse_free(&p);
  rec_free(&rec);
  free(s);
}

static void test_long_line_fed_byte_by_byte_is_linear(void) {
  /* Quadratic rescanning would take minutes here; linear parsing takes milliseconds. */
  size_t n = 1 << 20;
  struct sse_parser p;
  struct rec rec;
  memset(&rec, 0, sizeof rec);
  sse_init(&p, rec_cb, &rec);
  p.max_line = n + 16;
  ML_CHECK_INT(sse_feed(&p, "data: ", 6), SSE_OK);
  for (size_t i = 0; i < n; i++)
    sse_feed(&p, "q", 1);
  ML_CHECK_INT(sse_feed(&p, "\r", 1), SSE_OK);
  ML_CHECK_INT(sse_feed(&p, "\n", 1), SSE_OK);
  ML_CHECK_INT(sse_feed(&p, "\r\n", 2), SSE_OK);
  ML_CHECK_INT(rec.n, 1);
  if (rec.n == 1)
    ML_CHECK_INT(rec.ev[0].data_len, n);
  sse_free(&p);
  rec_free(&rec);
}

/* A fixed xorshift generator keeps the random test reproducible. */
static uint32_t rng_next(uint32_t *st) {
  uint32_t x = *st;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  *st = x;
  return x;
}

static void test_random_bytes_never_crash_and_split_the_same(void) {
  /* Mostly grammar fragments so that fields and events really happen; some noise. */
  static const char *const tokens[] = {
      "data:", "data: x", "data", "event: e", "event:", "id: 7", "id", "retry: 50", "retry: x",
      ":",     " ",       "\n",   "\n",       "\r",     "\r\n",  "\xEF\xBB\xBF", "\xEF",     "yz",
  };
  size_t ntok = sizeof tokens / sizeof tokens[0];
  uint32_t st = 0x9E3779B9u;
  int bad = 0;
  size_t events = 0;
  for (int round = 0; round < 200; round++) {
    size_t len = rng_next(&st) % 2048;
    char *buf = malloc(len + 16);
    if (buf == NULL)
      abort();
    int noise = round % 4 == 0; /* every fourth buffer is plain random bytes */
    size_t n = 0;
    while (n < len) {
      uint32_t v = rng_next(&st);
      if (noise || v % 16 == 0) {
        buf[n++] = (char)(v >> 8); /* any byte, NUL included */
        continue;
      }
      const char *t = tokens[(v >> 4) % ntok];
      size_t tl = strlen(t);
      if (tl > len - n)
        tl = len - n;
      memcpy(buf + n, t, tl);
      n += tl;
    }
    struct run whole = feed_whole(buf, len);
    size_t cuts[8];
    size_t ncuts = rng_next(&st) % 8;
    for (size_t i = 0; i < ncuts; i++)
      cuts[i] = len ? rng_next(&st) % (len + 1) : 0;
    for (size_t i = 1; i < ncuts; i++) /* insertion sort: cuts must ascend */
      for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
        size_t t = cuts[j];
        cuts[j] = cuts[j - 1];
        cuts[j - 1] = t;
      }
    struct run split = feed_cuts(buf, len, cuts, ncuts);
    if (!rec_equal(&whole.rec, &split.rec) || whole.rc != split.rc ||
        whole.pending != split.pending || whole.rec.unterminated != 0)
      bad++;
    events += whole.rec.n;
    rec_free(&whole.rec);
    rec_free(&split.rec);
    free(buf);
  }
  ML_CHECK_INT(bad, 0);
  ML_CHECK(events > 100); /* the generator really exercises dispatch */
}

ML_TEST_MAIN(ML_CASE(test_openai_stream_gives_one_event_per_chunk),
             ML_CASE(test_openai_stream_same_events_at_every_split_and_byte_by_byte),
             ML_CASE(test_anthropic_stream_gives_named_events_in_order),
             ML_CASE(test_anthropic_stream_same_events_at_every_split_and_byte_by_byte),
             ML_CASE(test_recorded_streams_same_events_with_crlf_and_cr_line_ends),
             ML_CASE(test_recorded_stream_cut_before_blank_line_is_pending),
             ML_CASE(test_comment_lines_are_ignored),
             ML_CASE(test_space_before_colon_makes_an_unknown_field),
             ML_CASE(test_bare_data_line_dispatches_empty_data),
             ML_CASE(test_bare_data_lines_add_empty_lines_to_data),
             ML_CASE(test_only_one_leading_space_is_removed_from_value),
             ML_CASE(test_value_keeps_later_colons),
             ML_CASE(test_unknown_fields_are_ignored),
             ML_CASE(test_cr_only_line_endings),
             ML_CASE(test_crlf_line_endings),
             ML_CASE(test_mixed_line_endings),
             ML_CASE(test_crlf_split_across_chunks_is_one_line_end),
             ML_CASE(test_cr_at_chunk_end_then_other_byte_is_a_line_end),
             ML_CASE(test_event_name_split_across_chunks),
             ML_CASE(test_multiline_data_joined_with_newline),
             ML_CASE(test_event_without_data_is_not_dispatched_and_resets_type),
             ML_CASE(test_event_type_resets_after_dispatch),
             ML_CASE(test_empty_event_name_means_message),
             ML_CASE(test_blank_lines_alone_dispatch_nothing),
             ML_CASE(test_retry_with_only_digits_sets_delay),
             ML_CASE(test_retry_with_other_characters_is_ignored),
             ML_CASE(test_retry_too_large_saturates),
             ML_CASE(test_id_persists_across_events_until_changed),
             ML_CASE(test_id_containing_nul_is_ignored),
             ML_CASE(test_data_with_embedded_nul_is_delivered_whole),
             ML_CASE(test_bom_is_stripped_once_at_start),
             ML_CASE(test_bom_split_across_chunks_is_stripped),
             ML_CASE(test_incomplete_bom_is_kept_as_content),
             ML_CASE(test_partial_final_event_is_not_dispatched_and_pending),
             ML_CASE(test_nothing_pending_after_complete_events_and_comments),
             ML_CASE(test_empty_feed_is_harmless),
             ML_CASE(test_line_over_max_line_fails_and_stays_failed),
             ML_CASE(test_unterminated_line_over_max_line_fails_early),
             ML_CASE(test_nothing_pending_once_failed),
             ML_CASE(test_event_over_max_event_fails),
             ML_CASE(test_callback_abort_stops_parsing_and_is_sticky),
             ML_CASE(test_strerror_names_every_code),
             ML_CASE(test_big_event_buffer_is_released_after_dispatch),
             ML_CASE(test_long_line_fed_byte_by_byte_is_linear),
             ML_CASE(test_random_bytes_never_crash_and_split_the_same))

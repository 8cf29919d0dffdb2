/* Unit tests for the mock server's HTTP/1.1 request parser (src/mock/http_req.c):
 * well-formed requests, requests split at every byte and pipelined, and hostile input
 * that must be rejected with the right status. */
#include "ml_test.h"
#include "mock/http_req.h"

#include <stdint.h>
#include <stdlib.h>

/* Parse a whole request given as one string (length from strlen unless len is given). */
static int parse_str(struct mreq *r, const char *s, size_t len) {
  mreq_init(r, 0);
  return mreq_parse(r, s, len ? len : strlen(s));
}

static int span_is(const char *buf, struct mreq_span s, const char *want) {
  return s.len == strlen(want) && memcmp(buf + s.off, want, s.len) == 0;
}

static const char *POST_REQ = "POST /v1/chat/completions HTTP/1.1\r\n"
                              "Host: 127.0.0.1\r\n"
                              "Content-Type: application/json\r\n"
                              "Content-Length: 13\r\n"
                              "\r\n"
                              "{\"model\":\"m\"}";

static void get_request_parses(void) {
  struct mreq r;
  const char *s = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  ML_CHECK_INT(parse_str(&r, s, 0), MREQ_DONE);
  ML_CHECK(span_is(s, r.method, "GET"));
  ML_CHECK(span_is(s, r.target, "/health"));
  ML_CHECK_INT(r.version_minor, 1);
  ML_CHECK_INT(r.keep_alive, 1);
  ML_CHECK_INT(r.content_length, 0);
  ML_CHECK_INT(r.total, strlen(s));
  ML_CHECK_INT(r.nheaders, 1);
}

static void post_body_is_located(void) {
  struct mreq r;
  ML_CHECK_INT(parse_str(&r, POST_REQ, 0), MREQ_DONE);
  ML_CHECK(span_is(POST_REQ, r.method, "POST"));
  ML_CHECK(span_is(POST_REQ, r.body, "{\"model\":\"m\"}"));
  ML_CHECK_INT(r.total, strlen(POST_REQ));
}

static void header_lookup_is_case_insensitive_and_trimmed(void) {
  struct mreq r;
  const char *s = "GET / HTTP/1.1\r\nX-Mock-Fault: \t 429 \t\r\nhost:h\r\n\r\n";
  const char *v = NULL;
  size_t n = 0;
  ML_CHECK_INT(parse_str(&r, s, 0), MREQ_DONE);
  ML_CHECK(mreq_header(&r, s, "x-mock-fault", &v, &n));
  ML_CHECK(n == 3 && memcmp(v, "429", 3) == 0);
  ML_CHECK(mreq_header(&r, s, "HOST", &v, &n));
  ML_CHECK(n == 1 && v[0] == 'h');
  ML_CHECK(!mreq_header(&r, s, "content-length", &v, &n));
}

/* Feed the request one byte more at a time, each time from a freshly allocated copy so
 * that AddressSanitizer catches any pointer kept into an old buffer. */
static void split_at_every_byte(void) {
  size_t len = strlen(POST_REQ);
  struct mreq r;
  mreq_init(&r, 0);
  int rc = MREQ_AGAIN;
  for (size_t n = 1; n <= len; n++) {
    char *copy = malloc(n);
    memcpy(copy, POST_REQ, n);
    rc = mreq_parse(&r, copy, n);
    if (n < len)
      ML_CHECK_INT(rc, MREQ_AGAIN);
    else
      ML_CHECK(span_is(copy, r.body, "{\"model\":\"m\"}"));
    free(copy);
  }
  ML_CHECK_INT(rc, MREQ_DONE);
  ML_CHECK_INT(r.total, len);
}

/* Every split point into two parts, parsing from scratch each time. */
static void split_into_two_at_every_byte(void) {
  size_t len = strlen(POST_REQ);
  for (size_t cut = 0; cut <= len; cut++) {
    struct mreq r;
    mreq_init(&r, 0);
    int first = mreq_parse(&r, POST_REQ, cut);
    ML_CHECK_INT(first, cut == len ? MREQ_DONE : MREQ_AGAIN);
    ML_CHECK_INT(mreq_parse(&r, POST_REQ, len), MREQ_DONE);
    ML_CHECK_INT(r.content_length, 13);
  }
}

static void pipelined_requests_in_one_read(void) {
  char buf[1024];
  int n = snprintf(buf, sizeof buf, "%s%s%s", "GET /a HTTP/1.1\r\n\r\n", POST_REQ,
                   "GET /c HTTP/1.1\r\nConnection: close\r\n\r\nGET /d");
  size_t off = 0, len = (size_t)n;
  struct mreq r;
  mreq_init(&r, 0);
  const char *want[] = {"/a", "/v1/chat/completions", "/c"};
  for (int i = 0; i < 3; i++) {
    ML_CHECK_INT(mreq_parse(&r, buf + off, len - off), MREQ_DONE);
    ML_CHECK(span_is(buf + off, r.target, want[i]));
    ML_CHECK_INT(r.keep_alive, i < 2);
    off += r.total;
    mreq_reset(&r);
  }
  ML_CHECK_INT(mreq_parse(&r, buf + off, len - off), MREQ_AGAIN);
}

/* A stream of pipelined requests fed in pieces of every size from 1 to 40 bytes. */
static void pipelined_stream_in_small_pieces(void) {
  char stream[2048];
  size_t len = 0;
  for (int i = 0; i < 5; i++) {
    size_t n = strlen(POST_REQ);
    memcpy(stream + len, POST_REQ, n);
    len += n;
  }
  for (size_t piece = 1; piece <= 40; piece++) {
    struct mreq r;
    mreq_init(&r, 0);
    size_t have = 0, start = 0;
    int done = 0;
    while (have < len) {
      have = have + piece < len ? have + piece : len;
      for (;;) {
        int rc = mreq_parse(&r, stream + start, have - start);
        if (rc != MREQ_DONE) {
          ML_CHECK_INT(rc, MREQ_AGAIN);
          break;
        }
        done++;
        start += r.total;
        mreq_reset(&r);
      }
    }
    ML_CHECK_INT(done, 5);
    ML_CHECK_INT(start, len);
  }
}

static void missing_body_waits_for_more(void) {
  struct mreq r;
  const char *s = "POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345";
  ML_CHECK_INT(parse_str(&r, s, 0), MREQ_AGAIN);
  ML_CHECK_INT(r.headers_done, 1);
  ML_CHECK_INT(r.content_length, 10);
}

static void expect_continue_is_reported_before_the_body(void) {
  struct mreq r;
  const char *s = "POST /x HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n";
  ML_CHECK_INT(parse_str(&r, s, 0), MREQ_AGAIN);
  ML_CHECK_INT(r.expect_continue, 1);
  const char *s10 = "POST /x HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";
  ML_CHECK_INT(parse_str(&r, s10, 0), MREQ_AGAIN);
  ML_CHECK_INT(r.expect_continue, 0);
}

static void oversized_header_block_is_431(void) {
  size_t n = MREQ_DEFAULT_MAX_HEADER + 100;
  char *s = malloc(n);
  const char *head = "GET / HTTP/1.1\r\nX-Big: ";
  memcpy(s, head, strlen(head));
  memset(s + strlen(head), 'a', n - strlen(head));
  struct mreq r;
  /* Rejected before any end of headers arrives: no unbounded buffering. */
  ML_CHECK_INT(parse_str(&r, s, n), MREQ_EHEADERS);
  memcpy(s + n - 4, "\r\n\r\n", 4);
  ML_CHECK_INT(parse_str(&r, s, n), MREQ_EHEADERS);
  /* Just under the limit is fine. */
  size_t m = MREQ_DEFAULT_MAX_HEADER;
  memcpy(s + m - 4, "\r\n\r\n", 4);
  ML_CHECK_INT(parse_str(&r, s, m), MREQ_DONE);
  free(s);
}

static void too_many_headers_is_431(void) {
  char buf[8192];
  size_t len = 0;
  len += (size_t)snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\n");
  for (int i = 0; i <= MREQ_MAX_HEADERS; i++)
    len += (size_t)snprintf(buf + len, sizeof buf - len, "X-%d: v\r\n", i);
  len += (size_t)snprintf(buf + len, sizeof buf - len, "\r\n");
  struct mreq r;
  ML_CHECK_INT(parse_str(&r, buf, len), MREQ_EHEADERS);
}

static void bad_request_lines_are_400(void) {
  static const char *bad[] = {
      "GET  / HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1 \r\n\r\n",
      "GET /\r\n\r\n",
      "GET / HTTX/1.1\r\n\r\n",
      "G@T / HTTP/1.1\r\n\r\n",
      " GET / HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.\r\n\r\n",
      "GET / HTTP/1.1x\r\n\r\n",
      "GET /a\tb HTTP/1.1\r\n\r\n",
      "GET /\x7f HTTP/1.1\r\n\r\n",
      "GET /\xc3\xa9 HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\r\n\r\n",
      "\x16\x03\x01 / HTTP/1.1\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct mreq r;
    int rc = parse_str(&r, bad[i], 0);
    if (rc != MREQ_EBAD)
      fprintf(stderr, "  case %zu\n", i);
    ML_CHECK_INT(rc, MREQ_EBAD);
    ML_CHECK(r.error != NULL);
  }
}

static void other_http_versions_are_505(void) {
  struct mreq r;
  ML_CHECK_INT(parse_str(&r, "GET / HTTP/2.0\r\n\r\n", 0), MREQ_EVERSION);
  ML_CHECK_INT(parse_str(&r, "GET / HTTP/0.9\r\n\r\n", 0), MREQ_EVERSION);
  ML_CHECK_INT(parse_str(&r, "GET / HTTP/1.2\r\n\r\n", 0), MREQ_DONE);
  ML_CHECK_INT(r.version_minor, 1);
}

static int parse_with_length(const char *value_lines) {
  char buf[512];
  int n = snprintf(buf, sizeof buf, "POST / HTTP/1.1\r\n%s\r\nab", value_lines);
  struct mreq r;
  mreq_init(&r, 0);
  return mreq_parse(&r, buf, (size_t)n);
}

static void invalid_content_lengths_are_400(void) {
  ML_CHECK_INT(parse_with_length("Content-Length: -1\r\n"), MREQ_EBAD);
  ML_CHECK_INT(parse_with_length("Content-Length: +2\r\n"), MREQ_EBAD);
  ML_CHECK_INT(parse_with_length("Content-Length:\r\n"), MREQ_EBAD);
  ML_CHECK_INT(parse_with_length("Content-Length: 0x2\r\n"), MREQ_EBAD);
  ML_CHECK_INT(parse_with_length("Content-Length: 1 1\r\n"), MREQ_EBAD);
  ML_CHECK_INT(parse_with_length("Content-Length: 2,2\r\n"), MREQ_EBAD);
  ML_CHECK_INT(parse_with_length("Content-Length : 2\r\n"), MREQ_EBAD);
}

static void duplicate_content_length_must_agree(void) {
  ML_CHECK_INT(parse_with_length("Content-Length: 2\r\nContent-Length: 2\r\n"), MREQ_DONE);
  ML_CHECK_INT(parse_with_length("Content-Length: 2\r\nContent-Length: 1\r\n"), MREQ_EBAD);
  ML_CHECK_INT(parse_with_length("Content-Length: 2\r\nContent-Length: 99999999999999999999\r\n"),
               MREQ_EBAD);
}

static void overflowing_or_large_content_length_is_413(void) {
  ML_CHECK_INT(parse_with_length("Content-Length: 99999999999999999999999999999\r\n"),
               MREQ_ETOOLARGE);
  ML_CHECK_INT(parse_with_length("Content-Length: 8388609\r\n"), MREQ_ETOOLARGE);
  ML_CHECK_INT(parse_with_length("Content-Length: 00000000000000000000000000002\r\n"), MREQ_DONE);
  struct mreq r;
  mreq_init(&r, 16);
  const char *s = "POST / HTTP/1.1\r\nContent-Length: 17\r\n\r\n";
  ML_CHECK_INT(mreq_parse(&r, s, strlen(s)), MREQ_ETOOLARGE);
}

static void chunked_bodies_are_rejected(void) {
  ML_CHECK_INT(parse_with_length("Transfer-Encoding: chunked\r\n"), MREQ_ELENGTH);
  ML_CHECK_INT(parse_with_length("Transfer-Encoding: CHUNKED\r\nContent-Length: 2\r\n"),
               MREQ_ELENGTH);
  ML_CHECK_INT(parse_with_length("Transfer-Encoding: gzip, chunked\r\n"), MREQ_EUNSUPPORTED);
  ML_CHECK_INT(parse_with_length("Transfer-Encoding: gzip\r\n"), MREQ_EUNSUPPORTED);
  ML_CHECK_INT(parse_with_length("Transfer-Encoding:\r\n"), MREQ_EUNSUPPORTED);
}

static void header_injection_is_400(void) {
  ML_CHECK_INT(parse_with_length("X-A: one\rX-B: two\r\n"), MREQ_EBAD);
  ML_CHECK_INT(parse_with_length("X-A: one\r\n two\r\n"), MREQ_EBAD);
  ML_CHECK_INT(parse_with_length("X-A one\r\n"), MREQ_EBAD);
  ML_CHECK_INT(parse_with_length(": empty-name\r\n"), MREQ_EBAD);
  ML_CHECK_INT(parse_with_length("X A: v\r\n"), MREQ_EBAD);
  ML_CHECK_INT(parse_with_length("X-A: \x01\r\n"), MREQ_EBAD);
}

static void nul_bytes_are_400(void) {
  static const char line[] = "GET /\0 HTTP/1.1\r\n\r\n";
  static const char name[] = "GET / HTTP/1.1\r\nX\0A: v\r\n\r\n";
  static const char value[] = "GET / HTTP/1.1\r\nX-A: v\0w\r\n\r\n";
  static const char method[] = "G\0T / HTTP/1.1\r\n\r\n";
  struct mreq r;
  ML_CHECK_INT(parse_str(&r, line, sizeof line - 1), MREQ_EBAD);
  ML_CHECK_INT(parse_str(&r, name, sizeof name - 1), MREQ_EBAD);
  ML_CHECK_INT(parse_str(&r, value, sizeof value - 1), MREQ_EBAD);
  ML_CHECK_INT(parse_str(&r, method, sizeof method - 1), MREQ_EBAD);
}

static void nul_bytes_in_body_are_data(void) {
  static const char s[] = "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\na\0b";
  struct mreq r;
  ML_CHECK_INT(parse_str(&r, s, sizeof s - 1), MREQ_DONE);
  ML_CHECK_INT(r.body.len, 3);
}

static void connection_close_and_http10(void) {
  struct mreq r;
  ML_CHECK_INT(parse_str(&r, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 0), MREQ_DONE);
  ML_CHECK_INT(r.keep_alive, 0);
  ML_CHECK_INT(parse_str(&r, "GET / HTTP/1.1\r\nConnection: Upgrade, CLOSE\r\n\r\n", 0), MREQ_DONE);
  ML_CHECK_INT(r.keep_alive, 0);
  ML_CHECK_INT(parse_str(&r, "GET / HTTP/1.0\r\n\r\n", 0), MREQ_DONE);
  ML_CHECK_INT(r.keep_alive, 0);
  ML_CHECK_INT(r.version_minor, 0);
  ML_CHECK_INT(parse_str(&r, "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 0), MREQ_DONE);
  ML_CHECK_INT(r.keep_alive, 1);
}

static void bare_lf_and_leading_blank_lines_are_tolerated(void) {
  struct mreq r;
  const char *s = "\r\n\nPOST /x HTTP/1.1\nContent-Length: 2\n\nok";
  ML_CHECK_INT(parse_str(&r, s, 0), MREQ_DONE);
  ML_CHECK(span_is(s, r.method, "POST"));
  ML_CHECK(span_is(s, r.body, "ok"));
}

static void errors_are_sticky_until_reset(void) {
  struct mreq r;
  const char *bad = "BAD\r\n\r\n";
  ML_CHECK_INT(parse_str(&r, bad, 0), MREQ_EBAD);
  ML_CHECK_INT(mreq_parse(&r, "GET / HTTP/1.1\r\n\r\n", 18), MREQ_EBAD);
  mreq_reset(&r);
  ML_CHECK_INT(mreq_parse(&r, "GET / HTTP/1.1\r\n\r\n", 18), MREQ_DONE);
}

/* Random garbage and random mutations of a valid request: no crash, no out-of-range span. */
static void random_input_never_escapes_the_buffer(void) {
  uint64_t x = 0x9e3779b97f4a7c15u;
  char buf[512];
  for (int iter = 0; iter < 20000; iter++) {
    size_t n = strlen(POST_REQ);
    memcpy(buf, POST_REQ, n);
    int flips = 1 + iter % 4;
    for (int k = 0; k < flips; k++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      buf[x % n] = (char)(x >> 32);
    }
    struct mreq r;
    mreq_init(&r, 0);
    int rc = mreq_parse(&r, buf, n);
    if (rc == MREQ_DONE) {
      ML_CHECK(r.total <= n);
      ML_CHECK((size_t)r.body.off + r.body.len <= n);
      ML_CHECK((size_t)r.target.off + r.target.len <= n);
    } else {
      ML_CHECK(rc == MREQ_AGAIN || r.error != NULL);
    }
  }
}

static void reason_phrases(void) {
  ML_CHECK_STR(mreq_reason(431), "Request Header Fields Too Large");
  ML_CHECK_STR(mreq_reason(999), "Unknown");
}

ML_TEST_MAIN(ML_CASE(get_request_parses), ML_CASE(post_body_is_located),
             ML_CASE(header_lookup_is_case_insensitive_and_trimmed), ML_CASE(split_at_every_byte),
             ML_CASE(split_into_two_at_every_byte), ML_CASE(pipelined_requests_in_one_read),
             ML_CASE(pipelined_stream_in_small_pieces), ML_CASE(missing_body_waits_for_more),
             ML_CASE(expect_continue_is_reported_before_the_body),
             ML_CASE(oversized_header_block_is_431), ML_CASE(too_many_headers_is_431),
             ML_CASE(bad_request_lines_are_400), ML_CASE(other_http_versions_are_505),
             ML_CASE(invalid_content_lengths_are_400), ML_CASE(duplicate_content_length_must_agree),
             ML_CASE(overflowing_or_large_content_length_is_413),
             ML_CASE(chunked_bodies_are_rejected), ML_CASE(header_injection_is_400),
             ML_CASE(nul_bytes_are_400), ML_CASE(nul_bytes_in_body_are_data),
             ML_CASE(connection_close_and_http10),
             ML_CASE(bare_lf_and_leading_blank_lines_are_tolerated),
             ML_CASE(errors_are_sticky_until_reset), ML_CASE(random_input_never_escapes_the_buffer),
             ML_CASE(reason_phrases))

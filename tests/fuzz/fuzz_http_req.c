/* libFuzzer target for the mock server's HTTP request parser (src/mock/http_req.c).
 * The input is a byte stream of pipelined requests; it is parsed once whole and once fed
 * in small pieces, and both runs must agree and keep every span inside the input.
 * Build: clang -g -fsanitize=fuzzer,address,undefined -Isrc tests/fuzz/fuzz_http_req.c
 *        src/mock/http_req.c; seeds in tests/fuzz/corpus/http_req/. */
#include "mock/http_req.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct outcome {
  int rc;
  size_t total;
  struct mreq_span method, target, body;
  int keep_alive;
};

static void check_spans(const struct mreq *r, size_t len) {
  const struct mreq_span *s[] = {&r->method, &r->target, &r->body};
  for (size_t i = 0; i < 3; i++)
    if ((size_t)s[i]->off + s[i]->len > len)
      abort();
  for (unsigned i = 0; i < r->nheaders; i++)
    if ((size_t)r->headers[i].value.off + r->headers[i].value.len > len)
      abort();
  if (r->total > len)
    abort();
}

/* Parse all pipelined requests; piece 0 means the whole input at once. Each piece is fed
 * from a fresh heap copy so a stale pointer into an old buffer is caught. Fills out[] and
 * returns how many requests ended (done or failed). */
static size_t run(const uint8_t *data, size_t size, size_t piece, struct outcome *out,
                  size_t max_out) {
  struct mreq r;
  mreq_init(&r, 4096);
  size_t start = 0, have = 0, count = 0;
  while (count < max_out) {
    int rc = MREQ_AGAIN;
    if (have < size)
      have = piece == 0 || have + piece > size ? size : have + piece;
    char *copy = malloc(have - start + 1);
    memcpy(copy, data + start, have - start);
    rc = mreq_parse(&r, copy, have - start);
    if (rc == MREQ_DONE || rc < 0) {
      if (rc == MREQ_DONE)
        check_spans(&r, have - start);
      struct outcome *o = &out[count++];
      memset(o, 0, sizeof *o); /* padding too: outcomes are compared with memcmp */
      o->rc = rc;
      o->total = r.total;
      o->method = r.method;
      o->target = r.target;
      o->body = r.body;
      o->keep_alive = r.keep_alive;
      free(copy);
      if (rc < 0)
        break;
      start += r.total;
      mreq_reset(&r);
      continue;
    }
    free(copy);
    if (have == size)
      break;
  }
  return count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct outcome whole[16], split[16];
  size_t piece = size ? 1 + data[0] % 7 : 1;
  size_t a = run(data, size, 0, whole, 16);
  size_t b = run(data, size, piece, split, 16);
  if (a != b)
    abort();
  for (size_t i = 0; i < a; i++)
    if (memcmp(&whole[i], &split[i], sizeof whole[i]) != 0)
      abort();
  return 0;
}

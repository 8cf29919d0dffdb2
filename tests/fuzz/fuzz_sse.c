/* libFuzzer target for the SSE parser: feeding a stream in two chunks must give exactly
 * the events, return code and pending state of feeding it whole. The first input byte
 * picks the split point; small limits make the ETOOBIG paths reachable. */
#include "http/sse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Events are flattened into one byte log: lengths first, so embedded NULs compare too. */
struct log {
  unsigned char *buf;
  size_t len, cap;
};

static void log_put(struct log *l, const void *p, size_t n) {
  if (l->len + n > l->cap) {
    size_t cap = l->cap ? l->cap : 256;
    while (cap < l->len + n)
      cap *= 2;
    unsigned char *nb = realloc(l->buf, cap);
    if (nb == NULL)
      abort();
    l->buf = nb;
    l->cap = cap;
  }
  memcpy(l->buf + l->len, p, n);
  l->len += n;
}

static int log_event(void *ud, const struct sse_event *ev) {
  struct log *l = ud;
  size_t id_len = strlen(ev->id);
  /* The contract: data and event are NUL-terminated. */
  if (ev->data[ev->data_len] != '\0' || ev->event[ev->event_len] != '\0')
    abort();
  log_put(l, &ev->event_len, sizeof ev->event_len);
  log_put(l, ev->event, ev->event_len);
  log_put(l, &ev->data_len, sizeof ev->data_len);
  log_put(l, ev->data, ev->data_len);
  log_put(l, &id_len, sizeof id_len);
  log_put(l, ev->id, id_len);
  return 0;
}

struct outcome {
  struct log log;
  int rc;
  int pending;
  long retry_ms;
};

static void run(struct outcome *o, const char *s, size_t len, size_t cut) {
  struct sse_parser p;
  memset(o, 0, sizeof *o);
  sse_init(&p, log_event, &o->log);
  p.max_line = 200;
  p.max_event = 1000;
  o->rc = sse_feed(&p, s, cut);
  if (o->rc == SSE_OK)
    o->rc = sse_feed(&p, s + cut, len - cut);
  o->pending = sse_pending(&p);
  o->retry_ms = p.retry_ms;
  sse_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  const char *s = (const char *)data + 1;
  size_t len = size - 1;
  size_t cut = len == 0 ? 0 : (size_t)data[0] * len / 255;

  struct outcome whole, split;
  run(&whole, s, len, len);
  run(&split, s, len, cut);
  if (whole.log.len != split.log.len || whole.rc != split.rc || whole.pending != split.pending ||
      whole.retry_ms != split.retry_ms ||
      (whole.log.len > 0 && memcmp(whole.log.buf, split.log.buf, whole.log.len) != 0))
    abort();
  free(whole.log.buf);
  free(split.log.buf);
  return 0;
}

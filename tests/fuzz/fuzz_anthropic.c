/* libFuzzer target for the Anthropic stream reader behind the SSE parser: whatever the
 * bytes, reading them in two chunks must give the same text, finish reason, usage, deltas,
 * error and done flag as reading them whole, and every text must stay NUL-terminated at
 * its length. The first input byte picks the split point. */
#include "http/sse.h"
#include "llm/anthropic.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct outcome {
  struct llm_response res;
  int rc;     /* the parser's return code */
  int failed; /* anthropic_stream_event returned -1 */
  int woken;  /* events that queued a delta */
};

static int on_event(void *ud, const struct sse_event *ev) {
  struct outcome *o = ud;
  int rc = anthropic_stream_event(&o->res, ev);
  if (rc < 0) {
    o->failed = 1;
    return 1;
  }
  o->woken += rc;
  return 0;
}

static void run(struct outcome *o, const char *s, size_t len, size_t cut) {
  struct sse_parser p;
  memset(o, 0, sizeof *o);
  llm_response_init(&o->res, 1, 1);
  sse_init(&p, on_event, o);
  p.max_line = 4096;
  p.max_event = 16384;
  o->rc = sse_feed(&p, s, cut);
  if (o->rc == SSE_OK)
    o->rc = sse_feed(&p, s + cut, len - cut);
  sse_free(&p);
}

static void check_text(const struct llm_text *t) {
  if (t->data != NULL && (t->data[t->len] != '\0' || t->len > t->cap))
    abort();
}

static int same(const struct outcome *a, const struct outcome *b) {
  const struct llm_response *x = &a->res, *y = &b->res;
  if (a->rc != b->rc || a->failed != b->failed || a->woken != b->woken ||
      x->nchoices != y->nchoices || x->ndeltas != y->ndeltas || x->stream_done != y->stream_done ||
      x->input_tokens != y->input_tokens || x->output_tokens != y->output_tokens ||
      x->has_usage != y->has_usage || strcmp(x->model, y->model) != 0 ||
      strcmp(x->error, y->error) != 0 || strcmp(x->error_type, y->error_type) != 0)
    return 0;
  for (int i = 0; i < x->nchoices; i++) {
    const struct llm_choice *c = &x->choices[i], *d = &y->choices[i];
    check_text(&c->text);
    check_text(&d->text);
    if (c->text.len != d->text.len || strcmp(c->finish_reason, d->finish_reason) != 0 ||
        (c->text.len && memcmp(c->text.data, d->text.data, c->text.len) != 0))
      return 0;
  }
  for (int i = 0; i < x->ndeltas; i++) {
    if (x->deltas[i].len != y->deltas[i].len ||
        memcmp(x->deltas[i].text, y->deltas[i].text, x->deltas[i].len) != 0)
      return 0;
  }
  return 1;
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
  /* Only text deltas wake the task, and each one is queued. */
  if (!same(&whole, &split) || whole.woken != whole.res.ndeltas)
    abort();
  llm_response_free(&whole.res);
  llm_response_free(&split.res);
  return 0;
}

/* Gates between tasks and the limiter: a FIFO of waiting requests per provider and model,
 * pumped after every release and by one timer when a bucket needs time to refill. The
 * limiter decides; this file only queues, wakes and keeps the clock. */
#include "llm/gate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/sched.h"

struct gate {
  struct gate *next_gate;
  struct gate_set *set;
  char name[256]; /* "provider/model" */
  struct limiter lim;
  struct gate_waiter *head, *tail;
  uv_timer_t timer;
  int held;
  int used;
};

struct gate_set {
  uv_loop_t *loop;
  struct gate *gates;
};

static int64_t now_ms(const struct gate_set *s) {
  return (int64_t)uv_now(s->loop);
}

struct gate_set *gate_set_new(uv_loop_t *loop) {
  struct gate_set *s = calloc(1, sizeof *s);
  if (s)
    s->loop = loop;
  return s;
}

static void gate_closed(uv_handle_t *h) {
  free(h->data);
}

void gate_set_free(struct gate_set *s) {
  if (s == NULL)
    return;
  for (struct gate *g = s->gates, *next; g; g = next) {
    next = g->next_gate;
    uv_close((uv_handle_t *)&g->timer, gate_closed);
  }
  free(s);
}

static void pump(struct gate *g);

static void on_timer(uv_timer_t *t) {
  pump(t->data);
}

struct gate *gate_for(struct gate_set *s, const char *provider, const char *model,
                      const struct limiter_config *cfg) {
  char name[256];
  snprintf(name, sizeof name, "%s/%s", provider, model);
  for (struct gate *g = s->gates; g; g = g->next_gate)
    if (strcmp(g->name, name) == 0)
      return g;
  struct gate *g = calloc(1, sizeof *g);
  if (g == NULL)
    return NULL;
  memcpy(g->name, name, sizeof name);
  g->set = s;
  limiter_init(&g->lim, cfg, now_ms(s));
  /* Anthropic sends absolute reset times: tell the limiter how our clock maps to Unix. */
  uv_timeval64_t tv;
  if (uv_gettimeofday(&tv) == 0)
    g->lim.unix_offset_ms = tv.tv_sec * 1000 + tv.tv_usec / 1000 - now_ms(s);
  uv_timer_init(s->loop, &g->timer);
  g->timer.data = g;
  g->next_gate = s->gates;
  s->gates = g;
  return g;
}

static void unlink_waiter(struct gate *g, struct gate_waiter *w) {
  if (w->prev)
    w->prev->next = w->next;
  else
    g->head = w->next;
  if (w->next)
    w->next->prev = w->prev;
  else
    g->tail = w->prev;
  w->prev = w->next = NULL;
  w->queued = 0;
}

/* Admit from the head while the limiter allows; otherwise arm the timer (a bucket refills)
 * or wait for a release (the in-flight cap). */
static void pump(struct gate *g) {
  while (g->head && !g->held) {
    struct gate_waiter *w = g->head;
    long wait = limiter_acquire(&g->lim, w->est_tokens, now_ms(g->set), &w->ticket);
    if (wait == 0) {
      unlink_waiter(g, w);
      w->admitted = 1;
      sched_wake(w->task);
      continue;
    }
    if (wait > 0)
      uv_timer_start(&g->timer, on_timer, (uint64_t)wait, 0);
    return; /* LIMITER_WAIT_SLOT: the next release pumps again */
  }
}

int gate_enter(struct gate *g, struct gate_waiter *w, struct ml_task *task, double est_tokens) {
  w->task = task;
  w->est_tokens = est_tokens;
  w->admitted = 0;
  if (g->head == NULL && !g->held &&
      limiter_acquire(&g->lim, est_tokens, now_ms(g->set), &w->ticket) == 0) {
    w->admitted = 1;
    return 1;
  }
  w->prev = g->tail;
  w->next = NULL;
  if (g->tail)
    g->tail->next = w;
  else
    g->head = w;
  g->tail = w;
  w->queued = 1;
  if (g->head == w)
    pump(g);
  return w->admitted;
}

void gate_leave(struct gate *g, struct gate_waiter *w, double actual_tokens,
                enum limiter_outcome outcome) {
  if (w->queued) {
    int was_head = g->head == w;
    unlink_waiter(g, w);
    if (was_head)
      pump(g);
    return;
  }
  if (!w->admitted)
    return;
  w->admitted = 0;
  limiter_release(&g->lim, &w->ticket, actual_tokens, outcome, now_ms(g->set));
  pump(g);
}

void gate_hold(struct gate *g) {
  g->held = 1;
}

void gate_unhold(struct gate *g) {
  g->held = 0;
  pump(g);
}

int gate_first_use(struct gate *g) {
  int first = !g->used;
  g->used = 1;
  return first;
}

void gate_set_slots(struct gate *g, int slots) {
  limiter_set_slots(&g->lim, slots);
}

void gate_reconfigure(struct gate *g, const struct limiter_config *cfg) {
  limiter_reconfigure(&g->lim, cfg, now_ms(g->set));
  pump(g); /* a wider cap or budget may admit waiters now */
}

void gate_learn(struct gate *g, const char *name, const char *value) {
  limiter_learn(&g->lim, name, value, now_ms(g->set));
}

struct limiter_stats gate_stats(const struct gate *g) {
  return limiter_stats(&g->lim);
}

const char *gate_name(const struct gate *g) {
  return g->name;
}

struct gate *gate_first(struct gate_set *s) {
  return s->gates;
}

struct gate *gate_next(struct gate *g) {
  return g->next_gate;
}

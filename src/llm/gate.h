/* Gates: admission of requests to one provider and model through its limiter (in-flight
 * cap, RPM and TPM buckets, AIMD, circuit breaker). Waiting requests queue in order behind
 * one timer, so thousands of queued requests cost one wake-up per admission, not one each. */
#ifndef ML_LLM_GATE_H
#define ML_LLM_GATE_H

#include <uv.h>

#include "llm/limiter.h"

struct ml_task;
struct gate;

struct gate_waiter {
  struct gate_waiter *prev, *next;
  struct ml_task *task;
  double est_tokens;
  struct limiter_ticket ticket;
  int queued;   /* in the gate's queue */
  int admitted; /* holds a ticket: must leave the gate exactly once */
};

struct gate_set; /* all gates of a runtime */

struct gate_set *gate_set_new(uv_loop_t *loop);
/* Stops the timers; the loop must run afterwards so their close callbacks fire. */
void gate_set_free(struct gate_set *s);

/* The gate for a provider and model, created on first use with these limits. */
struct gate *gate_for(struct gate_set *s, const char *provider, const char *model,
                      const struct limiter_config *cfg);

/* Ask to send. Returns 1 when admitted now (w->ticket is valid); 0 when the request was
 * queued: the caller waits and is woken with w->admitted set, or stays queued. */
int gate_enter(struct gate *g, struct gate_waiter *w, struct ml_task *task, double est_tokens);

/* Leave after an attempt (admitted) or give up waiting (queued): safe in either state and
 * a no-op otherwise. actual_tokens < 0 keeps the estimate. */
void gate_leave(struct gate *g, struct gate_waiter *w, double actual_tokens,
                enum limiter_outcome outcome);

/* A response header that may carry rate-limit information (pure C: callable from libcurl's
 * header callback). */
void gate_learn(struct gate *g, const char *name, const char *value);

/* While held (a probe of the server's capacity is under way), nothing is admitted; release
 * admits the queue. */
void gate_hold(struct gate *g);
void gate_unhold(struct gate *g);
void gate_set_slots(struct gate *g, int slots);
/* New configured limits (cap, rpm, tpm) for a gate in use; waiters are admitted if they can. */
void gate_reconfigure(struct gate *g, const struct limiter_config *cfg);
/* 1 the first time it is called for a gate, then 0 (for one-time set-up such as a probe). */
int gate_first_use(struct gate *g);

struct limiter_stats gate_stats(const struct gate *g);
const char *gate_name(const struct gate *g);
/* Iterate: the first gate, then gate_next(g) until NULL. */
struct gate *gate_first(struct gate_set *s);
struct gate *gate_next(struct gate *g);

#endif

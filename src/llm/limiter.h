/* Admission control for one provider+model: a cap on requests in flight that adapts to
 * push-back (AIMD), request and token budgets per minute, limits learned from response headers,
 * and a circuit breaker. Pure arithmetic on a clock the caller passes in (ms, any monotonic
 * origin), so the request path stays in llm.c and every rule here is unit-tested. */
#ifndef ML_LIMITER_H
#define ML_LIMITER_H

#include <stdint.h>

/* limiter_acquire: only the in-flight cap (or the breaker's single probe) blocks; ask again
 * after a limiter_release. */
#define LIMITER_WAIT_SLOT (-2L)
/* limiter_acquire: a NULL argument. */
#define LIMITER_EINVAL (-1L)

/* In-flight ceiling of an adaptive limiter with no configured cap. */
#define LIMITER_ADAPTIVE_CEILING 4096
/* Cooldowns double on every failed probe, up to this. */
#define LIMITER_MAX_COOLDOWN_MS 300000L

enum limiter_outcome {
  LIMITER_OK,        /* the server answered the request */
  LIMITER_THROTTLED, /* 429, 529 or an "overloaded" error: the server pushed back */
  LIMITER_FAILED,    /* other 5xx, transport error, timeout */
  LIMITER_CANCELLED, /* we gave up on it ourselves; says nothing about the server */
};

enum limiter_breaker_state { LIMITER_CLOSED, LIMITER_OPEN, LIMITER_HALF_OPEN };

struct limiter_config {
  int max_inflight;         /* requests in flight; 0 = no cap */
  long rpm;                 /* requests per minute; 0 = unlimited until a header says otherwise */
  long tpm;                 /* tokens per minute; same */
  int adaptive;             /* AIMD on the in-flight cap when the server pushes back */
  int breaker_threshold;    /* consecutive FAILED/THROTTLED to open; <= 0: no breaker */
  long breaker_cooldown_ms; /* first cooldown once open; <= 0: the default */
};

/* One per-minute budget as a continuously refilled bucket. Public only so that struct limiter
 * can be embedded; use limiter_stats to read it. */
struct limiter_bucket {
  double cap;   /* 0: unlimited, the bucket is unused */
  double level; /* may be negative: debt from requests that cost more than estimated */
  double rate;  /* refill per ms */
  int64_t stamp;
};

struct limiter_rate {
  long configured;              /* per minute from the config; 0 = none */
  double learned;               /* per minute from headers; 0 = none */
  struct limiter_bucket budget; /* capacity = the per-minute limit */
  struct limiter_bucket pace;   /* a little of the same rate: spreads admissions evenly */
};

struct limiter {
  struct limiter_config cfg;
  struct limiter_rate req, tok;
  int in_flight;
  int ceiling;   /* upper bound of the cap: configured, slots, the adaptive ceiling, or 0 */
  int eff_cap;   /* cap in force; equals ceiling unless AIMD lowered it */
  int successes; /* OKs counted towards the next +1 */
  int decreased; /* whether last_decrease_ms is set */
  int64_t last_decrease_ms;
  uint64_t last_decrease_seq; /* admissions before this one belong to the wave already cut */
  uint64_t seq;               /* admissions so far; stamps each ticket */
  enum limiter_breaker_state breaker;
  int consecutive_failures;
  int probe_in_flight;
  long cooldown_ms;
  int64_t open_until_ms;
  /* Added to now_ms to get Unix ms, for Anthropic's absolute reset times. 0 when the caller's
   * clock is already Unix time; resets that look more than an hour away are ignored, so a
   * wrong offset costs the information, not the throughput. */
  int64_t unix_offset_ms;
  /* Anthropic's per-direction token limits; reported, not enforced (see limiter_learn). */
  double input_tpm, input_remaining, output_tpm, output_remaining;
  uint64_t admitted, succeeded, throttled, failed, cancelled, decreases, increases, opens;
};

struct limiter_ticket {
  double est_tokens; /* what was taken from the token budget */
  int64_t admitted_ms;
  uint64_t seq;
  unsigned charged; /* which budgets took a share (1: requests, 2: tokens) */
  int probe;        /* the breaker's half-open probe */
  int active;       /* set by acquire, cleared by release: a second release is a no-op */
};

struct limiter_stats {
  int in_flight;
  int cap;                        /* ceiling of the in-flight cap; 0 = none */
  int effective_cap;              /* cap in force now (AIMD); 0 = none */
  double rpm_capacity, rpm_level; /* capacity 0 = unlimited; levels as of the last call */
  double tpm_capacity, tpm_level;
  double input_tpm, input_remaining, output_tpm, output_remaining; /* 0 until learned */
  enum limiter_breaker_state breaker;
  long breaker_cooldown_ms;
  uint64_t admitted, succeeded, throttled, failed, cancelled;
  uint64_t decreases, increases, opens;
};

/* No caps, no rate limits, not adaptive, breaker after 5 failures with a 10 s cooldown. */
void limiter_config_default(struct limiter_config *c);

/* Buckets start full at now_ms. cfg is copied. */
void limiter_init(struct limiter *l, const struct limiter_config *cfg, int64_t now_ms);

/* Asks to send one request of about est_tokens tokens (prompt + expected output).
 * Returns 0 and fills *t when admitted: the request counts as in flight and its share is taken
 * from both budgets. Otherwise nothing changes and the return says when to ask again:
 *  > 0                ms until the budgets cover it or the breaker's cooldown ends;
 *  LIMITER_WAIT_SLOT  only the in-flight cap (or the half-open probe) stands in the way;
 *  LIMITER_EINVAL     l or t is NULL.
 * A request costing more than a whole budget is admitted once that budget is full and leaves it
 * in debt; otherwise it could never be sent. The debt then delays later requests, so the
 * average rate still holds. */
long limiter_acquire(struct limiter *l, double est_tokens, int64_t now_ms,
                     struct limiter_ticket *t);

/* Ends an admitted request. actual_tokens (< 0: unknown, keep the estimate) corrects the token
 * budget: a refund when it cost less than estimated, a charge (possibly into debt) when more.
 * The outcome feeds AIMD and the breaker. Releasing a ticket twice is harmless. */
void limiter_release(struct limiter *l, struct limiter_ticket *t, double actual_tokens,
                     enum limiter_outcome outcome, int64_t now_ms);

/* Feeds one response header (name case-insensitive); unknown names and malformed values are
 * ignored. OpenAI x-ratelimit-{limit,remaining,reset}-{requests,tokens}; Anthropic
 * anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}.
 * A learned limit sets the budget's capacity but never above a configured one; "remaining" and
 * "reset" only ever lower the budget's level (other clients may share the key). */
void limiter_learn(struct limiter *l, const char *name, const char *value, int64_t now_ms);

/* Change the configured cap and per-minute limits of a limiter in use; learned limits,
 * the breaker and the requests in flight are kept. */
void limiter_reconfigure(struct limiter *l, const struct limiter_config *cfg, int64_t now_ms);

/* Server slots (llama.cpp /props total_slots) as the in-flight ceiling when the config sets no
 * cap; a configured cap wins. slots <= 0 forgets them. */
void limiter_set_slots(struct limiter *l, int slots);

struct limiter_stats limiter_stats(const struct limiter *l);

#endif

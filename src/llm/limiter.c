/* Admission control for one provider+model: in-flight cap with AIMD, per-minute request and
 * token budgets (reserve an estimate, settle with the actual usage), limits learned from
 * OpenAI and Anthropic headers, and a circuit breaker. See limiter.h for the contract. */
#include "llm/limiter.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

/* Each budget has a second, small bucket at the same rate, the pace. A bucket whose capacity
 * is a whole minute lets a minute's worth through at once and then another minute's worth as
 * it refills: twice the limit in the first minute, the burst that the OpenAI cookbook answers
 * with "configure 50-75% of your limit" and that providers enforcing sub-minute windows answer
 * with 429s. The pace spreads admissions at the limit's rate instead. A 60 s window then sees
 * at most the limit plus the pace's capacity:
 *  - requests: 50 ms of rate, at least one request. Up to 1,200 RPM that is exactly the
 *    limit; above, 50 ms worth more, the slack that absorbs late timers;
 *  - tokens: one second of rate (1/60 of the limit), plus whatever the estimates missed, as
 *    usage is only known after the fact. A pace of a few ms would turn every small overrun
 *    into a wait even far below the limit. */
#define REQ_PACE_MS 50.0
#define TOK_PACE_MS 1000.0
#define MINUTE_MS 60000.0
/* Bucket arithmetic is in doubles; this absorbs their rounding so an exact wait is enough. */
#define EPSILON 1e-6
#define DECREASE_WINDOW_MS 1000
#define DEFAULT_COOLDOWN_MS 10000L
/* Resets further away than this are a daily limit or a clock we do not share: ignored. */
#define RESET_HORIZON_MS 3600000.0
#define LONGEST_WAIT_MS 86400000L

enum { CHARGED_REQ = 1, CHARGED_TOK = 2 };

void limiter_config_default(struct limiter_config *c) {
  memset(c, 0, sizeof *c);
  c->breaker_threshold = 5;
  c->breaker_cooldown_ms = DEFAULT_COOLDOWN_MS;
}

/* ---- buckets ---------------------------------------------------------------------------- */

static void bucket_refill(struct limiter_bucket *b, int64_t now) {
  if (b->cap <= 0)
    return;
  if (now > b->stamp) { /* a clock that steps back refills nothing and loses nothing */
    b->level += b->rate * (double)(now - b->stamp);
    if (b->level > b->cap)
      b->level = b->cap;
    b->stamp = now;
  }
}

/* A bucket that was unused starts at `start`; one that changes size keeps its level, within
 * the new capacity, so learning a limit never hands out a fresh burst. */
static void bucket_resize(struct limiter_bucket *b, double cap, double rate, double start,
                          int64_t now) {
  if (cap <= 0) {
    memset(b, 0, sizeof *b);
    return;
  }
  if (b->cap <= 0) {
    b->level = start;
    b->stamp = now;
  } else {
    bucket_refill(b, now);
  }
  b->cap = cap;
  b->rate = rate;
  if (b->level > b->cap)
    b->level = b->cap;
}

/* Ms until the bucket holds enough for n: all of n, or the whole capacity for a request larger
 * than it (admitted when full, see limiter_acquire). */
static double bucket_wait(const struct limiter_bucket *b, double n) {
  if (b->cap <= 0)
    return 0;
  double need = n < b->cap ? n : b->cap;
  double deficit = need - b->level;
  return deficit <= EPSILON ? 0 : deficit / b->rate;
}

/* Take (n > 0) or give back (n < 0); giving back never overfills. */
static void bucket_take(struct limiter_bucket *b, double n) {
  if (b->cap <= 0)
    return;
  b->level -= n;
  if (b->level > b->cap)
    b->level = b->cap;
}

/* The per-minute limit in force: the configured one, lowered but never raised by a learned one. */
static double rate_limit(const struct limiter_rate *r) {
  double limit = (double)r->configured;
  if (r->learned > 0 && (limit <= 0 || r->learned < limit))
    limit = r->learned;
  return limit > 0 ? limit : 0;
}

/* Both start full: a fresh limiter sends its first request at once, however large. */
static void rate_apply(struct limiter_rate *r, double pace_ms, int64_t now) {
  double limit = rate_limit(r);
  double per_ms = limit / MINUTE_MS;
  double pace = per_ms * pace_ms;
  if (pace < 1)
    pace = 1;
  bucket_resize(&r->budget, limit, per_ms, limit, now);
  bucket_resize(&r->pace, limit > 0 ? pace : 0, per_ms, pace, now);
}

static double pace_ms_of(const struct limiter *l, const struct limiter_rate *r) {
  return r == &l->req ? REQ_PACE_MS : TOK_PACE_MS;
}

static void rate_refill(struct limiter_rate *r, int64_t now) {
  bucket_refill(&r->budget, now);
  bucket_refill(&r->pace, now);
}

static double rate_wait(const struct limiter_rate *r, double n) {
  double a = bucket_wait(&r->budget, n), b = bucket_wait(&r->pace, n);
  return a > b ? a : b;
}

static void rate_take(struct limiter_rate *r, double n) {
  bucket_take(&r->budget, n);
  bucket_take(&r->pace, n);
}

static long wait_to_ms(double w) {
  if (w >= (double)LONGEST_WAIT_MS)
    return LONGEST_WAIT_MS;
  long ms = (long)ceil(w - EPSILON);
  return ms < 1 ? 1 : ms;
}

/* ---- life cycle ------------------------------------------------------------------------- */

static int configured_ceiling(const struct limiter *l) {
  if (l->cfg.max_inflight > 0)
    return l->cfg.max_inflight;
  return l->cfg.adaptive ? LIMITER_ADAPTIVE_CEILING : 0;
}

void limiter_init(struct limiter *l, const struct limiter_config *cfg, int64_t now_ms) {
  memset(l, 0, sizeof *l);
  l->cfg = *cfg;
  if (l->cfg.max_inflight < 0)
    l->cfg.max_inflight = 0;
  if (l->cfg.breaker_cooldown_ms <= 0)
    l->cfg.breaker_cooldown_ms = DEFAULT_COOLDOWN_MS;
  l->req.configured = cfg->rpm > 0 ? cfg->rpm : 0;
  l->tok.configured = cfg->tpm > 0 ? cfg->tpm : 0;
  rate_apply(&l->req, REQ_PACE_MS, now_ms);
  rate_apply(&l->tok, TOK_PACE_MS, now_ms);
  /* An adaptive limiter without a cap starts wide open (at the ceiling): a guess such as 64
   * would hold back a provider that takes thousands, and additive increase would need
   * thousands of round trips to undo it. The first push-back sets the cap from what was
   * actually in flight (see limiter_release). */
  l->ceiling = configured_ceiling(l);
  l->eff_cap = l->ceiling;
  l->breaker = LIMITER_CLOSED;
  l->cooldown_ms = l->cfg.breaker_cooldown_ms;
}

/* New limits for a limiter in use (the REPL's :limits). The configured rates and cap change
 * now; what headers taught, the breaker, the counters and the requests in flight stay. A
 * cap learned from the server's slots (limiter_set_slots) survives unless a cap is given. */
void limiter_reconfigure(struct limiter *l, const struct limiter_config *cfg, int64_t now_ms) {
  int slots = l->cfg.max_inflight <= 0 && l->ceiling != configured_ceiling(l) ? l->ceiling : 0;
  l->cfg.max_inflight = cfg->max_inflight > 0 ? cfg->max_inflight : 0;
  l->cfg.rpm = cfg->rpm;
  l->cfg.tpm = cfg->tpm;
  l->req.configured = cfg->rpm > 0 ? cfg->rpm : 0;
  l->tok.configured = cfg->tpm > 0 ? cfg->tpm : 0;
  rate_apply(&l->req, REQ_PACE_MS, now_ms);
  rate_apply(&l->tok, TOK_PACE_MS, now_ms);
  l->ceiling = slots > 0 && l->cfg.max_inflight == 0 ? slots : configured_ceiling(l);
  l->eff_cap = l->ceiling;
  l->successes = 0;
}

void limiter_set_slots(struct limiter *l, int slots) {
  if (l->cfg.max_inflight > 0)
    return; /* the user's own cap wins */
  l->ceiling = slots > 0 ? slots : configured_ceiling(l);
  l->eff_cap = l->ceiling;
  l->successes = 0;
}

/* ---- admission -------------------------------------------------------------------------- */

long limiter_acquire(struct limiter *l, double est_tokens, int64_t now_ms,
                     struct limiter_ticket *t) {
  if (l == NULL || t == NULL)
    return LIMITER_EINVAL;
  if (!(est_tokens >= 0)) /* negative or NaN */
    est_tokens = 0;
  else if (est_tokens > 1e12) /* keeps infinities out of the bucket arithmetic */
    est_tokens = 1e12;

  if (l->breaker == LIMITER_OPEN) {
    if (now_ms < l->open_until_ms)
      return (long)(l->open_until_ms - now_ms);
    l->breaker = LIMITER_HALF_OPEN;
  }
  if (l->breaker == LIMITER_HALF_OPEN && l->probe_in_flight)
    return LIMITER_WAIT_SLOT; /* the probe's release decides for everyone */

  rate_refill(&l->req, now_ms);
  rate_refill(&l->tok, now_ms);
  double wait = rate_wait(&l->req, 1);
  double wait_tok = rate_wait(&l->tok, est_tokens);
  if (wait_tok > wait)
    wait = wait_tok;
  if (wait > 0)
    return wait_to_ms(wait);
  if (l->ceiling > 0 && l->in_flight >= l->eff_cap)
    return LIMITER_WAIT_SLOT;

  memset(t, 0, sizeof *t);
  t->est_tokens = est_tokens;
  t->admitted_ms = now_ms;
  t->seq = ++l->seq;
  t->active = 1;
  if (l->req.budget.cap > 0) {
    rate_take(&l->req, 1);
    t->charged |= CHARGED_REQ;
  }
  if (l->tok.budget.cap > 0) {
    rate_take(&l->tok, est_tokens);
    t->charged |= CHARGED_TOK;
  }
  if (l->breaker == LIMITER_HALF_OPEN) {
    t->probe = 1;
    l->probe_in_flight = 1;
  }
  l->in_flight++;
  l->admitted++;
  return 0;
}

/* ---- outcomes --------------------------------------------------------------------------- */

static void breaker_open(struct limiter *l, int64_t now) {
  l->breaker = LIMITER_OPEN;
  l->open_until_ms = now + l->cooldown_ms;
  l->consecutive_failures = 0;
  l->opens++;
}

static void breaker_note(struct limiter *l, const struct limiter_ticket *t,
                         enum limiter_outcome outcome, int64_t now) {
  int bad = outcome == LIMITER_THROTTLED || outcome == LIMITER_FAILED;
  if (t->probe) {
    l->probe_in_flight = 0;
    if (outcome == LIMITER_OK) {
      l->breaker = LIMITER_CLOSED;
      l->consecutive_failures = 0;
      l->cooldown_ms = l->cfg.breaker_cooldown_ms;
    } else if (bad) {
      l->cooldown_ms = l->cooldown_ms > LIMITER_MAX_COOLDOWN_MS / 2 ? LIMITER_MAX_COOLDOWN_MS
                                                                    : l->cooldown_ms * 2;
      breaker_open(l, now);
    } /* a cancelled probe proved nothing: the next request probes again */
    return;
  }
  /* Requests admitted before the breaker opened say nothing about the endpoint now. */
  if (l->breaker != LIMITER_CLOSED || l->cfg.breaker_threshold <= 0)
    return;
  if (outcome == LIMITER_OK)
    l->consecutive_failures = 0;
  else if (bad && ++l->consecutive_failures >= l->cfg.breaker_threshold)
    breaker_open(l, now);
}

/* AIMD on the in-flight cap. `before` is the in-flight count including this request. A wave of
 * requests sent under the old cap all fail together, so only one decrease per second, and none
 * for requests admitted before the last decrease. Increases count only while the cap is what
 * limits us, so an idle cap does not drift up to a value never tested. */
static void aimd_note(struct limiter *l, const struct limiter_ticket *t,
                      enum limiter_outcome outcome, int before, int64_t now) {
  if (!l->cfg.adaptive || l->ceiling <= 0)
    return;
  int new_wave = !l->decreased || t->seq > l->last_decrease_seq;
  if (outcome == LIMITER_THROTTLED) {
    if (!new_wave || (l->decreased && now - l->last_decrease_ms < DECREASE_WINDOW_MS))
      return;
    int base = before < l->eff_cap ? before : l->eff_cap;
    l->eff_cap = base / 2 > 1 ? base / 2 : 1;
    l->successes = 0;
    l->decreased = 1;
    l->last_decrease_ms = now;
    l->last_decrease_seq = l->seq;
    l->decreases++;
  } else if (outcome == LIMITER_OK && new_wave && before >= l->eff_cap) {
    if (++l->successes >= l->eff_cap) {
      l->successes = 0;
      if (l->eff_cap < l->ceiling) {
        l->eff_cap++;
        l->increases++;
      }
    }
  }
}

void limiter_release(struct limiter *l, struct limiter_ticket *t, double actual_tokens,
                     enum limiter_outcome outcome, int64_t now_ms) {
  if (l == NULL || t == NULL || !t->active)
    return;
  t->active = 0;
  int before = l->in_flight;
  if (l->in_flight > 0)
    l->in_flight--;

  rate_refill(&l->req, now_ms);
  rate_refill(&l->tok, now_ms);
  /* Settle the reservation: refund what was not used, charge (possibly into debt) what was
   * used beyond it. The request budget is not refunded: the server counted the request
   * whatever it cost. */
  if ((t->charged & CHARGED_TOK) && actual_tokens >= 0 && isfinite(actual_tokens))
    rate_take(&l->tok, actual_tokens - t->est_tokens);

  switch (outcome) {
  case LIMITER_OK: l->succeeded++; break;
  case LIMITER_THROTTLED: l->throttled++; break;
  case LIMITER_FAILED: l->failed++; break;
  case LIMITER_CANCELLED: l->cancelled++; break;
  }
  aimd_note(l, t, outcome, before, now_ms);
  breaker_note(l, t, outcome, now_ms);
}

/* ---- learning from headers -------------------------------------------------------------- */

static char ascii_lower(char c) {
  return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static int is_digit(char c) {
  return c >= '0' && c <= '9';
}

static int same_name(const char *a, const char *b) {
  while (*a && ascii_lower(*a) == *b) {
    a++;
    b++;
  }
  return *a == '\0' && *b == '\0';
}

static void trim(const char **p, const char **end) {
  while (**p == ' ' || **p == '\t')
    (*p)++;
  *end = *p + strlen(*p);
  while (*end > *p && ((*end)[-1] == ' ' || (*end)[-1] == '\t'))
    (*end)--;
}

/* "digits[.digits]" from *p; advances *p past it. */
static int scan_decimal(const char **p, const char *end, double *out) {
  const char *s = *p;
  double v = 0;
  if (s == end || !is_digit(*s))
    return -1;
  for (; s < end && is_digit(*s); s++)
    v = v * 10 + (*s - '0');
  if (s < end && *s == '.') {
    s++;
    if (s == end || !is_digit(*s))
      return -1;
    for (double unit = 0.1; s < end && is_digit(*s); s++, unit /= 10)
      v += (*s - '0') * unit;
  }
  if (!isfinite(v))
    return -1;
  *p = s;
  *out = v;
  return 0;
}

/* A non-negative count: "10000", " 59 ", "1.5". */
static int parse_count(const char *value, double *out) {
  const char *p = value, *end;
  trim(&p, &end);
  return scan_decimal(&p, end, out) == 0 && p == end ? 0 : -1;
}

/* Go duration syntax as OpenAI writes it: "1s", "6m0s", "20ms", "1h2m3.5s", "0". In ms. */
static int parse_duration(const char *value, double *out_ms) {
  static const struct {
    const char *unit;
    double ms;
  } units[] = {{"ns", 1e-6}, {"us", 1e-3}, {"\xc2\xb5s", 1e-3}, {"\xce\xbcs", 1e-3},
               {"ms", 1},    {"s", 1e3},   {"m", 6e4},          {"h", 3.6e6}};
  const char *p = value, *end;
  trim(&p, &end);
  if (end - p == 1 && *p == '0') {
    *out_ms = 0;
    return 0;
  }
  double total = 0;
  if (p == end)
    return -1;
  while (p < end) {
    double v;
    if (scan_decimal(&p, end, &v) != 0)
      return -1;
    size_t i, n = sizeof units / sizeof units[0];
    for (i = 0; i < n; i++) { /* "ms" is listed before "m", "ns"/"us" before "s" */
      size_t len = strlen(units[i].unit);
      if ((size_t)(end - p) >= len && memcmp(p, units[i].unit, len) == 0)
        break;
    }
    if (i == n)
      return -1;
    p += strlen(units[i].unit);
    total += v * units[i].ms;
  }
  *out_ms = total;
  return 0;
}

static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static int digits(const char **p, const char *end, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++, (*p)++) {
    if (*p == end || !is_digit(**p))
      return -1;
    v = v * 10 + (**p - '0');
  }
  *out = v;
  return 0;
}

static int expect(const char **p, const char *end, char c) {
  if (*p == end || ascii_lower(**p) != c)
    return -1;
  (*p)++;
  return 0;
}

/* RFC 3339 date-time, as Anthropic sends resets: "2025-08-21T12:40:59Z",
 * "2025-08-21T12:40:59.123+02:00". Into Unix ms; the date's fields are range-checked. */
static int parse_rfc3339(const char *value, int64_t *out_ms) {
  static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const char *p = value, *end;
  int y, mo, d, h, mi, s;
  trim(&p, &end);
  if (digits(&p, end, 4, &y) || expect(&p, end, '-') || digits(&p, end, 2, &mo) ||
      expect(&p, end, '-') || digits(&p, end, 2, &d))
    return -1;
  if (p == end || (ascii_lower(*p) != 't' && *p != ' '))
    return -1;
  p++;
  if (digits(&p, end, 2, &h) || expect(&p, end, ':') || digits(&p, end, 2, &mi) ||
      expect(&p, end, ':') || digits(&p, end, 2, &s))
    return -1;
  if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || s > 60)
    return -1;
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (mo == 2 && d == 29 && !leap)
    return -1;
  double frac = 0;
  if (p < end && *p == '.') {
    p++;
    if (p == end || !is_digit(*p))
      return -1;
    for (double unit = 0.1; p < end && is_digit(*p); p++, unit /= 10)
      frac += (*p - '0') * unit;
  }
  int64_t offset_min = 0;
  if (p < end && ascii_lower(*p) == 'z') {
    p++;
  } else if (p < end && (*p == '+' || *p == '-')) {
    int sign = *p == '-' ? -1 : 1, oh, om;
    p++;
    if (digits(&p, end, 2, &oh) || expect(&p, end, ':') || digits(&p, end, 2, &om) || oh > 23 ||
        om > 59)
      return -1;
    offset_min = sign * (oh * 60 + om);
  } else {
    return -1;
  }
  if (p != end)
    return -1;
  int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset_min * 60;
  *out_ms = secs * 1000 + (int64_t)(frac * 1000);
  return 0;
}

enum header_target { T_REQ, T_TOK, T_IN, T_OUT };
enum header_field { F_LIMIT, F_REMAINING, F_RESET_IN, F_RESET_AT };

static const struct {
  const char *name;
  enum header_target target;
  enum header_field field;
} known_headers[] = {
    {"x-ratelimit-limit-requests", T_REQ, F_LIMIT},
    {"x-ratelimit-limit-tokens", T_TOK, F_LIMIT},
    {"x-ratelimit-remaining-requests", T_REQ, F_REMAINING},
    {"x-ratelimit-remaining-tokens", T_TOK, F_REMAINING},
    {"x-ratelimit-reset-requests", T_REQ, F_RESET_IN},
    {"x-ratelimit-reset-tokens", T_TOK, F_RESET_IN},
    {"anthropic-ratelimit-requests-limit", T_REQ, F_LIMIT},
    {"anthropic-ratelimit-requests-remaining", T_REQ, F_REMAINING},
    {"anthropic-ratelimit-requests-reset", T_REQ, F_RESET_AT},
    /* The combined figure: input and output limits added together, which is what one token
     * budget holding prompt + expected output should be held to. */
    {"anthropic-ratelimit-tokens-limit", T_TOK, F_LIMIT},
    {"anthropic-ratelimit-tokens-remaining", T_TOK, F_REMAINING},
    {"anthropic-ratelimit-tokens-reset", T_TOK, F_RESET_AT},
    {"anthropic-ratelimit-input-tokens-limit", T_IN, F_LIMIT},
    {"anthropic-ratelimit-input-tokens-remaining", T_IN, F_REMAINING},
    {"anthropic-ratelimit-input-tokens-reset", T_IN, F_RESET_AT},
    {"anthropic-ratelimit-output-tokens-limit", T_OUT, F_LIMIT},
    {"anthropic-ratelimit-output-tokens-remaining", T_OUT, F_REMAINING},
    {"anthropic-ratelimit-output-tokens-reset", T_OUT, F_RESET_AT},
};

/* "Full again in reset_ms" means the server's bucket is now short of full by rate * reset_ms.
 * Our level is lowered to match, never raised. A minute at most: longer resets belong to other
 * (daily) limits and must not stall the per-minute budget. */
static void apply_reset(struct limiter_rate *r, double reset_ms) {
  if (r->budget.cap <= 0 || reset_ms < 0 || reset_ms > RESET_HORIZON_MS)
    return;
  if (reset_ms > MINUTE_MS)
    reset_ms = MINUTE_MS;
  double level = r->budget.cap - r->budget.rate * reset_ms;
  if (r->budget.level > level)
    r->budget.level = level;
}

void limiter_learn(struct limiter *l, const char *name, const char *value, int64_t now_ms) {
  if (l == NULL || name == NULL || value == NULL)
    return;
  size_t i, n = sizeof known_headers / sizeof known_headers[0];
  for (i = 0; i < n && !same_name(name, known_headers[i].name); i++)
    ;
  if (i == n)
    return;
  enum header_target target = known_headers[i].target;
  enum header_field field = known_headers[i].field;
  struct limiter_rate *r = target == T_REQ ? &l->req : target == T_TOK ? &l->tok : NULL;
  double v;
  int64_t at;

  switch (field) {
  case F_LIMIT:
    if (parse_count(value, &v) != 0 || v < 1)
      return; /* a limit of 0 would stop everything: not believable */
    if (r) {
      r->learned = v;
      rate_apply(r, pace_ms_of(l, r), now_ms);
    } else {
      *(target == T_IN ? &l->input_tpm : &l->output_tpm) = v;
    }
    break;
  case F_REMAINING:
    if (parse_count(value, &v) != 0)
      return;
    if (r) {
      /* The server counted our requests up to this one; those sent since are already out of
       * our level, so the lower of the two is the truth for a shared key. */
      rate_refill(r, now_ms);
      if (r->budget.cap > 0 && r->budget.level > v)
        r->budget.level = v;
    } else {
      *(target == T_IN ? &l->input_remaining : &l->output_remaining) = v;
    }
    break;
  case F_RESET_IN:
    if (r && parse_duration(value, &v) == 0) {
      rate_refill(r, now_ms);
      apply_reset(r, v);
    }
    break;
  case F_RESET_AT:
    if (r && parse_rfc3339(value, &at) == 0) {
      int64_t unix_now = now_ms + l->unix_offset_ms;
      rate_refill(r, now_ms);
      apply_reset(r, at > unix_now ? (double)(at - unix_now) : 0);
    }
    break;
  }
}

struct limiter_stats limiter_stats(const struct limiter *l) {
  struct limiter_stats s;
  memset(&s, 0, sizeof s);
  s.in_flight = l->in_flight;
  s.cap = l->ceiling;
  s.effective_cap = l->ceiling > 0 ? l->eff_cap : 0;
  s.rpm_capacity = l->req.budget.cap;
  s.rpm_level = l->req.budget.level;
  s.tpm_capacity = l->tok.budget.cap;
  s.tpm_level = l->tok.budget.level;
  s.input_tpm = l->input_tpm;
  s.input_remaining = l->input_remaining;
  s.output_tpm = l->output_tpm;
  s.output_remaining = l->output_remaining;
  s.breaker = l->breaker;
  s.breaker_cooldown_ms = l->cooldown_ms;
  s.admitted = l->admitted;
  s.succeeded = l->succeeded;
  s.throttled = l->throttled;
  s.failed = l->failed;
  s.cancelled = l->cancelled;
  s.decreases = l->decreases;
  s.increases = l->increases;
  s.opens = l->opens;
  return s;
}

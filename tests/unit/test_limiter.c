/* Unit tests for admission control (src/llm/limiter.c): bucket arithmetic and exact waits,
 * the in-flight cap, AIMD, the circuit breaker, header learning for OpenAI and Anthropic, and a
 * simulated run against 600 RPM / 200,000 TPM that must reach the limit and never pass it. */
#include "llm/limiter.h"
#include "ml_test.h"

#include <math.h>
#include <stdlib.h>

#define NEAR(a, b) (fabs((double)(a) - (double)(b)) < 1e-6)

static struct limiter make(long rpm, long tpm, int max_inflight, int adaptive) {
  struct limiter_config c;
  limiter_config_default(&c);
  c.rpm = rpm;
  c.tpm = tpm;
  c.max_inflight = max_inflight;
  c.adaptive = adaptive;
  c.breaker_threshold = 0; /* most tests look at one mechanism at a time */
  struct limiter l;
  limiter_init(&l, &c, 0);
  return l;
}

/* ---- reconfiguration (the REPL's :limits) ----------------------------------------------- */

static void reconfigure_changes_limits_and_keeps_what_was_learned(void) {
  struct limiter l = make(0, 0, 4, 0);
  struct limiter_ticket t[2];
  ML_CHECK_INT(limiter_acquire(&l, 10, 0, &t[0]), 0);
  ML_CHECK_INT(limiter_acquire(&l, 10, 0, &t[1]), 0);
  limiter_learn(&l, "x-ratelimit-limit-tokens", "50000", 0);
  struct limiter_config c = l.cfg;
  c.max_inflight = 1;
  c.rpm = 60;
  c.tpm = 100000;
  limiter_reconfigure(&l, &c, 1000);
  struct limiter_stats s = limiter_stats(&l);
  ML_CHECK_INT(s.cap, 1);
  ML_CHECK_INT(s.in_flight, 2); /* requests in flight are not forgotten */
  ML_CHECK(NEAR(s.rpm_capacity, 60));
  ML_CHECK(NEAR(s.tpm_capacity, 50000)); /* the learned limit is lower and still holds */
  struct limiter_ticket u;
  ML_CHECK_INT(limiter_acquire(&l, 10, 1000, &u), LIMITER_WAIT_SLOT); /* 2 in flight, cap 1 */
  c.max_inflight = 0;
  c.rpm = 0;
  limiter_reconfigure(&l, &c, 2000);
  s = limiter_stats(&l);
  ML_CHECK_INT(s.cap, 0);
  ML_CHECK(NEAR(s.rpm_capacity, 0));
}

static void reconfigure_keeps_server_slots_unless_a_cap_is_given(void) {
  struct limiter l = make(0, 0, 0, 0);
  limiter_set_slots(&l, 8);
  struct limiter_config c = l.cfg;
  c.rpm = 120;
  limiter_reconfigure(&l, &c, 0);
  ML_CHECK_INT(limiter_stats(&l).cap, 8);
  c.max_inflight = 3;
  limiter_reconfigure(&l, &c, 0);
  ML_CHECK_INT(limiter_stats(&l).cap, 3);
}

/* ---- buckets ------------------------------------------------------------------------- */

static void unlimited_limiter_admits_and_counts_in_flight(void) {
  struct limiter l = make(0, 0, 0, 0);
  struct limiter_ticket t[3];
  for (int i = 0; i < 3; i++)
    ML_CHECK_INT(limiter_acquire(&l, 1e9, 0, &t[i]), 0);
  ML_CHECK_INT(limiter_stats(&l).in_flight, 3);
  ML_CHECK_INT(limiter_stats(&l).effective_cap, 0);
  limiter_release(&l, &t[1], 5, LIMITER_OK, 1);
  ML_CHECK_INT(limiter_stats(&l).in_flight, 2);
  ML_CHECK_INT(limiter_stats(&l).admitted, 3);
  ML_CHECK_INT(limiter_stats(&l).succeeded, 1);
}

static void budgets_start_full(void) {
  struct limiter l = make(600, 200000, 0, 0);
  struct limiter_stats s = limiter_stats(&l);
  ML_CHECK(NEAR(s.rpm_capacity, 600) && NEAR(s.rpm_level, 600));
  ML_CHECK(NEAR(s.tpm_capacity, 200000) && NEAR(s.tpm_level, 200000));
  struct limiter_ticket t;
  ML_CHECK_INT(limiter_acquire(&l, 300, 0, &t), 0);
  s = limiter_stats(&l);
  ML_CHECK(NEAR(s.rpm_level, 599) && NEAR(s.tpm_level, 199700));
}

static void request_wait_is_exactly_the_deficit_over_the_rate(void) {
  struct limiter l = make(600, 0, 0, 0); /* one request per 100 ms */
  struct limiter_ticket t;
  ML_CHECK_INT(limiter_acquire(&l, 0, 0, &t), 0);
  ML_CHECK_INT(limiter_acquire(&l, 0, 0, &t), 100);
  ML_CHECK_INT(limiter_acquire(&l, 0, 37, &t), 63);
  ML_CHECK_INT(limiter_acquire(&l, 0, 99, &t), 1);
  ML_CHECK_INT(limiter_acquire(&l, 0, 100, &t), 0);
}

static void budget_refills_continuously_from_a_learned_low(void) {
  struct limiter l = make(60, 0, 0, 0); /* one request per second */
  struct limiter_ticket t;
  limiter_learn(&l, "x-ratelimit-remaining-requests", "0", 0);
  ML_CHECK(NEAR(limiter_stats(&l).rpm_level, 0));
  ML_CHECK_INT(limiter_acquire(&l, 0, 0, &t), 1000);
  ML_CHECK_INT(limiter_acquire(&l, 0, 250, &t), 750);
  ML_CHECK(NEAR(limiter_stats(&l).rpm_level, 0.25));
  ML_CHECK_INT(limiter_acquire(&l, 0, 1000, &t), 0);
  /* and never past its capacity */
  ML_CHECK_INT(limiter_acquire(&l, 0, 10000000, &t), 0);
  ML_CHECK(NEAR(limiter_stats(&l).rpm_level, 59));
}

static void token_wait_is_exactly_the_deficit_over_the_rate(void) {
  struct limiter l = make(0, 60000, 0, 0); /* one token per ms, paced by the second */
  struct limiter_ticket t;
  ML_CHECK_INT(limiter_acquire(&l, 600, 0, &t), 0);
  ML_CHECK_INT(limiter_acquire(&l, 600, 0, &t), 200);
  ML_CHECK_INT(limiter_acquire(&l, 600, 150, &t), 50);
  ML_CHECK_INT(limiter_acquire(&l, 600, 200, &t), 0);
  ML_CHECK_INT(limiter_acquire(&l, 450, 200, &t), 450);
}

static void admissions_are_spread_at_the_limit_rate(void) {
  struct limiter l = make(600, 0, 0, 0);
  struct limiter_ticket t;
  int admitted = 0;
  for (int64_t now = 0; now < 1000; now++)
    while (limiter_acquire(&l, 0, now, &t) == 0)
      admitted++;
  /* A full minute's budget is there, but it goes out at 10/s, not all at once. */
  ML_CHECK_INT(admitted, 10);
}

static void refund_returns_unused_tokens(void) {
  struct limiter l = make(0, 60000, 0, 0);
  struct limiter_ticket t;
  ML_CHECK_INT(limiter_acquire(&l, 1000, 0, &t), 0);
  ML_CHECK(NEAR(limiter_stats(&l).tpm_level, 59000));
  limiter_release(&l, &t, 400, LIMITER_OK, 0);
  ML_CHECK(NEAR(limiter_stats(&l).tpm_level, 59600));
}

static void refund_never_overfills_the_budget(void) {
  struct limiter l = make(0, 60000, 0, 0);
  struct limiter_ticket t;
  ML_CHECK_INT(limiter_acquire(&l, 1000, 0, &t), 0);
  limiter_release(&l, &t, 0, LIMITER_OK, 5000);
  ML_CHECK(NEAR(limiter_stats(&l).tpm_level, 60000));
}

static void unknown_actual_keeps_the_estimate(void) {
  struct limiter l = make(0, 60000, 0, 0);
  struct limiter_ticket t;
  ML_CHECK_INT(limiter_acquire(&l, 1000, 0, &t), 0);
  limiter_release(&l, &t, -1, LIMITER_FAILED, 0);
  ML_CHECK(NEAR(limiter_stats(&l).tpm_level, 59000));
}

static void usage_beyond_the_estimate_becomes_debt(void) {
  struct limiter l = make(0, 60000, 0, 0);
  struct limiter_ticket t;
  ML_CHECK_INT(limiter_acquire(&l, 1000, 0, &t), 0);
  limiter_release(&l, &t, 70000, LIMITER_OK, 0);
  ML_CHECK(NEAR(limiter_stats(&l).tpm_level, -10000));
  /* 70,000 tokens went out at once against 1 token/ms: the next request waits until they have
   * been paid for at the limit's rate, less the pace's one second of slack, plus its own. */
  ML_CHECK_INT(limiter_acquire(&l, 10, 0, &t), 70000 - 1000 + 10);
  ML_CHECK_INT(limiter_acquire(&l, 10, 69009, &t), 1);
  ML_CHECK_INT(limiter_acquire(&l, 10, 69010, &t), 0);
}

static void request_larger_than_the_budget_is_admitted_when_full(void) {
  struct limiter l = make(0, 6000, 0, 0); /* 0.1 token/ms */
  struct limiter_ticket t;
  ML_CHECK_INT(limiter_acquire(&l, 10000, 0, &t), 0);
  ML_CHECK(NEAR(limiter_stats(&l).tpm_level, -4000));
  /* the debt is paid before anything else goes */
  ML_CHECK(limiter_acquire(&l, 10, 0, &t) >= 40100);
}

static void request_larger_than_the_budget_waits_until_full(void) {
  struct limiter l = make(0, 6000, 0, 0);
  struct limiter_ticket t;
  ML_CHECK_INT(limiter_acquire(&l, 5, 0, &t), 0);
  /* 5 tokens short of full at 0.1/ms: 50 ms, not "never". */
  ML_CHECK_INT(limiter_acquire(&l, 10000, 0, &t), 50);
  ML_CHECK_INT(limiter_acquire(&l, 10000, 50, &t), 0);
}

static void negative_or_nan_estimates_count_as_zero(void) {
  struct limiter l = make(0, 6000, 0, 0);
  struct limiter_ticket t;
  ML_CHECK_INT(limiter_acquire(&l, -50, 0, &t), 0);
  ML_CHECK_INT(limiter_acquire(&l, NAN, 0, &t), 0);
  ML_CHECK(NEAR(limiter_stats(&l).tpm_level, 6000));
}

static void null_arguments_are_refused(void) {
  struct limiter l = make(0, 0, 0, 0);
  struct limiter_ticket t;
  ML_CHECK_INT(limiter_acquire(NULL, 1, 0, &t), LIMITER_EINVAL);
  ML_CHECK_INT(limiter_acquire(&l, 1, 0, NULL), LIMITER_EINVAL);
  limiter_release(&l, NULL, 0, LIMITER_OK, 0);
  limiter_learn(&l, NULL, "1", 0);
  limiter_learn(&l, "x-ratelimit-limit-requests", NULL, 0);
  ML_CHECK_INT(limiter_stats(&l).in_flight, 0);
}

/* ---- in-flight cap ------------------------------------------------------------------- */

static void full_in_flight_cap_says_wait_for_a_slot(void) {
  struct limiter l = make(0, 0, 2, 0);
  struct limiter_ticket a, b, c;
  ML_CHECK_INT(limiter_acquire(&l, 0, 0, &a), 0);
  ML_CHECK_INT(limiter_acquire(&l, 0, 0, &b), 0);
  ML_CHECK_INT(limiter_acquire(&l, 0, 0, &c), LIMITER_WAIT_SLOT);
  limiter_release(&l, &a, 0, LIMITER_OK, 1);
  ML_CHECK_INT(limiter_acquire(&l, 0, 1, &c), 0);
}

static void budget_wait_is_reported_before_the_slot(void) {
  struct limiter l = make(60, 0, 1, 0);
  struct limiter_ticket a, b;
  ML_CHECK_INT(limiter_acquire(&l, 0, 0, &a), 0);
  ML_CHECK_INT(limiter_acquire(&l, 0, 0, &b), 1000);
  ML_CHECK_INT(limiter_acquire(&l, 0, 1000, &b), LIMITER_WAIT_SLOT);
}

static void releasing_twice_is_harmless(void) {
  struct limiter l = make(0, 60000, 2, 0);
  struct limiter_ticket a, b;
  ML_CHECK_INT(limiter_acquire(&l, 10, 0, &a), 0);
  ML_CHECK_INT(limiter_acquire(&l, 10, 0, &b), 0);
  limiter_release(&l, &a, 0, LIMITER_OK, 0);
  limiter_release(&l, &a, 0, LIMITER_OK, 0); /* no second refund, no second slot */
  ML_CHECK_INT(limiter_stats(&l).in_flight, 1);
  ML_CHECK_INT(limiter_stats(&l).succeeded, 1);
  ML_CHECK(NEAR(limiter_stats(&l).tpm_level, 59990));
}

/* ---- AIMD ---------------------------------------------------------------------------- */

static void fill(struct limiter *l, struct limiter_ticket *t, int n, int64_t now) {
  for (int i = 0; i < n; i++)
    ML_CHECK_INT(limiter_acquire(l, 0, now, &t[i]), 0);
}

static void a_wave_of_429s_halves_the_cap_once(void) {
  struct limiter l = make(0, 0, 16, 1);
  struct limiter_ticket t[16];
  fill(&l, t, 16, 0);
  for (int i = 0; i < 16; i++)
    limiter_release(&l, &t[i], 0, LIMITER_THROTTLED, i * 10);
  ML_CHECK_INT(limiter_stats(&l).effective_cap, 8);
  ML_CHECK_INT(limiter_stats(&l).decreases, 1);
  ML_CHECK_INT(limiter_stats(&l).throttled, 16);
}

static void a_new_wave_throttled_within_a_second_does_not_halve_again(void) {
  struct limiter l = make(0, 0, 16, 1);
  struct limiter_ticket t[16], u;
  fill(&l, t, 16, 0);
  limiter_release(&l, &t[0], 0, LIMITER_THROTTLED, 0);
  ML_CHECK_INT(limiter_acquire(&l, 0, 10, &u), LIMITER_WAIT_SLOT); /* 15 in flight, cap 8 */
  for (int i = 1; i < 9; i++)
    limiter_release(&l, &t[i], 0, LIMITER_CANCELLED, 10);
  ML_CHECK_INT(limiter_acquire(&l, 0, 10, &u), 0);
  limiter_release(&l, &u, 0, LIMITER_THROTTLED, 999);
  ML_CHECK_INT(limiter_stats(&l).effective_cap, 8);
}

static void a_new_wave_throttled_after_a_second_halves_again(void) {
  struct limiter l = make(0, 0, 16, 1);
  struct limiter_ticket t[16];
  fill(&l, t, 16, 0);
  for (int i = 0; i < 16; i++)
    limiter_release(&l, &t[i], 0, LIMITER_THROTTLED, 0);
  fill(&l, t, 8, 1000);
  limiter_release(&l, &t[0], 0, LIMITER_THROTTLED, 1000);
  ML_CHECK_INT(limiter_stats(&l).effective_cap, 4);
  ML_CHECK_INT(limiter_stats(&l).decreases, 2);
}

static void an_old_wave_throttled_late_does_not_halve_again(void) {
  struct limiter l = make(0, 0, 16, 1);
  struct limiter_ticket t[16];
  fill(&l, t, 16, 0);
  limiter_release(&l, &t[0], 0, LIMITER_THROTTLED, 0);
  /* sent under the old cap, answered 5 s later */
  limiter_release(&l, &t[1], 0, LIMITER_THROTTLED, 5000);
  ML_CHECK_INT(limiter_stats(&l).effective_cap, 8);
}

static void the_cap_never_drops_below_one(void) {
  struct limiter l = make(0, 0, 4, 1);
  struct limiter_ticket t;
  for (int64_t now = 0; now < 20000; now += 1000) {
    ML_CHECK_INT(limiter_acquire(&l, 0, now, &t), 0);
    limiter_release(&l, &t, 0, LIMITER_THROTTLED, now);
  }
  ML_CHECK_INT(limiter_stats(&l).effective_cap, 1);
}

static void successes_raise_the_cap_by_one_per_round_trip(void) {
  struct limiter l = make(0, 0, 8, 1);
  struct limiter_ticket t[8];
  fill(&l, t, 8, 0);
  limiter_release(&l, &t[0], 0, LIMITER_THROTTLED, 0); /* 8 in flight: cap 4 */
  for (int i = 1; i < 8; i++)
    limiter_release(&l, &t[i], 0, LIMITER_CANCELLED, 0);
  ML_CHECK_INT(limiter_stats(&l).effective_cap, 4);
  fill(&l, t, 4, 10);
  int slot = 0, oks = 0;
  while (limiter_stats(&l).effective_cap == 4) {
    limiter_release(&l, &t[slot], 0, LIMITER_OK, 20);
    ML_CHECK_INT(limiter_acquire(&l, 0, 20, &t[slot]), 0); /* keep the cap full */
    slot = (slot + 1) % 4;
    oks++;
    if (oks > 100)
      break;
  }
  ML_CHECK_INT(oks, 4);
  ML_CHECK_INT(limiter_stats(&l).increases, 1);
}

static void an_unused_cap_does_not_grow(void) {
  struct limiter l = make(0, 0, 8, 1);
  struct limiter_ticket t[8];
  fill(&l, t, 8, 0);
  for (int i = 0; i < 8; i++)
    limiter_release(&l, &t[i], 0, i == 0 ? LIMITER_THROTTLED : LIMITER_CANCELLED, 0);
  for (int i = 0; i < 100; i++) { /* one at a time against a cap of 4 */
    ML_CHECK_INT(limiter_acquire(&l, 0, 10, &t[0]), 0);
    limiter_release(&l, &t[0], 0, LIMITER_OK, 10);
  }
  ML_CHECK_INT(limiter_stats(&l).effective_cap, 4);
}

static void increases_stop_at_the_configured_cap(void) {
  struct limiter l = make(0, 0, 3, 1);
  struct limiter_ticket t[3];
  fill(&l, t, 3, 0);
  for (int i = 0; i < 300; i++) {
    limiter_release(&l, &t[i % 3], 0, LIMITER_OK, 0);
    ML_CHECK_INT(limiter_acquire(&l, 0, 0, &t[i % 3]), 0);
  }
  ML_CHECK_INT(limiter_stats(&l).effective_cap, 3);
  ML_CHECK_INT(limiter_stats(&l).increases, 0);
}

static void unlimited_adaptive_starts_open_and_first_429_halves_what_was_in_flight(void) {
  struct limiter l = make(0, 0, 0, 1);
  ML_CHECK_INT(limiter_stats(&l).cap, LIMITER_ADAPTIVE_CEILING);
  ML_CHECK_INT(limiter_stats(&l).effective_cap, LIMITER_ADAPTIVE_CEILING);
  struct limiter_ticket *t = calloc(100, sizeof *t);
  fill(&l, t, 100, 0);
  limiter_release(&l, &t[0], 0, LIMITER_THROTTLED, 0);
  ML_CHECK_INT(limiter_stats(&l).effective_cap, 50);
  free(t);
}

static void a_fixed_cap_ignores_429s(void) {
  struct limiter l = make(0, 0, 8, 0);
  struct limiter_ticket t[8];
  fill(&l, t, 8, 0);
  for (int i = 0; i < 8; i++)
    limiter_release(&l, &t[i], 0, LIMITER_THROTTLED, i * 2000);
  ML_CHECK_INT(limiter_stats(&l).effective_cap, 8);
  ML_CHECK_INT(limiter_stats(&l).decreases, 0);
}

static void server_slots_become_the_cap_when_none_is_configured(void) {
  struct limiter l = make(0, 0, 0, 0);
  limiter_set_slots(&l, 4);
  ML_CHECK_INT(limiter_stats(&l).cap, 4);
  struct limiter_ticket t[5];
  fill(&l, t, 4, 0);
  ML_CHECK_INT(limiter_acquire(&l, 0, 0, &t[4]), LIMITER_WAIT_SLOT);
  limiter_set_slots(&l, 0);
  ML_CHECK_INT(limiter_stats(&l).cap, 0);
  ML_CHECK_INT(limiter_acquire(&l, 0, 0, &t[4]), 0);
}

static void a_configured_cap_wins_over_server_slots(void) {
  struct limiter l = make(0, 0, 16, 0);
  limiter_set_slots(&l, 4);
  ML_CHECK_INT(limiter_stats(&l).cap, 16);
}

/* ---- circuit breaker ----------------------------------------------------------------- */

static struct limiter make_breaker(int threshold, long cooldown_ms) {
  struct limiter_config c;
  limiter_config_default(&c);
  c.breaker_threshold = threshold;
  c.breaker_cooldown_ms = cooldown_ms;
  struct limiter l;
  limiter_init(&l, &c, 0);
  return l;
}

static void one_request(struct limiter *l, enum limiter_outcome o, int64_t now) {
  struct limiter_ticket t;
  ML_CHECK_INT(limiter_acquire(l, 0, now, &t), 0);
  limiter_release(l, &t, 0, o, now);
}

static void breaker_defaults_are_5_failures_and_10s(void) {
  struct limiter_config c;
  limiter_config_default(&c);
  ML_CHECK_INT(c.breaker_threshold, 5);
  ML_CHECK_INT(c.breaker_cooldown_ms, 10000);
}

static void breaker_opens_after_consecutive_failures_only(void) {
  struct limiter l = make_breaker(3, 1000);
  one_request(&l, LIMITER_FAILED, 0);
  one_request(&l, LIMITER_THROTTLED, 0);
  one_request(&l, LIMITER_OK, 0); /* the run is broken */
  one_request(&l, LIMITER_FAILED, 0);
  one_request(&l, LIMITER_CANCELLED, 0); /* says nothing either way */
  one_request(&l, LIMITER_FAILED, 0);
  ML_CHECK_INT(limiter_stats(&l).breaker, LIMITER_CLOSED);
  one_request(&l, LIMITER_THROTTLED, 100);
  ML_CHECK_INT(limiter_stats(&l).breaker, LIMITER_OPEN);
  ML_CHECK_INT(limiter_stats(&l).opens, 1);
}

static void open_breaker_refuses_for_the_rest_of_the_cooldown(void) {
  struct limiter l = make_breaker(1, 1000);
  struct limiter_ticket t;
  one_request(&l, LIMITER_FAILED, 100);
  ML_CHECK_INT(limiter_acquire(&l, 0, 100, &t), 1000);
  ML_CHECK_INT(limiter_acquire(&l, 0, 500, &t), 600);
  ML_CHECK_INT(limiter_acquire(&l, 0, 1099, &t), 1);
  ML_CHECK_INT(limiter_acquire(&l, 0, 1100, &t), 0);
}

static void half_open_admits_exactly_one_probe(void) {
  struct limiter l = make_breaker(1, 1000);
  struct limiter_ticket probe, other;
  one_request(&l, LIMITER_FAILED, 0);
  ML_CHECK_INT(limiter_acquire(&l, 0, 1000, &probe), 0);
  ML_CHECK(probe.probe);
  ML_CHECK_INT(limiter_stats(&l).breaker, LIMITER_HALF_OPEN);
  for (int i = 0; i < 5; i++)
    ML_CHECK_INT(limiter_acquire(&l, 0, 1000 + i * 1000, &other), LIMITER_WAIT_SLOT);
  ML_CHECK_INT(limiter_stats(&l).in_flight, 1);
}

static void probe_success_closes_the_breaker(void) {
  struct limiter l = make_breaker(1, 1000);
  struct limiter_ticket probe, a, b;
  one_request(&l, LIMITER_FAILED, 0);
  ML_CHECK_INT(limiter_acquire(&l, 0, 1000, &probe), 0);
  limiter_release(&l, &probe, 0, LIMITER_OK, 1200);
  ML_CHECK_INT(limiter_stats(&l).breaker, LIMITER_CLOSED);
  ML_CHECK_INT(limiter_acquire(&l, 0, 1200, &a), 0);
  ML_CHECK_INT(limiter_acquire(&l, 0, 1200, &b), 0);
  ML_CHECK(!a.probe && !b.probe);
}

static void probe_failure_reopens_with_double_the_cooldown(void) {
  struct limiter l = make_breaker(1, 1000);
  struct limiter_ticket probe, t;
  one_request(&l, LIMITER_FAILED, 0);
  ML_CHECK_INT(limiter_acquire(&l, 0, 1000, &probe), 0);
  limiter_release(&l, &probe, 0, LIMITER_FAILED, 1500);
  ML_CHECK_INT(limiter_stats(&l).breaker, LIMITER_OPEN);
  ML_CHECK_INT(limiter_acquire(&l, 0, 1500, &t), 2000);
  ML_CHECK_INT(limiter_acquire(&l, 0, 3500, &probe), 0);
  limiter_release(&l, &probe, 0, LIMITER_THROTTLED, 3500);
  ML_CHECK_INT(limiter_acquire(&l, 0, 3500, &t), 4000);
  ML_CHECK_INT(limiter_stats(&l).opens, 3);
}

static void cooldown_doubling_stops_at_five_minutes(void) {
  struct limiter l = make_breaker(1, 1000);
  struct limiter_ticket probe;
  int64_t now = 0;
  one_request(&l, LIMITER_FAILED, now);
  for (int i = 0; i < 20; i++) {
    now += limiter_stats(&l).breaker_cooldown_ms;
    ML_CHECK_INT(limiter_acquire(&l, 0, now, &probe), 0);
    limiter_release(&l, &probe, 0, LIMITER_FAILED, now);
  }
  ML_CHECK_INT(limiter_stats(&l).breaker_cooldown_ms, LIMITER_MAX_COOLDOWN_MS);
  ML_CHECK_INT(limiter_acquire(&l, 0, now, &probe), LIMITER_MAX_COOLDOWN_MS);
}

static void closing_restores_the_configured_cooldown(void) {
  struct limiter l = make_breaker(1, 1000);
  struct limiter_ticket probe, t;
  one_request(&l, LIMITER_FAILED, 0);
  ML_CHECK_INT(limiter_acquire(&l, 0, 1000, &probe), 0);
  limiter_release(&l, &probe, 0, LIMITER_FAILED, 1000); /* cooldown 2 s */
  ML_CHECK_INT(limiter_acquire(&l, 0, 3000, &probe), 0);
  limiter_release(&l, &probe, 0, LIMITER_OK, 3000);
  one_request(&l, LIMITER_FAILED, 4000);
  ML_CHECK_INT(limiter_acquire(&l, 0, 4000, &t), 1000);
}

static void cancelled_probe_lets_the_next_request_probe(void) {
  struct limiter l = make_breaker(1, 1000);
  struct limiter_ticket probe;
  one_request(&l, LIMITER_FAILED, 0);
  ML_CHECK_INT(limiter_acquire(&l, 0, 1000, &probe), 0);
  limiter_release(&l, &probe, 0, LIMITER_CANCELLED, 1100);
  ML_CHECK_INT(limiter_stats(&l).breaker, LIMITER_HALF_OPEN);
  ML_CHECK_INT(limiter_acquire(&l, 0, 1100, &probe), 0);
  ML_CHECK(probe.probe);
}

static void failures_of_requests_sent_before_opening_do_not_extend_it(void) {
  struct limiter l = make_breaker(2, 1000);
  struct limiter_ticket t[4], u;
  for (int i = 0; i < 4; i++)
    ML_CHECK_INT(limiter_acquire(&l, 0, 0, &t[i]), 0);
  for (int i = 0; i < 4; i++)
    limiter_release(&l, &t[i], 0, LIMITER_FAILED, 100 * i);
  ML_CHECK_INT(limiter_stats(&l).opens, 1);
  ML_CHECK_INT(limiter_acquire(&l, 0, 1100, &u), 0); /* opened at 100, not 300 */
}

/* ---- learning from headers ----------------------------------------------------------- */

static void openai_limits_set_the_capacities(void) {
  struct limiter l = make(0, 0, 0, 0);
  limiter_learn(&l, "x-ratelimit-limit-requests", "600", 0);
  limiter_learn(&l, "x-ratelimit-limit-tokens", "200000", 0);
  struct limiter_stats s = limiter_stats(&l);
  ML_CHECK(NEAR(s.rpm_capacity, 600) && NEAR(s.rpm_level, 600));
  ML_CHECK(NEAR(s.tpm_capacity, 200000) && NEAR(s.tpm_level, 200000));
  struct limiter_ticket t;
  ML_CHECK_INT(limiter_acquire(&l, 0, 0, &t), 0);
  ML_CHECK_INT(limiter_acquire(&l, 0, 0, &t), 100);
}

static void learned_limits_never_raise_a_configured_one(void) {
  struct limiter l = make(100, 0, 0, 0);
  limiter_learn(&l, "x-ratelimit-limit-requests", "600", 0);
  ML_CHECK(NEAR(limiter_stats(&l).rpm_capacity, 100));
  limiter_learn(&l, "x-ratelimit-limit-requests", "50", 0);
  ML_CHECK(NEAR(limiter_stats(&l).rpm_capacity, 50));
  ML_CHECK(NEAR(limiter_stats(&l).rpm_level, 50));
  limiter_learn(&l, "x-ratelimit-limit-requests", "80", 0); /* the key's limit went up */
  ML_CHECK(NEAR(limiter_stats(&l).rpm_capacity, 80));
  ML_CHECK(NEAR(limiter_stats(&l).rpm_level, 50)); /* but no fresh burst comes with it */
}

static void remaining_lowers_the_level_and_never_raises_it(void) {
  struct limiter l = make(600, 60000, 0, 0);
  limiter_learn(&l, "x-ratelimit-remaining-requests", "10", 0);
  limiter_learn(&l, "x-ratelimit-remaining-tokens", "1234.5", 0);
  ML_CHECK(NEAR(limiter_stats(&l).rpm_level, 10));
  ML_CHECK(NEAR(limiter_stats(&l).tpm_level, 1234.5));
  limiter_learn(&l, "x-ratelimit-remaining-requests", "500", 0);
  limiter_learn(&l, "x-ratelimit-remaining-tokens", "60000", 0);
  ML_CHECK(NEAR(limiter_stats(&l).rpm_level, 10));
  ML_CHECK(NEAR(limiter_stats(&l).tpm_level, 1234.5));
}

static void remaining_without_a_known_limit_is_ignored(void) {
  struct limiter l = make(0, 0, 0, 0);
  limiter_learn(&l, "x-ratelimit-remaining-requests", "0", 0);
  struct limiter_ticket t;
  ML_CHECK_INT(limiter_acquire(&l, 0, 0, &t), 0);
}

static void openai_reset_durations_lower_the_level_to_match(void) {
  struct limiter l = make(0, 60000, 0, 0); /* 1 token/ms */
  limiter_learn(&l, "x-ratelimit-reset-tokens", "1.5s", 0);
  ML_CHECK(NEAR(limiter_stats(&l).tpm_level, 58500));
  limiter_learn(&l, "x-ratelimit-reset-tokens", "250ms", 0); /* higher: ignored */
  ML_CHECK(NEAR(limiter_stats(&l).tpm_level, 58500));
  limiter_learn(&l, "x-ratelimit-reset-tokens", "2s500ms", 0);
  ML_CHECK(NEAR(limiter_stats(&l).tpm_level, 57500));
  limiter_learn(&l, "x-ratelimit-reset-tokens", "0m3s", 0);
  ML_CHECK(NEAR(limiter_stats(&l).tpm_level, 57000));
  limiter_learn(&l, "x-ratelimit-reset-tokens", "6m0s", 0); /* at most a minute: empty */
  ML_CHECK(NEAR(limiter_stats(&l).tpm_level, 0));
}

static void openai_reset_accepts_every_go_duration_unit(void) {
  static const struct {
    const char *value;
    double level;
  } cases[] = {{"0", 60000},
               {"0s", 60000},
               {"20ms", 59980},
               {"1h", 0},
               {"1m0.5s", 0},
               {"1500000us", 58500},
               {"1500000\xc2\xb5s", 58500},
               {"2000000000ns", 58000},
               {" 4s ", 56000}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct limiter l = make(0, 60000, 0, 0);
    limiter_learn(&l, "x-ratelimit-reset-tokens", cases[i].value, 0);
    if (!NEAR(limiter_stats(&l).tpm_level, cases[i].level))
      fprintf(stderr, "  \"%s\" gave %f\n", cases[i].value, limiter_stats(&l).tpm_level);
    ML_CHECK(NEAR(limiter_stats(&l).tpm_level, cases[i].level));
  }
}

static void resets_beyond_an_hour_are_ignored(void) {
  struct limiter l = make(0, 60000, 0, 0);
  limiter_learn(&l, "x-ratelimit-reset-tokens", "1h2m3.5s", 0); /* a daily limit, not ours */
  limiter_learn(&l, "x-ratelimit-reset-tokens", "24h", 0);
  ML_CHECK(NEAR(limiter_stats(&l).tpm_level, 60000));
}

static void anthropic_headers_set_limits_and_levels(void) {
  struct limiter l = make(0, 0, 0, 0);
  limiter_learn(&l, "anthropic-ratelimit-requests-limit", "1000", 0);
  limiter_learn(&l, "anthropic-ratelimit-requests-remaining", "999", 0);
  limiter_learn(&l, "anthropic-ratelimit-tokens-limit", "96000", 0);
  limiter_learn(&l, "anthropic-ratelimit-tokens-remaining", "90000", 0);
  limiter_learn(&l, "anthropic-ratelimit-input-tokens-limit", "80000", 0);
  limiter_learn(&l, "anthropic-ratelimit-input-tokens-remaining", "75000", 0);
  limiter_learn(&l, "anthropic-ratelimit-output-tokens-limit", "16000", 0);
  limiter_learn(&l, "anthropic-ratelimit-output-tokens-remaining", "15000", 0);
  struct limiter_stats s = limiter_stats(&l);
  ML_CHECK(NEAR(s.rpm_capacity, 1000) && NEAR(s.rpm_level, 999));
  ML_CHECK(NEAR(s.tpm_capacity, 96000) && NEAR(s.tpm_level, 90000));
  ML_CHECK(NEAR(s.input_tpm, 80000) && NEAR(s.input_remaining, 75000));
  ML_CHECK(NEAR(s.output_tpm, 16000) && NEAR(s.output_remaining, 15000));
}

static void anthropic_reset_timestamps_lower_the_level(void) {
  struct limiter l = make(0, 60000, 0, 0);
  l.unix_offset_ms = INT64_C(1755780059000); /* now_ms 0 is 2025-08-21T12:40:59Z */
  limiter_learn(&l, "anthropic-ratelimit-tokens-reset", "2025-08-21T12:41:09Z", 0);
  ML_CHECK(NEAR(limiter_stats(&l).tpm_level, 50000));
  limiter_learn(&l, "anthropic-ratelimit-tokens-reset", "2025-08-21T14:41:19.5+02:00", 0);
  ML_CHECK(NEAR(limiter_stats(&l).tpm_level, 39500));
  limiter_learn(&l, "anthropic-ratelimit-tokens-reset", "2025-08-21t12:40:00z", 0); /* past */
  ML_CHECK(NEAR(limiter_stats(&l).tpm_level, 39500));
}

static void anthropic_reset_on_an_unshared_clock_is_ignored(void) {
  /* now_ms from a monotonic clock and no offset: the reset looks decades away. */
  struct limiter l = make(0, 60000, 0, 0);
  limiter_learn(&l, "anthropic-ratelimit-tokens-reset", "2025-08-21T12:41:09Z", 123456);
  ML_CHECK(NEAR(limiter_stats(&l).tpm_level, 60000));
}

static void header_names_are_case_insensitive(void) {
  struct limiter l = make(0, 0, 0, 0);
  limiter_learn(&l, "X-RateLimit-Limit-Requests", "60", 0);
  limiter_learn(&l, "Anthropic-RateLimit-Tokens-Limit", "1000", 0);
  ML_CHECK(NEAR(limiter_stats(&l).rpm_capacity, 60));
  ML_CHECK(NEAR(limiter_stats(&l).tpm_capacity, 1000));
}

static void malformed_values_are_ignored(void) {
  static const char *const counts[] = {"",     " ",  "abc", "-5", "12x", "1e3", "5 5",
                                       "0x10", "1.", ".5",  "+7", "inf", "nan", "1,000"};
  static const char *const durations[] = {"",   "5",   "1x",  "s",   "-1s", "1.s",
                                          "ms", "1s2", "1 s", "1sm", "h1",  "1.5.5s"};
  static const char *const stamps[] = {"2025-13-01T00:00:00Z",     "2025-02-30T00:00:00Z",
                                       "2023-02-29T00:00:00Z",     "2025-08-21T12:40:59",
                                       "2025-08-21T24:00:00Z",     "2025-8-21T12:40:59Z",
                                       "2025-08-21T12:41:09+2:00", "yesterday",
                                       "2025-08-21T12:41:09Zjunk", "2025-08-21T12:41:09.Z"};
  struct limiter l = make(600, 60000, 0, 0);
  l.unix_offset_ms = INT64_C(1755780059000);
  for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
    limiter_learn(&l, "x-ratelimit-limit-requests", counts[i], 0);
    limiter_learn(&l, "x-ratelimit-remaining-requests", counts[i], 0);
    limiter_learn(&l, "anthropic-ratelimit-tokens-limit", counts[i], 0);
    limiter_learn(&l, "anthropic-ratelimit-input-tokens-limit", counts[i], 0);
  }
  limiter_learn(&l, "x-ratelimit-limit-requests", "0", 0); /* would stop everything */
  for (size_t i = 0; i < sizeof durations / sizeof durations[0]; i++)
    limiter_learn(&l, "x-ratelimit-reset-tokens", durations[i], 0);
  for (size_t i = 0; i < sizeof stamps / sizeof stamps[0]; i++)
    limiter_learn(&l, "anthropic-ratelimit-tokens-reset", stamps[i], 0);
  struct limiter_stats s = limiter_stats(&l);
  ML_CHECK(NEAR(s.rpm_capacity, 600) && NEAR(s.rpm_level, 600));
  ML_CHECK(NEAR(s.tpm_capacity, 60000) && NEAR(s.tpm_level, 60000));
  ML_CHECK(NEAR(s.input_tpm, 0));
}

static void unknown_headers_are_ignored(void) {
  struct limiter l = make(600, 0, 0, 0);
  limiter_learn(&l, "x-ratelimit-limit-requests-day", "1", 0);
  limiter_learn(&l, "x-ratelimit-limit", "1", 0);
  limiter_learn(&l, "retry-after", "1", 0);
  ML_CHECK(NEAR(limiter_stats(&l).rpm_capacity, 600));
}

/* ---- simulation ---------------------------------------------------------------------- */

/* 600 RPM / 200,000 TPM. Requests estimated at `est` tokens use +-10%, complete 800 ms after
 * admission, and are retried on the clock's next 10 ms step at or after the wait the limiter
 * gave (or on a release, for WAIT_SLOT). */
struct sim_run {
  int64_t *at;  /* admission times, ascending */
  double *used; /* tokens actually used by each */
  int n;
};

struct sim_flight {
  struct limiter_ticket t;
  int64_t done;
  double used;
};

static void simulate(int total, int64_t horizon_ms, double est, struct sim_run *run) {
  struct limiter_config c;
  limiter_config_default(&c);
  c.rpm = 600;
  c.tpm = 200000;
  c.adaptive = 1;
  struct limiter l;
  limiter_init(&l, &c, 0);
  int cap = (int)(horizon_ms / 50) + 16;
  run->at = calloc((size_t)cap, sizeof *run->at);
  run->used = calloc((size_t)cap, sizeof *run->used);
  run->n = 0;
  struct sim_flight *fl = calloc(4096, sizeof *fl);
  int nfl = 0, queued = total > 0 ? total : 500;
  uint64_t rng = 0x5eed;
  int64_t next_try = 0;
  for (int64_t now = 0; now < horizon_ms; now += 10) {
    for (int i = 0; i < nfl;) {
      if (fl[i].done <= now) {
        limiter_release(&l, &fl[i].t, fl[i].used, LIMITER_OK, now);
        fl[i] = fl[--nfl];
      } else {
        i++;
      }
    }
    if (now < next_try)
      continue;
    while (queued > 0 && nfl < 4096 && run->n < cap) {
      struct sim_flight *f = &fl[nfl];
      long r = limiter_acquire(&l, est, now, &f->t);
      if (r != 0) {
        next_try = r > 0 ? now + r : now + 10;
        break;
      }
      rng = rng * 6364136223846793005u + 1442695040888963407u;
      f->used = est * 0.9 + (double)((rng >> 33) % (uint64_t)(est * 0.2 + 1)); /* +-10% */
      f->done = now + 800;
      nfl++;
      run->at[run->n] = now;
      run->used[run->n] = f->used;
      run->n++;
      if (total > 0)
        queued--; /* otherwise the backlog is topped up: always 500 waiting */
    }
  }
  ML_CHECK_INT(limiter_stats(&l).throttled, 0);
  free(fl);
}

/* The most requests and tokens admitted in any [t, t + 60 s). */
static void busiest_minute(const struct sim_run *run, int *requests, double *tokens) {
  *requests = 0;
  *tokens = 0;
  int j = 0;
  double sum = 0;
  for (int i = 0; i < run->n; i++) {
    while (j < run->n && run->at[j] < run->at[i] + 60000)
      sum += run->used[j++];
    if (j - i > *requests)
      *requests = j - i;
    if (sum > *tokens)
      *tokens = sum;
    sum -= run->used[i];
  }
}

static double rate_after_10s(const struct sim_run *run, int64_t end_ms) {
  int count = 0;
  for (int i = 0; i < run->n; i++)
    count += run->at[i] >= 10000 && run->at[i] < end_ms;
  return count * 60000.0 / (double)(end_ms - 10000);
}

static void sim_500_queued_requests_drain_at_the_limit(void) {
  struct sim_run run;
  simulate(500, 120000, 300, &run);
  ML_CHECK_INT(run.n, 500);
  int req;
  double tok;
  busiest_minute(&run, &req, &tok);
  /* until the last admission, plus one spacing so the final request's slot is counted */
  double rate = rate_after_10s(&run, run.at[run.n - 1] + 100);
  printf("     500 queued: last admitted at %.1f s, %.1f/min after 10 s, busiest minute %d "
         "requests / %.0f tokens\n",
         (double)run.at[run.n - 1] / 1000, rate, req, tok);
  ML_CHECK(rate >= 0.95 * 600);
  ML_CHECK(req <= 600);
  ML_CHECK(tok <= 200000);
  free(run.at);
  free(run.used);
}

static void sim_sustained_backlog_reaches_but_never_passes_the_limit(void) {
  struct sim_run run;
  simulate(0, 300000, 300, &run);
  int req;
  double tok;
  busiest_minute(&run, &req, &tok);
  double rate = rate_after_10s(&run, 300000);
  printf("     5 min backlog: %d admitted, %.1f/min after 10 s, busiest minute %d requests / "
         "%.0f tokens\n",
         run.n, rate, req, tok);
  ML_CHECK(rate >= 0.95 * 600);
  ML_CHECK(req <= 600);
  ML_CHECK(tok <= 200000);
  free(run.at);
  free(run.used);
}

/* The mirror case: 500-token requests make TPM the binding limit (400/min). A minute may pass
 * the limit by the pace's second and by what the estimates missed (usage is only known after
 * the fact); the long-run rate holds. */
static void sim_token_bound_backlog_runs_at_the_token_limit(void) {
  struct sim_run run;
  simulate(0, 300000, 500, &run);
  int req;
  double tok;
  busiest_minute(&run, &req, &tok);
  double tokens_after_10s = 0;
  for (int i = 0; i < run.n; i++)
    tokens_after_10s += run.at[i] >= 10000 ? run.used[i] : 0;
  double tpm = tokens_after_10s * 60000.0 / 290000.0;
  printf("     5 min, 500-token requests: %.0f tokens/min after 10 s, busiest minute %d requests "
         "/ %.0f tokens\n",
         tpm, req, tok);
  ML_CHECK(tpm >= 0.95 * 200000);
  ML_CHECK(tpm <= 200000 * 1.005);
  ML_CHECK(req <= 600);
  ML_CHECK(tok <= 200000 * 1.02);
  free(run.at);
  free(run.used);
}

ML_TEST_MAIN(
    ML_CASE(unlimited_limiter_admits_and_counts_in_flight), ML_CASE(budgets_start_full),
    ML_CASE(request_wait_is_exactly_the_deficit_over_the_rate),
    ML_CASE(budget_refills_continuously_from_a_learned_low),
    ML_CASE(token_wait_is_exactly_the_deficit_over_the_rate),
    ML_CASE(admissions_are_spread_at_the_limit_rate), ML_CASE(refund_returns_unused_tokens),
    ML_CASE(refund_never_overfills_the_budget), ML_CASE(unknown_actual_keeps_the_estimate),
    ML_CASE(usage_beyond_the_estimate_becomes_debt),
    ML_CASE(request_larger_than_the_budget_is_admitted_when_full),
    ML_CASE(request_larger_than_the_budget_waits_until_full),
    ML_CASE(negative_or_nan_estimates_count_as_zero), ML_CASE(null_arguments_are_refused),
    ML_CASE(full_in_flight_cap_says_wait_for_a_slot),
    ML_CASE(budget_wait_is_reported_before_the_slot), ML_CASE(releasing_twice_is_harmless),
    ML_CASE(a_wave_of_429s_halves_the_cap_once),
    ML_CASE(a_new_wave_throttled_within_a_second_does_not_halve_again),
    ML_CASE(a_new_wave_throttled_after_a_second_halves_again),
    ML_CASE(an_old_wave_throttled_late_does_not_halve_again),
    ML_CASE(the_cap_never_drops_below_one), ML_CASE(successes_raise_the_cap_by_one_per_round_trip),
    ML_CASE(an_unused_cap_does_not_grow), ML_CASE(increases_stop_at_the_configured_cap),
    ML_CASE(unlimited_adaptive_starts_open_and_first_429_halves_what_was_in_flight),
    ML_CASE(a_fixed_cap_ignores_429s), ML_CASE(server_slots_become_the_cap_when_none_is_configured),
    ML_CASE(a_configured_cap_wins_over_server_slots),
    ML_CASE(breaker_defaults_are_5_failures_and_10s),
    ML_CASE(breaker_opens_after_consecutive_failures_only),
    ML_CASE(open_breaker_refuses_for_the_rest_of_the_cooldown),
    ML_CASE(half_open_admits_exactly_one_probe), ML_CASE(probe_success_closes_the_breaker),
    ML_CASE(probe_failure_reopens_with_double_the_cooldown),
    ML_CASE(cooldown_doubling_stops_at_five_minutes),
    ML_CASE(closing_restores_the_configured_cooldown),
    ML_CASE(cancelled_probe_lets_the_next_request_probe),
    ML_CASE(failures_of_requests_sent_before_opening_do_not_extend_it),
    ML_CASE(openai_limits_set_the_capacities), ML_CASE(learned_limits_never_raise_a_configured_one),
    ML_CASE(remaining_lowers_the_level_and_never_raises_it),
    ML_CASE(remaining_without_a_known_limit_is_ignored),
    ML_CASE(reconfigure_changes_limits_and_keeps_what_was_learned),
    ML_CASE(reconfigure_keeps_server_slots_unless_a_cap_is_given),
    ML_CASE(openai_reset_durations_lower_the_level_to_match),
    ML_CASE(openai_reset_accepts_every_go_duration_unit),
    ML_CASE(resets_beyond_an_hour_are_ignored), ML_CASE(anthropic_headers_set_limits_and_levels),
    ML_CASE(anthropic_reset_timestamps_lower_the_level),
    ML_CASE(anthropic_reset_on_an_unshared_clock_is_ignored),
    ML_CASE(header_names_are_case_insensitive), ML_CASE(malformed_values_are_ignored),
    ML_CASE(unknown_headers_are_ignored), ML_CASE(sim_500_queued_requests_drain_at_the_limit),
    ML_CASE(sim_sustained_backlog_reaches_but_never_passes_the_limit),
    ML_CASE(sim_token_bound_backlog_runs_at_the_token_limit))

/* Unit tests for the retry policy (src/llm/retry.c): retryable statuses, every Retry-After form
 * the RFCs allow plus what servers actually send, backoff bounds and spread, and the give-up
 * rules. Expected Unix times were computed independently (Python's calendar.timegm). */
#include "llm/retry.h"
#include "ml_test.h"

#include <limits.h>

#define T_1994 INT64_C(784111777000)        /* 1994-11-06 08:49:37 */
#define T_2038 INT64_C(2147483648000)       /* 2038-01-19 03:14:08, 2^31 s */
#define T_2106 INT64_C(4294967296000)       /* 2106-02-07 06:28:16, 2^32 s */
#define T_2100_MAR1 INT64_C(4107542400000)  /* 2100-03-01 00:00:00 */
#define T_2000_FEB29 INT64_C(951825600000)  /* 2000-02-29 12:00:00 */
#define T_2024_FEB29 INT64_C(1709164800000) /* 2024-02-29 00:00:00 */
#define T_9999 INT64_C(253402300799000)     /* 9999-12-31 23:59:59 */
#define T_2038_JAN1 INT64_C(2145916800000)  /* 2038-01-01 00:00:00 */
#define T_2030 INT64_C(1893456000000)       /* 2030-01-01 00:00:00 */
#define NOW_2025 INT64_C(1755780059000)     /* 2025-08-21 12:40:59 */

/* ---- statuses ------------------------------------------------------------------------- */

static void policy_default_is_5_attempts_500ms_30s_120s(void) {
  struct retry_policy p;
  retry_policy_default(&p);
  ML_CHECK_INT(p.max_attempts, 5);
  ML_CHECK_INT(p.base_ms, 500);
  ML_CHECK_INT(p.cap_ms, 30000);
  ML_CHECK_INT(p.max_total_ms, 120000);
}

static void timeouts_conflicts_429_and_5xx_are_retryable(void) {
  static const long yes[] = {408, 409, 429, 500, 502, 503, 504, 529, 599};
  for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
    ML_CHECK_INT(retry_status_retryable(yes[i]), 1);
}

static void other_statuses_are_not_retryable(void) {
  static const long no[] = {0, 200, 204, 301, 304, 400, 401, 403, 404, 413, 422, 499, 600, -1};
  for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
    ML_CHECK_INT(retry_status_retryable(no[i]), 0);
}

/* ---- Retry-After: delta-seconds ------------------------------------------------------- */

static void retry_after_delta_seconds_in_ms(void) {
  ML_CHECK_INT(retry_after_ms("120", 0), 120000);
  ML_CHECK_INT(retry_after_ms("0", 0), 0);
  ML_CHECK_INT(retry_after_ms("007", 0), 7000);
}

static void retry_after_allows_surrounding_blanks(void) {
  ML_CHECK_INT(retry_after_ms("  5 ", 0), 5000);
  ML_CHECK_INT(retry_after_ms("\t3\t", 0), 3000);
}

static void retry_after_decimal_seconds_round_up_to_the_ms(void) {
  ML_CHECK_INT(retry_after_ms("1.5", 0), 1500);
  ML_CHECK_INT(retry_after_ms("0.0001", 0), 1);
  ML_CHECK_INT(retry_after_ms("2.0005", 0), 2001);
  ML_CHECK_INT(retry_after_ms("0.000", 0), 0);
  ML_CHECK_INT(retry_after_ms("1.0000000000001", 0), 1001);
}

static void retry_after_rejects_garbage(void) {
  static const char *const bad[] = {"",   "   ",  "abc", "12abc", "1.",  ".5",  "1.2.3", "1e3",
                                    "+5", "0x10", "5 s", "5,0",   "1 2", "inf", "NaN",   "\x01"};
  ML_CHECK_INT(retry_after_ms(NULL, 0), -1);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (retry_after_ms(bad[i], 0) != -1)
      fprintf(stderr, "  accepted \"%s\"\n", bad[i]);
    ML_CHECK_INT(retry_after_ms(bad[i], 0), -1);
  }
}

static void retry_after_rejects_negative_values(void) {
  ML_CHECK_INT(retry_after_ms("-1", 0), -1);
  ML_CHECK_INT(retry_after_ms("-0.5", 0), -1);
  ML_CHECK_INT(retry_after_ms(" -30", 0), -1);
}

static void retry_after_huge_delta_saturates_at_24h(void) {
  ML_CHECK_INT(retry_after_ms("86400", 0), RETRY_AFTER_CAP_MS);
  ML_CHECK_INT(retry_after_ms("86401", 0), RETRY_AFTER_CAP_MS);
  ML_CHECK_INT(retry_after_ms("86399.9995", 0), RETRY_AFTER_CAP_MS);
  ML_CHECK_INT(retry_after_ms("99999999999999999999999999999999", 0), RETRY_AFTER_CAP_MS);
  ML_CHECK_INT(retry_after_ms("9223372036854775808.5", 0), RETRY_AFTER_CAP_MS);
  /* Saturating must not make the rest of the value unchecked. */
  ML_CHECK_INT(retry_after_ms("99999999999999999999x", 0), -1);
}

/* ---- Retry-After: HTTP-dates ---------------------------------------------------------- */

static void retry_after_imf_fixdate(void) {
  ML_CHECK_INT(retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", T_1994 - 5000), 5000);
}

static void retry_after_rfc850_date(void) {
  /* "94" read from a clock in 1994 is 1994. */
  ML_CHECK_INT(retry_after_ms("Sunday, 06-Nov-94 08:49:37 GMT", T_1994 - 3000), 3000);
  ML_CHECK_INT(retry_after_ms("Sunday, 06-Nov-1994 08:49:37 GMT", T_1994 - 3000), 3000);
}

static void rfc850_two_digit_year_is_the_nearest_within_50_years(void) {
  /* From 2029 "30" is 2030, not 1930. */
  ML_CHECK_INT(retry_after_ms("Tuesday, 01-Jan-30 00:00:00 GMT", T_2030 - 60000), 60000);
  /* From 2025 "94" is 1994 (in the past), not 2094. */
  ML_CHECK_INT(retry_after_ms("Sunday, 06-Nov-94 08:49:37 GMT", NOW_2025), 0);
  /* From 2099 "01" is 2101, not 2001: two years ahead is not more than 50. */
  ML_CHECK_INT(retry_after_ms("Saturday, 01-Jan-01 00:00:00 GMT", T_2100_MAR1), RETRY_AFTER_CAP_MS);
}

static void retry_after_asctime_date(void) {
  ML_CHECK_INT(retry_after_ms("Sun Nov  6 08:49:37 1994", T_1994 - 2500), 2500);
  ML_CHECK_INT(retry_after_ms("Wed Nov 16 08:49:37 1994", T_1994 + 10 * INT64_C(86400000) - 2500),
               2500);
}

static void retry_after_date_in_the_past_is_zero(void) {
  ML_CHECK_INT(retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", T_1994), 0);
  ML_CHECK_INT(retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", NOW_2025), 0);
}

static void retry_after_date_more_than_a_day_ahead_is_capped(void) {
  ML_CHECK_INT(retry_after_ms("Fri, 31 Dec 9999 23:59:59 GMT", NOW_2025), RETRY_AFTER_CAP_MS);
}

static void retry_after_leap_days(void) {
  ML_CHECK_INT(retry_after_ms("Tue, 29 Feb 2000 12:00:00 GMT", T_2000_FEB29 - 1000), 1000);
  ML_CHECK_INT(retry_after_ms("Thu, 29 Feb 2024 00:00:00 GMT", T_2024_FEB29 - 1000), 1000);
  /* 2100 is not a leap year (divisible by 100, not by 400); 2023 is not either. */
  ML_CHECK_INT(retry_after_ms("Mon, 29 Feb 2100 00:00:00 GMT", 0), -1);
  ML_CHECK_INT(retry_after_ms("Wed, 29 Feb 2023 00:00:00 GMT", 0), -1);
  /* So 28 Feb 2100 23:59:59 is one second before 1 Mar 2100. */
  ML_CHECK_INT(retry_after_ms("Mon, 01 Mar 2100 00:00:00 GMT", T_2100_MAR1 - 1000), 1000);
  ML_CHECK_INT(retry_after_ms("Sun, 28 Feb 2100 23:59:59 GMT", T_2100_MAR1 - 1000), 0);
}

static void retry_after_dates_past_2038_and_2106(void) {
  ML_CHECK_INT(retry_after_ms("Tue, 19 Jan 2038 03:14:08 GMT", T_2038 - 1500), 1500);
  ML_CHECK_INT(retry_after_ms("Tue Jan 19 03:14:08 2038", T_2038 - 1500), 1500);
  ML_CHECK_INT(retry_after_ms("Sun, 07 Feb 2106 06:28:16 GMT", T_2106 - 2000), 2000);
  ML_CHECK_INT(retry_after_ms("Fri, 31 Dec 9999 23:59:59 GMT", T_9999 - 10), 10);
}

static void retry_after_names_are_case_insensitive(void) {
  ML_CHECK_INT(retry_after_ms("sun, 06 NOV 1994 08:49:37 gmt", T_1994 - 1000), 1000);
}

static void retry_after_rejects_malformed_dates(void) {
  static const char *const bad[] = {
      "Sun, 06 Nov 1994 08:49:37",       /* no zone */
      "Sun, 06 Nov 1994 08:49:37 PST",   /* not GMT */
      "Sun, 06 Nov 1994 08:49:37 GMT x", /* trailing junk */
      "Fun, 06 Nov 1994 08:49:37 GMT",   /* no such day */
      "Sun, 06 Nev 1994 08:49:37 GMT",   /* no such month */
      "Sun, 06 Nov 94 08:49:37 GMT",     /* IMF-fixdate needs four digits */
      "Sun, 06 Nov 19945 08:49:37 GMT",  /* five */
      "Sunday, 06-Nov-994 08:49:37 GMT", /* three */
      "Sun, 06 Nov 1994 24:00:00 GMT",   /* hour */
      "Sun, 06 Nov 1994 08:60:00 GMT",   /* minute */
      "Sun, 06 Nov 1994 08:49:61 GMT",   /* second */
      "Sun, 31 Apr 1994 08:49:37 GMT",   /* April has 30 days */
      "Sun, 00 Nov 1994 08:49:37 GMT",   /* day 0 */
      "Sun, 06 Nov 1994 8:49:37 GMT",    /* one-digit hour */
      "Sun, 06 Nov 1994 08-49-37 GMT",   /* separators */
      "Sun Nov  6 08:49:37 94",          /* asctime needs four digits */
      "Sun Nov  6 08:49:37 1994 GMT",    /* asctime has no zone */
      "Sun",                             /* truncated */
      "Sun, ",
      "Sun, 06 Nov",
      "06 Nov 1994 08:49:37 GMT", /* no day name: starts with a digit, not a number either */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (retry_after_ms(bad[i], 0) != -1)
      fprintf(stderr, "  accepted \"%s\"\n", bad[i]);
    ML_CHECK_INT(retry_after_ms(bad[i], 0), -1);
  }
}

static void retry_after_leap_second_is_accepted(void) {
  /* 23:59:60 is legal in an HTTP-date and means the first second of the next day. */
  ML_CHECK_INT(retry_after_ms("Thu, 31 Dec 2037 23:59:60 GMT", T_2038_JAN1 - 1000), 1000);
}

static void retry_after_extreme_clocks_do_not_overflow(void) {
  ML_CHECK_INT(retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", INT64_MIN), RETRY_AFTER_CAP_MS);
  ML_CHECK_INT(retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", INT64_MAX), 0);
  ML_CHECK_INT(retry_after_ms("Fri, 31 Dec 9999 23:59:59 GMT", INT64_MIN / 2), RETRY_AFTER_CAP_MS);
  ML_CHECK_INT(retry_after_ms("Sunday, 06-Nov-94 08:49:37 GMT", INT64_MIN), RETRY_AFTER_CAP_MS);
  ML_CHECK_INT(retry_after_ms("Sunday, 06-Nov-94 08:49:37 GMT", INT64_MAX), 0);
}

/* ---- retry-after-ms ------------------------------------------------------------------- */

static void retry_after_ms_header_is_preferred_when_valid(void) {
  ML_CHECK_INT(retry_after_ms_header("10", "250", 0), 250);
  ML_CHECK_INT(retry_after_ms_header("10", " 2.5 ", 0), 3);
  ML_CHECK_INT(retry_after_ms_header(NULL, "0", 0), 0);
  ML_CHECK_INT(retry_after_ms_header("10", "999999999999", 0), RETRY_AFTER_CAP_MS);
}

static void retry_after_ms_header_falls_back_when_invalid_or_absent(void) {
  ML_CHECK_INT(retry_after_ms_header("10", "abc", 0), 10000);
  ML_CHECK_INT(retry_after_ms_header("10", "-5", 0), 10000);
  ML_CHECK_INT(retry_after_ms_header("10", "", 0), 10000);
  ML_CHECK_INT(retry_after_ms_header("10", NULL, 0), 10000);
  ML_CHECK_INT(retry_after_ms_header("Sun, 06 Nov 1994 08:49:37 GMT", "x", T_1994 - 700), 700);
  ML_CHECK_INT(retry_after_ms_header(NULL, NULL, 0), -1);
  ML_CHECK_INT(retry_after_ms_header("soon", "later", 0), -1);
}

/* ---- backoff -------------------------------------------------------------------------- */

static void backoff_stays_within_the_doubling_ceiling_over_10000_draws(void) {
  struct retry_policy p;
  retry_policy_default(&p);
  uint64_t rng = 42;
  static const long ceiling[] = {0, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000};
  for (int attempt = 1; attempt <= 8; attempt++) {
    long lo = LONG_MAX, hi = -1;
    for (int i = 0; i < 10000; i++) {
      long d = retry_backoff_ms(&p, attempt, &rng);
      lo = d < lo ? d : lo;
      hi = d > hi ? d : hi;
    }
    ML_CHECK(lo >= 0);
    ML_CHECK(hi <= ceiling[attempt]);
    ML_CHECK(hi >= ceiling[attempt] * 95 / 100); /* the whole range is reachable */
    ML_CHECK(lo <= ceiling[attempt] * 5 / 100);
  }
}

static void backoff_is_spread_evenly_not_piled_at_the_cap(void) {
  struct retry_policy p;
  retry_policy_default(&p);
  uint64_t rng = 7;
  int deciles[10] = {0}, at_cap = 0;
  double sum = 0;
  for (int i = 0; i < 10000; i++) {
    long d = retry_backoff_ms(&p, 3, &rng); /* uniform over [0, 2000] */
    sum += (double)d;
    at_cap += d == 2000;
    deciles[d >= 2000 ? 9 : d / 200]++;
  }
  ML_CHECK(sum / 10000 > 950 && sum / 10000 < 1050);
  ML_CHECK(at_cap < 50);
  for (int k = 0; k < 10; k++)
    ML_CHECK(deciles[k] > 850 && deciles[k] < 1150);
}

static void backoff_never_overflows_for_huge_attempts(void) {
  struct retry_policy p = {5, 500, 30000, 0};
  uint64_t rng = 1;
  ML_CHECK(retry_backoff_ms(&p, 64, &rng) <= 30000);
  ML_CHECK(retry_backoff_ms(&p, INT_MAX, &rng) <= 30000);
  ML_CHECK_INT(retry_backoff_ms(&p, INT_MAX, NULL), 30000);
  struct retry_policy big = {5, LONG_MAX / 2 + 1, LONG_MAX, 0};
  ML_CHECK_INT(retry_backoff_ms(&big, 1, NULL), LONG_MAX / 2 + 1);
  ML_CHECK_INT(retry_backoff_ms(&big, 2, NULL), LONG_MAX);
  ML_CHECK_INT(retry_backoff_ms(&big, 1000, NULL), LONG_MAX);
  ML_CHECK(retry_backoff_ms(&big, 1000, &rng) >= 0);
}

static void backoff_attempt_below_one_counts_as_the_first(void) {
  struct retry_policy p;
  retry_policy_default(&p);
  ML_CHECK_INT(retry_backoff_ms(&p, 0, NULL), 500);
  ML_CHECK_INT(retry_backoff_ms(&p, -3, NULL), 500);
}

static void backoff_is_reproducible_from_the_seed(void) {
  struct retry_policy p;
  retry_policy_default(&p);
  uint64_t a = 12345, b = 12345;
  int differ = 0;
  long first = retry_backoff_ms(&p, 6, &a);
  ML_CHECK_INT(retry_backoff_ms(&p, 6, &b), first);
  for (int i = 0; i < 100; i++)
    differ += retry_backoff_ms(&p, 6, &a) != first;
  ML_CHECK(differ > 90); /* and the state moves on */
}

static void backoff_without_base_or_cap_is_zero(void) {
  struct retry_policy p = {5, 0, 30000, 0};
  uint64_t rng = 3;
  ML_CHECK_INT(retry_backoff_ms(&p, 4, &rng), 0);
  struct retry_policy q = {5, 500, -1, 0};
  ML_CHECK_INT(retry_backoff_ms(&q, 4, &rng), 0);
}

/* ---- the decision --------------------------------------------------------------------- */

static void next_delay_gives_up_after_max_attempts(void) {
  struct retry_policy p;
  retry_policy_default(&p);
  uint64_t rng = 9;
  ML_CHECK(retry_next_delay(&p, 4, -1, 0, &rng) >= 0);
  ML_CHECK_INT(retry_next_delay(&p, 5, -1, 0, &rng), -1);
  ML_CHECK_INT(retry_next_delay(&p, 6, 100, 0, &rng), -1);
  struct retry_policy once = {0, 500, 30000, 0}; /* no retries at all */
  ML_CHECK_INT(retry_next_delay(&once, 1, -1, 0, &rng), -1);
}

static void next_delay_gives_up_when_total_time_is_used(void) {
  struct retry_policy p;
  retry_policy_default(&p);
  uint64_t rng = 9;
  ML_CHECK_INT(retry_next_delay(&p, 1, -1, 120000, &rng), -1);
  ML_CHECK_INT(retry_next_delay(&p, 1, 0, 130000, &rng), -1);
}

static void next_delay_honours_the_hint_plus_at_most_ten_percent(void) {
  struct retry_policy p;
  retry_policy_default(&p);
  uint64_t rng = 5;
  long lo = LONG_MAX, hi = 0;
  for (int i = 0; i < 1000; i++) {
    long d = retry_next_delay(&p, 1, 2000, 0, &rng);
    lo = d < lo ? d : lo;
    hi = d > hi ? d : hi;
  }
  ML_CHECK(lo >= 2000);
  ML_CHECK(hi <= 2200);
  ML_CHECK(hi > lo); /* jittered, so synchronised clients spread out */
}

static void next_delay_hint_may_exceed_the_backoff_cap(void) {
  struct retry_policy p;
  retry_policy_default(&p);
  uint64_t rng = 5;
  ML_CHECK(retry_next_delay(&p, 1, 60000, 0, &rng) >= 60000);
}

static void next_delay_zero_hint_means_now(void) {
  struct retry_policy p;
  retry_policy_default(&p);
  uint64_t rng = 5;
  ML_CHECK_INT(retry_next_delay(&p, 2, 0, 1000, &rng), 0);
}

static void next_delay_gives_up_on_a_hint_past_the_total(void) {
  struct retry_policy p;
  retry_policy_default(&p);
  uint64_t rng = 5;
  ML_CHECK_INT(retry_next_delay(&p, 1, 10000, 115000, &rng), -1);
  ML_CHECK_INT(retry_next_delay(&p, 1, RETRY_AFTER_CAP_MS, 0, &rng), -1);
}

static void next_delay_hint_jitter_stays_within_the_total(void) {
  struct retry_policy p;
  retry_policy_default(&p);
  uint64_t rng = 5;
  for (int i = 0; i < 200; i++) {
    long d = retry_next_delay(&p, 1, 4900, 115000, &rng);
    ML_CHECK(d >= 4900 && d <= 5000);
  }
}

static void next_delay_without_hint_is_the_backoff(void) {
  struct retry_policy p;
  retry_policy_default(&p);
  uint64_t a = 77, b = 77;
  for (int attempt = 1; attempt < 5; attempt++)
    ML_CHECK_INT(retry_next_delay(&p, attempt, -1, 0, &a), retry_backoff_ms(&p, attempt, &b));
}

static void next_delay_shortens_the_backoff_to_fit_the_total(void) {
  struct retry_policy p;
  retry_policy_default(&p);
  uint64_t rng = 11;
  for (int i = 0; i < 200; i++) {
    long d = retry_next_delay(&p, 4, -1, 119900, &rng);
    ML_CHECK(d >= 0 && d <= 100);
  }
}

static void next_delay_without_total_budget_never_times_out(void) {
  struct retry_policy p = {3, 500, 30000, 0};
  uint64_t rng = 11;
  ML_CHECK(retry_next_delay(&p, 2, 3600000, 86400000, &rng) >= 3600000);
}

ML_TEST_MAIN(
    ML_CASE(policy_default_is_5_attempts_500ms_30s_120s),
    ML_CASE(timeouts_conflicts_429_and_5xx_are_retryable),
    ML_CASE(other_statuses_are_not_retryable), ML_CASE(retry_after_delta_seconds_in_ms),
    ML_CASE(retry_after_allows_surrounding_blanks),
    ML_CASE(retry_after_decimal_seconds_round_up_to_the_ms), ML_CASE(retry_after_rejects_garbage),
    ML_CASE(retry_after_rejects_negative_values), ML_CASE(retry_after_huge_delta_saturates_at_24h),
    ML_CASE(retry_after_imf_fixdate), ML_CASE(retry_after_rfc850_date),
    ML_CASE(rfc850_two_digit_year_is_the_nearest_within_50_years),
    ML_CASE(retry_after_asctime_date), ML_CASE(retry_after_date_in_the_past_is_zero),
    ML_CASE(retry_after_date_more_than_a_day_ahead_is_capped), ML_CASE(retry_after_leap_days),
    ML_CASE(retry_after_dates_past_2038_and_2106), ML_CASE(retry_after_names_are_case_insensitive),
    ML_CASE(retry_after_rejects_malformed_dates), ML_CASE(retry_after_leap_second_is_accepted),
    ML_CASE(retry_after_extreme_clocks_do_not_overflow),
    ML_CASE(retry_after_ms_header_is_preferred_when_valid),
    ML_CASE(retry_after_ms_header_falls_back_when_invalid_or_absent),
    ML_CASE(backoff_stays_within_the_doubling_ceiling_over_10000_draws),
    ML_CASE(backoff_is_spread_evenly_not_piled_at_the_cap),
    ML_CASE(backoff_never_overflows_for_huge_attempts),
    ML_CASE(backoff_attempt_below_one_counts_as_the_first),
    ML_CASE(backoff_is_reproducible_from_the_seed), ML_CASE(backoff_without_base_or_cap_is_zero),
    ML_CASE(next_delay_gives_up_after_max_attempts),
    ML_CASE(next_delay_gives_up_when_total_time_is_used),
    ML_CASE(next_delay_honours_the_hint_plus_at_most_ten_percent),
    ML_CASE(next_delay_hint_may_exceed_the_backoff_cap), ML_CASE(next_delay_zero_hint_means_now),
    ML_CASE(next_delay_gives_up_on_a_hint_past_the_total),
    ML_CASE(next_delay_hint_jitter_stays_within_the_total),
    ML_CASE(next_delay_without_hint_is_the_backoff),
    ML_CASE(next_delay_shortens_the_backoff_to_fit_the_total),
    ML_CASE(next_delay_without_total_budget_never_times_out))

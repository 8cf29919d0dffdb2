/* Retry policy for LLM requests: which statuses deserve another attempt, how long the server
 * asked us to wait (Retry-After in all its forms), and exponential backoff with full jitter.
 * Pure arithmetic: no clock, no I/O. Callers pass the time in, so every decision is testable. */
#ifndef ML_RETRY_H
#define ML_RETRY_H

#include <stdint.h>

/* Longest wait a server hint can impose; longer hints are clamped to this. */
#define RETRY_AFTER_CAP_MS 86400000L /* 24 h */

struct retry_policy {
  int max_attempts;  /* attempts in total, the first included; < 1 behaves as 1 */
  long base_ms;      /* ceiling of the first backoff */
  long cap_ms;       /* the backoff ceiling never grows past this */
  long max_total_ms; /* no retry may start later than this after the first attempt; <= 0: none */
};

/* 5 attempts, 500 ms base, 30 s cap, 120 s in total. */
void retry_policy_default(struct retry_policy *p);

/* 1 for statuses where the same request may succeed later: 408, 409, 429 and 500-599 (529,
 * Anthropic's "overloaded", included). 0 for everything else, 2xx/3xx and other 4xx alike.
 * Transport failures have no status; the caller decides those. */
int retry_status_retryable(long status);

/* The wait a Retry-After value asks for, in ms from now_unix_ms (Unix time in ms).
 * Accepts delta-seconds ("120", also "1.5" as some servers send, surrounding blanks allowed)
 * and an HTTP-date in IMF-fixdate, RFC 850 or asctime form. A date in the past gives 0.
 * Returns -1 when the value is missing or unparseable; never more than RETRY_AFTER_CAP_MS. */
long retry_after_ms(const char *value, int64_t now_unix_ms);

/* The server's hint from both headers: the non-standard `retry-after-ms` (OpenAI) when it holds
 * a valid number of milliseconds, else `retry-after`. Either may be NULL. -1 when neither is
 * usable. */
long retry_after_ms_header(const char *retry_after, const char *retry_after_ms_value,
                           int64_t now_unix_ms);

/* Backoff before the retry that follows attempt number `attempt` (1 = the first attempt failed):
 * uniform over [0, min(cap_ms, base_ms * 2^(attempt-1))] ("full jitter"), so that clients that
 * failed together do not come back together. Safe for any attempt number. `rng` is the caller's
 * generator state, any seed, advanced on every call; with rng NULL the ceiling itself is
 * returned (no jitter). */
long retry_backoff_ms(const struct retry_policy *p, int attempt, uint64_t *rng);

/* The decision after attempt number `attempt` failed retryably, `elapsed_ms` after the first
 * attempt started. Returns -1 to give up: max_attempts reached, max_total_ms used up, or a
 * server hint that would end past max_total_ms. Otherwise the delay in ms before the next
 * attempt:
 *  - server_hint_ms >= 0 (from retry_after_ms_header): the hint plus up to 10% random extra,
 *    never less than the hint, so clients told the same moment do not all return at once;
 *  - server_hint_ms < 0: retry_backoff_ms, shortened if needed so the retry still starts within
 *    max_total_ms (our own wait is negotiable, the server's is not). */
long retry_next_delay(const struct retry_policy *p, int attempt, long server_hint_ms,
                      long elapsed_ms, uint64_t *rng);

#endif

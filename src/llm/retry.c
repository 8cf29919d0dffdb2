/* Retry decisions: retryable statuses, Retry-After parsing and jittered exponential backoff.
 * HTTP-dates are converted here rather than with strptime/timegm, which depend on the locale
 * and on non-standard extensions; the calendar arithmetic is a few lines of integer math. */
#include "llm/retry.h"

#include <stddef.h>

void retry_policy_default(struct retry_policy *p) {
  p->max_attempts = 5;
  p->base_ms = 500;
  p->cap_ms = 30000;
  p->max_total_ms = 120000;
}

int retry_status_retryable(long status) {
  if (status == 408 || status == 409 || status == 429)
    return 1;
  return status >= 500 && status <= 599;
}

/* ---- random numbers ---------------------------------------------------------------------- */

/* splitmix64: any state is a valid seed, including 0, and every call moves it on. */
static uint64_t next_random(uint64_t *state) {
  uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

/* Uniform over [0, bound] without the bias a bare modulo would give. */
static long uniform_upto(uint64_t *state, long bound) {
  if (bound <= 0)
    return 0;
  uint64_t n = (uint64_t)bound + 1;
  uint64_t reject_below = (0 - n) % n; /* 2^64 mod n: the short, biased first stretch */
  uint64_t r;
  do {
    r = next_random(state);
  } while (r < reject_below);
  return (long)(r % n);
}

/* ---- calendar -------------------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date. Eras of 400 years repeat exactly, so the
 * date is moved into the era's frame, counted there, and shifted back. Years are counted from
 * March so that the leap day falls at the end. */
static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;                                   /* [0, 399] */
  int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* [0, 365] */
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* [0, 146096] */
  return era * 146097 + doe - 719468;
}

/* The year of a day count since 1970-01-01 (the inverse of the above, year only). */
static int64_t year_from_days(int64_t z) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  return yoe + era * 400 + (mp >= 10);
}

static int is_leap(int64_t y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m) {
  static const int len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : len[m - 1];
}

/* ---- a small cursor over the header value ---------------------------------------------- */

struct cursor {
  const char *p, *end;
};

static int is_blank(char c) {
  return c == ' ' || c == '\t';
}

static int is_digit(char c) {
  return c >= '0' && c <= '9';
}

static char ascii_lower(char c) {
  return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static int eat(struct cursor *c, char ch) {
  if (c->p < c->end && *c->p == ch) {
    c->p++;
    return 1;
  }
  return 0;
}

/* One or more blanks. Servers are inconsistent about single spaces; accepting runs costs
 * nothing and the grammar stays unambiguous. */
static int eat_blanks(struct cursor *c) {
  const char *start = c->p;
  while (c->p < c->end && is_blank(*c->p))
    c->p++;
  return c->p > start;
}

/* Between min and max digits into *out. */
static int eat_number(struct cursor *c, int min, int max, int *out) {
  int n = 0, v = 0;
  while (c->p < c->end && is_digit(*c->p) && n < max) {
    v = v * 10 + (*c->p - '0');
    c->p++;
    n++;
  }
  if (n < min || (c->p < c->end && is_digit(*c->p)))
    return 0;
  *out = v;
  return 1;
}

/* Index of the word at the cursor in `names` (case-insensitive, whole word), or -1. */
static int eat_name(struct cursor *c, const char *const *names, int count) {
  size_t len = 0;
  while (c->p + len < c->end && ascii_lower(c->p[len]) >= 'a' && ascii_lower(c->p[len]) <= 'z')
    len++;
  for (int i = 0; i < count; i++) {
    size_t k = 0;
    while (k < len && names[i][k] && ascii_lower(c->p[k]) == ascii_lower(names[i][k]))
      k++;
    if (k == len && names[i][k] == '\0') {
      c->p += len;
      return i;
    }
  }
  return -1;
}

static const char *const day_names[14] = {"Mon",      "Tue",    "Wed",      "Thu",     "Fri",
                                          "Sat",      "Sun",    "Monday",   "Tuesday", "Wednesday",
                                          "Thursday", "Friday", "Saturday", "Sunday"};
static const char *const month_names[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static int eat_clock(struct cursor *c, int *h, int *mi, int *s) {
  return eat_number(c, 2, 2, h) && eat(c, ':') && eat_number(c, 2, 2, mi) && eat(c, ':') &&
         eat_number(c, 2, 2, s);
}

/* RFC 9110: a two-digit year that would be more than 50 years ahead means the most recent past
 * year with those digits. The window is taken around the caller's clock, not a fixed century. */
static int64_t expand_two_digit_year(int yy, int64_t now_unix_ms) {
  int64_t now_days = now_unix_ms / 86400000 - (now_unix_ms % 86400000 < 0);
  int64_t now_year = year_from_days(now_days);
  if (now_year < 100) /* absurd clocks: keep the arithmetic far from overflow */
    now_year = 100;
  else if (now_year > 9899)
    now_year = 9899;
  int64_t y = now_year - now_year % 100 + yy;
  if (y > now_year + 50)
    y -= 100;
  else if (y < now_year - 50)
    y += 100;
  return y;
}

/* Parses the three HTTP-date forms of RFC 9110 section 5.6.7 into Unix ms:
 *   IMF-fixdate  Sun, 06 Nov 1994 08:49:37 GMT
 *   RFC 850      Sunday, 06-Nov-94 08:49:37 GMT
 *   asctime      Sun Nov  6 08:49:37 1994
 * Day names are checked to be day names but not against the date: a server that gets the
 * weekday wrong still means the date. Returns 0 or -1. */
static int parse_http_date(struct cursor c, int64_t now_unix_ms, int64_t *out) {
  int day = 0, mon = 0, h = 0, mi = 0, s = 0, ynum = 0;
  int64_t year;
  if (eat_name(&c, day_names, 14) < 0)
    return -1;
  if (eat(&c, ',')) {
    eat_blanks(&c);
    if (!eat_number(&c, 1, 2, &day))
      return -1;
    if (eat(&c, '-')) { /* RFC 850: 06-Nov-94 (some servers write the full year) */
      if ((mon = eat_name(&c, month_names, 12)) < 0 || !eat(&c, '-'))
        return -1;
      const char *ystart = c.p;
      if (!eat_number(&c, 2, 4, &ynum) || c.p - ystart == 3)
        return -1;
      year = c.p - ystart == 2 ? expand_two_digit_year(ynum, now_unix_ms) : ynum;
    } else { /* IMF-fixdate: 06 Nov 1994 */
      if (!eat_blanks(&c) || (mon = eat_name(&c, month_names, 12)) < 0 || !eat_blanks(&c) ||
          !eat_number(&c, 4, 4, &ynum))
        return -1;
      year = ynum;
    }
    if (!eat_blanks(&c) || !eat_clock(&c, &h, &mi, &s) || !eat_blanks(&c))
      return -1;
    static const char *const zone[1] = {"GMT"};
    if (eat_name(&c, zone, 1) < 0)
      return -1;
  } else { /* asctime: Nov  6 08:49:37 1994 */
    if (!eat_blanks(&c) || (mon = eat_name(&c, month_names, 12)) < 0 || !eat_blanks(&c) ||
        !eat_number(&c, 1, 2, &day) || !eat_blanks(&c) || !eat_clock(&c, &h, &mi, &s) ||
        !eat_blanks(&c) || !eat_number(&c, 4, 4, &ynum))
      return -1;
    year = ynum;
  }
  eat_blanks(&c);
  if (c.p != c.end)
    return -1;
  mon += 1;
  if (day < 1 || day > days_in_month(year, mon) || h > 23 || mi > 59 || s > 60)
    return -1; /* 60: a leap second is legal and lands on the next minute */
  int64_t secs = days_from_civil(year, mon, day) * 86400 + h * 3600 + mi * 60 + s;
  *out = secs * 1000;
  return 0;
}

/* "digits[.digits]" times `scale` (1000 for seconds, 1 for ms), rounded up so we never wait
 * less than asked, saturated at RETRY_AFTER_CAP_MS. -1 if [p, end) is anything else. */
static long parse_amount(const char *p, const char *end, long scale) {
  long whole = 0;
  int saturated = 0;
  const char *start = p;
  while (p < end && is_digit(*p)) {
    if (!saturated) {
      whole = whole * 10 + (*p - '0');
      if (whole > RETRY_AFTER_CAP_MS / scale)
        saturated = 1;
    }
    p++;
  }
  if (p == start)
    return -1;
  int64_t frac = 0, denom = 1;
  int inexact = 0;
  if (p < end && *p == '.') {
    p++;
    if (p == end || !is_digit(*p))
      return -1;
    for (; p < end && is_digit(*p); p++) {
      if (denom < 1000000000) {
        frac = frac * 10 + (*p - '0');
        denom *= 10;
      } else if (*p != '0') {
        inexact = 1;
      }
    }
  }
  if (p != end)
    return -1;
  if (saturated)
    return RETRY_AFTER_CAP_MS;
  int64_t part = frac * scale / denom;
  if (frac * scale % denom != 0 || inexact)
    part++;
  int64_t total = (int64_t)whole * scale + part;
  return total > RETRY_AFTER_CAP_MS ? RETRY_AFTER_CAP_MS : (long)total;
}

static struct cursor trimmed(const char *s) {
  struct cursor c = {s, s};
  while (*c.p && is_blank(*c.p))
    c.p++;
  c.end = c.p;
  while (*c.end)
    c.end++;
  while (c.end > c.p && is_blank(c.end[-1]))
    c.end--;
  return c;
}

long retry_after_ms(const char *value, int64_t now_unix_ms) {
  if (value == NULL)
    return -1;
  struct cursor c = trimmed(value);
  if (c.p == c.end)
    return -1;
  if (is_digit(*c.p))
    return parse_amount(c.p, c.end, 1000);
  int64_t when;
  if (parse_http_date(c, now_unix_ms, &when) != 0)
    return -1;
  /* Compare before subtracting so an extreme clock value cannot overflow. */
  if (when <= now_unix_ms)
    return 0;
  if (now_unix_ms < 0 ? when > RETRY_AFTER_CAP_MS + now_unix_ms
                      : when - now_unix_ms > RETRY_AFTER_CAP_MS)
    return RETRY_AFTER_CAP_MS;
  return (long)(when - now_unix_ms);
}

long retry_after_ms_header(const char *retry_after, const char *retry_after_ms_value,
                           int64_t now_unix_ms) {
  if (retry_after_ms_value != NULL) {
    struct cursor c = trimmed(retry_after_ms_value);
    long ms = c.p < c.end ? parse_amount(c.p, c.end, 1) : -1;
    if (ms >= 0)
      return ms;
  }
  return retry_after_ms(retry_after, now_unix_ms);
}

/* ---- backoff ----------------------------------------------------------------------------- */

/* min(cap, base * 2^(attempt-1)) without ever computing a product that could overflow. */
static long backoff_ceiling(const struct retry_policy *p, int attempt) {
  long base = p->base_ms > 0 ? p->base_ms : 0;
  long cap = p->cap_ms > 0 ? p->cap_ms : 0;
  if (base >= cap)
    return cap;
  long ceiling = base;
  for (int i = 1; i < attempt && ceiling < cap; i++)
    ceiling = ceiling > cap / 2 ? cap : ceiling * 2;
  return ceiling < cap ? ceiling : cap;
}

long retry_backoff_ms(const struct retry_policy *p, int attempt, uint64_t *rng) {
  long ceiling = backoff_ceiling(p, attempt < 1 ? 1 : attempt);
  return rng ? uniform_upto(rng, ceiling) : ceiling;
}

long retry_next_delay(const struct retry_policy *p, int attempt, long server_hint_ms,
                      long elapsed_ms, uint64_t *rng) {
  int max_attempts = p->max_attempts < 1 ? 1 : p->max_attempts;
  if (attempt < 1)
    attempt = 1;
  if (attempt >= max_attempts)
    return -1;
  if (elapsed_ms < 0)
    elapsed_ms = 0;
  long left = -1; /* ms of the total budget still available; -1: no budget */
  if (p->max_total_ms > 0) {
    if (elapsed_ms >= p->max_total_ms)
      return -1;
    left = p->max_total_ms - elapsed_ms;
  }
  if (server_hint_ms >= 0) {
    if (left >= 0 && server_hint_ms > left)
      return -1; /* the server will not take us back before our deadline */
    long spread = server_hint_ms / 10;
    if (left >= 0 && spread > left - server_hint_ms)
      spread = left - server_hint_ms;
    return server_hint_ms + (rng ? uniform_upto(rng, spread) : 0);
  }
  long delay = retry_backoff_ms(p, attempt, rng);
  return left >= 0 && delay > left ? left : delay;
}

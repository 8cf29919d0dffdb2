/* Rate limits for `moonloop mock-server` (--rpm, --tpm), enforced the way a hosted API does
 * it: one pair of token buckets per API key, the provider's rate-limit headers on every chat
 * response, and a 429 with Retry-After when a request does not fit. Also GET /stats, the
 * counters a benchmark reads to see how close a client stays to the limits. */
#include "mock/server.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>

#define RL_WINDOW 120      /* seconds of per-second history kept for /stats */
#define RL_MAX_KEYS 65536  /* further keys share the no-key bucket */
#define RL_DEFAULT_OUT 256 /* tokens charged for the answer when max_tokens is absent */

/* One API key's buckets. Levels are fractional so that refill is continuous. */
struct rl_key {
  char *key;
  size_t len;
  uint64_t hash;
  double req, tok; /* tokens left in the request and token buckets */
  uint64_t t_ns;   /* when the levels were last brought up to date */
};

struct mock_rl {
  uint64_t t0_ns;      /* server start: second 0 of the histogram */
  struct rl_key *keys; /* open addressing, cap a power of two, key == NULL for empty */
  size_t nkeys, cap;
  struct rl_key shared; /* no key, or past RL_MAX_KEYS */

  /* Counters for /stats. */
  uint64_t requests, admitted, throttled, too_large, ok, errors, tokens_admitted;
  uint64_t hist_sec; /* the second hist_*[hist_sec % RL_WINDOW] is counting */
  uint32_t hist_req[RL_WINDOW];
  uint64_t hist_tok[RL_WINDOW];

  /* The rate-limit headers of the request being rendered (seq), added by the head. */
  uint64_t seq;
  int counted;
  struct mock_buf hdr;
};

int mock_rl_init(struct mock_server *srv) {
  srv->rl = calloc(1, sizeof *srv->rl);
  if (srv->rl == NULL)
    return UV_ENOMEM;
  srv->rl->t0_ns = uv_hrtime();
  srv->rl->shared.req = (double)srv->cfg.rpm;
  srv->rl->shared.tok = (double)srv->cfg.tpm;
  srv->rl->shared.t_ns = srv->rl->t0_ns;
  return 0;
}

void mock_rl_free(struct mock_server *srv) {
  struct mock_rl *rl = srv->rl;
  if (rl == NULL)
    return;
  for (size_t i = 0; i < rl->cap; i++)
    free(rl->keys[i].key);
  free(rl->keys);
  mock_buf_free(&rl->hdr);
  free(rl);
  srv->rl = NULL;
}

/* ---- Buckets ----------------------------------------------------------------------- */

/* The API key a request is charged to: the Bearer token, else x-api-key, else none. */
static void request_key(const struct mock_conn *c, const char *base, const char **key,
                        size_t *len) {
  const char *v;
  size_t n;
  *key = "";
  *len = 0;
  if (mreq_header(&c->req, base, "authorization", &v, &n)) {
    if (n >= 7 && strncasecmp(v, "bearer ", 7) == 0) {
      v += 7;
      n -= 7;
      while (n > 0 && *v == ' ') {
        v++;
        n--;
      }
    }
    *key = v;
    *len = n;
  } else if (mreq_header(&c->req, base, "x-api-key", &v, &n)) {
    *key = v;
    *len = n;
  }
}

static int grow(struct mock_rl *rl) {
  size_t cap = rl->cap ? rl->cap * 2 : 64;
  struct rl_key *keys = calloc(cap, sizeof *keys);
  if (keys == NULL)
    return UV_ENOMEM;
  for (size_t i = 0; i < rl->cap; i++) {
    if (rl->keys[i].key == NULL)
      continue;
    size_t j = rl->keys[i].hash & (cap - 1);
    while (keys[j].key)
      j = (j + 1) & (cap - 1);
    keys[j] = rl->keys[i];
  }
  free(rl->keys);
  rl->keys = keys;
  rl->cap = cap;
  return 0;
}

/* The buckets of key (created full on first sight); NULL only when out of memory. */
static struct rl_key *find_key(struct mock_server *srv, const char *key, size_t len, uint64_t now) {
  struct mock_rl *rl = srv->rl;
  if (len == 0)
    return &rl->shared;
  uint64_t h = mock_fnv1a(key, len);
  for (size_t i = rl->cap ? h & (rl->cap - 1) : 0; rl->cap && rl->keys[i].key;
       i = (i + 1) & (rl->cap - 1)) {
    struct rl_key *k = &rl->keys[i];
    if (k->hash == h && k->len == len && memcmp(k->key, key, len) == 0)
      return k;
  }
  if (rl->nkeys >= RL_MAX_KEYS)
    return &rl->shared;
  if ((rl->nkeys + 1) * 2 > rl->cap && grow(rl) != 0)
    return NULL;
  size_t i = h & (rl->cap - 1);
  while (rl->keys[i].key)
    i = (i + 1) & (rl->cap - 1);
  struct rl_key *k = &rl->keys[i];
  k->key = malloc(len);
  if (k->key == NULL)
    return NULL;
  memcpy(k->key, key, len);
  k->len = len;
  k->hash = h;
  k->req = (double)srv->cfg.rpm;
  k->tok = (double)srv->cfg.tpm;
  k->t_ns = now;
  rl->nkeys++;
  return k;
}

/* Continuous refill: a per-minute limit L adds L/60 per second, up to L. */
static void refill(const struct mock_config *cfg, struct rl_key *k, uint64_t now) {
  double dt = now > k->t_ns ? (double)(now - k->t_ns) / 1e9 : 0;
  k->t_ns = now;
  k->req = fmin((double)cfg->rpm, k->req + dt * (double)cfg->rpm / 60.0);
  k->tok = fmin((double)cfg->tpm, k->tok + dt * (double)cfg->tpm / 60.0);
}

/* Milliseconds (rounded up) until a bucket with limit per minute holds want. */
static uint64_t ms_until(double level, double want, long long limit) {
  if (limit <= 0 || level >= want)
    return 0;
  return (uint64_t)ceil((want - level) * 60000.0 / (double)limit);
}

/* ---- The request's token estimate ----------------------------------------------------- */

/* Bytes of text in a message content: a string, or a list of parts with "text". */
static size_t content_bytes(const cJSON *content) {
  if (cJSON_IsString(content))
    return strlen(content->valuestring);
  size_t n = 0;
  const cJSON *part;
  if (cJSON_IsArray(content))
    cJSON_ArrayForEach(part, content) {
      const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
      if (cJSON_IsString(t))
        n += strlen(t->valuestring);
    }
  return n;
}

struct estimate {
  long long tokens;
  char model[128];
};

/* Tokens a provider would reserve before answering: prompt bytes / 4 (rounded up) plus
 * max_tokens, or plus RL_DEFAULT_OUT without one. An unparsable body counts its bytes. */
static void estimate(const char *body, size_t len, struct estimate *e) {
  size_t bytes = 0;
  long long out = RL_DEFAULT_OUT;
  snprintf(e->model, sizeof e->model, "the model");
  cJSON *j = cJSON_ParseWithLength(body, len);
  if (cJSON_IsObject(j)) {
    const cJSON *m, *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
    cJSON_ArrayForEach(m, msgs) bytes +=
        content_bytes(cJSON_GetObjectItemCaseSensitive(m, "content"));
    bytes += content_bytes(cJSON_GetObjectItemCaseSensitive(j, "system")); /* Anthropic */
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(j, "max_tokens");
    if (!cJSON_IsNumber(mt))
      mt = cJSON_GetObjectItemCaseSensitive(j, "max_completion_tokens");
    if (cJSON_IsNumber(mt) && mt->valuedouble >= 0 && mt->valuedouble < 1e12)
      out = (long long)mt->valuedouble;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    if (cJSON_IsString(model))
      snprintf(e->model, sizeof e->model, "%s", model->valuestring);
  } else {
    bytes = len;
  }
  cJSON_Delete(j);
  e->tokens = (long long)((bytes + 3) / 4) + out;
}

/* ---- Headers ------------------------------------------------------------------------ */

/* A duration as OpenAI writes it (Go's time.Duration): "250ms", "1s", "1.5s", "6m0s". */
static void fmt_duration(char *out, size_t cap, uint64_t ms) {
  if (ms == 0) {
    snprintf(out, cap, "0s");
  } else if (ms < 1000) {
    snprintf(out, cap, "%llums", (unsigned long long)ms);
  } else {
    uint64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60, frac = ms % 1000;
    char sec[16];
    if (frac == 0) {
      snprintf(sec, sizeof sec, "%llus", (unsigned long long)s);
    } else {
      snprintf(sec, sizeof sec, "%llu.%03llu", (unsigned long long)s, (unsigned long long)frac);
      size_t n = strlen(sec);
      while (sec[n - 1] == '0')
        sec[--n] = '\0';
      snprintf(sec + n, sizeof sec - n, "s");
    }
    if (h > 0)
      snprintf(out, cap, "%lluh%llum%s", (unsigned long long)h, (unsigned long long)m, sec);
    else if (m > 0)
      snprintf(out, cap, "%llum%s", (unsigned long long)m, sec);
    else
      snprintf(out, cap, "%s", sec);
  }
}

/* Now plus ms, as an RFC 3339 UTC timestamp rounded up to the second (Anthropic's resets). */
static void fmt_reset_time(char *out, size_t cap, uint64_t ms) {
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t t_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + ms;
  time_t t = (time_t)((t_ms + 999) / 1000);
  gmtime_r(&t, &tm);
  strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* One limit's three headers (limit, remaining, reset) in the API's spelling. */
static int put_limit(struct mock_buf *b, enum mock_api api, const char *what, long long limit,
                     double level) {
  char reset[48];
  uint64_t ms = ms_until(level, (double)limit, limit);
  long long left = (long long)floor(level);
  if (api == MOCK_API_ANTHROPIC) {
    fmt_reset_time(reset, sizeof reset, ms);
    return mock_buf_printf(b,
                           "anthropic-ratelimit-%s-limit: %lld\r\n"
                           "anthropic-ratelimit-%s-remaining: %lld\r\n"
                           "anthropic-ratelimit-%s-reset: %s\r\n",
                           what, limit, what, left, what, reset);
  }
  fmt_duration(reset, sizeof reset, ms);
  return mock_buf_printf(b,
                         "x-ratelimit-limit-%s: %lld\r\nx-ratelimit-remaining-%s: %lld\r\n"
                         "x-ratelimit-reset-%s: %s\r\n",
                         what, limit, what, left, what, reset);
}

int mock_rl_on_head(struct mock_conn *c, int status, struct mock_buf *out) {
  struct mock_rl *rl = c->srv->rl;
  if (rl == NULL || rl->seq != c->seq)
    return 0;
  if (!rl->counted) {
    rl->counted = 1;
    if (status == 200)
      rl->ok++;
    else if (c->fault != MOCK_FAULT_RATELIMIT)
      rl->errors++;
  }
  return rl->hdr.len ? mock_buf_add(out, rl->hdr.data, rl->hdr.len) : 0;
}

/* ---- Admission ---------------------------------------------------------------------- */

/* Move the histogram to the current second, clearing the seconds nobody counted in. */
static uint64_t hist_advance(struct mock_rl *rl, uint64_t now) {
  uint64_t sec = (now - rl->t0_ns) / 1000000000u;
  for (uint64_t s = rl->hist_sec + 1; s <= sec && s <= rl->hist_sec + RL_WINDOW; s++) {
    rl->hist_req[s % RL_WINDOW] = 0;
    rl->hist_tok[s % RL_WINDOW] = 0;
  }
  if (sec > rl->hist_sec)
    rl->hist_sec = sec;
  return sec;
}

/* Render the 429 for a request that does not fit; wait_ms is 0 when it never will. */
static int put_throttled(struct mock_conn *c, enum mock_api api, const struct estimate *e,
                         const char *what, long long limit, double level, long long asked,
                         uint64_t wait_ms) {
  char msg[512], extra[128], wait[48];
  int is_req = strcmp(what, "requests") == 0;
  const char *unit = is_req ? "requests per min (RPM)" : "tokens per min (TPM)";
  long long used = limit - (long long)floor(level);
  c->fault = MOCK_FAULT_RATELIMIT;
  c->stream = 0;
  extra[0] = '\0';
  if (wait_ms == 0) {
    snprintf(msg, sizeof msg,
             "Request too large for %s on %s: Limit %lld, Requested %lld. The input or output "
             "tokens must be reduced in order to run successfully.",
             e->model, unit, limit, asked);
  } else {
    fmt_duration(wait, sizeof wait, wait_ms);
    snprintf(msg, sizeof msg,
             "Rate limit reached for %s on %s: Limit %lld, Used %lld, Requested %lld. Please "
             "try again in %s.",
             e->model, unit, limit, used, asked, wait);
    snprintf(extra, sizeof extra, "Retry-After: %llu\r\nretry-after-ms: %llu\r\n",
             (unsigned long long)((wait_ms + 999) / 1000), (unsigned long long)wait_ms);
  }
  if (api == MOCK_API_ANTHROPIC)
    return mock_put_anthropic_error(c, 429, "rate_limit_error", msg, extra);
  return mock_put_error(c, 429, msg, is_req ? "requests" : "tokens", "rate_limit_exceeded", extra);
}

int mock_rl_admit(struct mock_conn *c, const char *base, enum mock_api api) {
  struct mock_server *srv = c->srv;
  struct mock_rl *rl = srv->rl;
  const struct mock_config *cfg = &srv->cfg;
  uint64_t now = uv_hrtime();
  rl->seq = c->seq;
  rl->counted = 0;
  rl->hdr.len = 0;
  rl->requests++;
  uint64_t sec = hist_advance(rl, now);

  struct estimate e;
  estimate(base + c->req.body.off, c->req.body.len, &e);
  struct rl_key *k = &rl->shared;
  if (cfg->rpm > 0 || cfg->tpm > 0) {
    const char *key;
    size_t klen;
    request_key(c, base, &key, &klen);
    if ((k = find_key(srv, key, klen, now)) == NULL)
      return UV_ENOMEM;
    refill(cfg, k, now);
  }

  /* What is short, and how long until it is not. */
  uint64_t wait_req = cfg->rpm > 0 ? ms_until(k->req, 1, cfg->rpm) : 0;
  uint64_t wait_tok = cfg->tpm > 0 ? ms_until(k->tok, (double)e.tokens, cfg->tpm) : 0;
  int too_large = cfg->tpm > 0 && e.tokens > cfg->tpm;
  int admit = !too_large && wait_req == 0 && wait_tok == 0;
  if (admit) {
    if (cfg->rpm > 0)
      k->req -= 1;
    if (cfg->tpm > 0)
      k->tok -= (double)e.tokens;
    rl->admitted++;
    rl->tokens_admitted += (uint64_t)e.tokens;
    rl->hist_req[sec % RL_WINDOW]++;
    rl->hist_tok[sec % RL_WINDOW] += (uint64_t)e.tokens;
  }
  int rc = 0;
  if (cfg->rpm > 0)
    rc = put_limit(&rl->hdr, api, "requests", cfg->rpm, k->req);
  if (rc == 0 && cfg->tpm > 0)
    rc = put_limit(&rl->hdr, api, "tokens", cfg->tpm, k->tok);
  if (rc || admit)
    return rc;

  rl->throttled++;
  if (too_large) {
    rl->too_large++;
    rc = put_throttled(c, api, &e, "tokens", cfg->tpm, k->tok, e.tokens, 0);
  } else if (wait_req >= wait_tok) {
    rc = put_throttled(c, api, &e, "requests", cfg->rpm, k->req, 1, wait_req);
  } else {
    rc = put_throttled(c, api, &e, "tokens", cfg->tpm, k->tok, e.tokens, wait_tok);
  }
  return rc ? rc : MOCK_RL_THROTTLED;
}

/* ---- GET /stats --------------------------------------------------------------------- */

int mock_rl_stats(struct mock_conn *c) {
  struct mock_server *srv = c->srv;
  struct mock_rl *rl = srv->rl;
  uint64_t now = uv_hrtime();
  uint64_t sec = hist_advance(rl, now);
  uint64_t first = sec >= RL_WINDOW ? sec - RL_WINDOW + 1 : 0;
  struct mock_buf *b = &srv->body;
  b->len = 0;
  int rc = mock_buf_printf(
      b,
      "{\"uptime_s\":%.3f,\"rpm\":%lld,\"tpm\":%lld,\"keys\":%zu,\"requests\":%llu,"
      "\"admitted\":%llu,\"throttled\":%llu,\"too_large\":%llu,\"ok\":%llu,\"errors\":%llu,"
      "\"tokens_admitted\":%llu,\"per_second\":{\"start_s\":%llu,\"now_s\":%llu,\"admitted\":[",
      (double)(now - rl->t0_ns) / 1e9, srv->cfg.rpm, srv->cfg.tpm, rl->nkeys,
      (unsigned long long)rl->requests, (unsigned long long)rl->admitted,
      (unsigned long long)rl->throttled, (unsigned long long)rl->too_large,
      (unsigned long long)rl->ok, (unsigned long long)rl->errors,
      (unsigned long long)rl->tokens_admitted, (unsigned long long)first, (unsigned long long)sec);
  for (uint64_t s = first; rc == 0 && s <= sec; s++)
    rc = mock_buf_printf(b, "%s%u", s == first ? "" : ",", rl->hist_req[s % RL_WINDOW]);
  rc = rc ? rc : mock_buf_adds(b, "],\"tokens\":[");
  for (uint64_t s = first; rc == 0 && s <= sec; s++)
    rc = mock_buf_printf(b, "%s%llu", s == first ? "" : ",",
                         (unsigned long long)rl->hist_tok[s % RL_WINDOW]);
  rc = rc ? rc : mock_buf_adds(b, "]}}\n");
  return rc ? rc : mock_put_json(c, 200, b->data, b->len, NULL);
}

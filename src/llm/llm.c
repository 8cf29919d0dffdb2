/* llm.chat: from a Lua table to an HTTP request and back to a result table or a
 * structured error. The request body is built in C; the API key is read from the
 * environment here and attached as a header, so Lua never holds it. The calling task
 * waits with sched_wait; libcurl callbacks only fill the llm_response and wake it. */
#include "llm/llm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <lauxlib.h>

#include "core/rt.h"
#include "core/sched.h"
#include "http/engine.h"
#include "llm/anthropic.h"
#include "llm/body.h"
#include "llm/cache.h"
#include "llm/gate.h"
#include "llm/openai.h"
#include "llm/retry.h"
#include "lua/json.h"

#define REQ_MT "moonloop.llm_request"
#define ANTHROPIC_VERSION "2023-06-01"
#define SPEC 1 /* stack index of the argument table */
#define REQ 2  /* stack index of the request userdata */

enum err_kind { EK_HTTP, EK_TIMEOUT, EK_RATE_LIMITED, EK_CANCELLED, EK_PARSE, EK_BUDGET,
                EK_TRANSPORT };
static const char *const kind_names[] = {"http",  "timeout", "rate_limited", "cancelled",
                                         "parse", "budget",  "transport"};
/* How each kind reads in a message: "...[request #3]: rate limited (HTTP 429): ..." */
static const char *const kind_phrases[] = {"HTTP error", "timed out", "rate limited", "cancelled",
                                           "unusable answer", "budget reached",
                                           "transport error"};

struct llm_req {
  struct ml_rt *rt;
  struct ml_task *task;
  struct http_xfer *x;
  const struct llm_provider *prov;
  const struct llm_model *alias;
  char model[160];
  uint64_t id;
  int n;
  int stream;
  int has_stream_fn;
  int want_json;
  unsigned spec_present; /* bits of the spec keys the table holds (enum spec_key) */
  int done;
  uint64_t t0_ns, t1_ns;
  struct llm_response *res; /* malloc'd: dropped as soon as the script has the answer */

  /* Kept for retries: every attempt is a fresh transfer of the same bytes. */
  char *body_json;
  char *url;
  char role[64];
  long total_ms;
  int attempts;           /* sends so far */
  int deltas_delivered;   /* a stream that reached the script is never retried */
  struct retry_policy policy;
  uint64_t rng;
  struct retry_wait *retry_wait;
  struct gate *gate;        /* NULL for the simulator */
  struct gate_waiter gw;
  double est_tokens;

  char cache_key[33];       /* "" when the cache is not used for this request */
  int cached;               /* answered from the cache or by an identical request */
  struct flight *leading;   /* the flight this request sends for others, if any */
  struct flight *following; /* the flight it waits on, if any */
  struct llm_req *next_follower;
};

/* Identical requests in flight: the first is sent, the others wait for its answer. */
struct flight {
  struct flight *next;
  char key[33];
  struct llm_req *followers;
  char *answer; /* the leader's answer as cache JSON, or NULL when it failed */
  int done;
};

/* The pause before a retry: a timer owned by the wait, freed when its handle closes. */
struct retry_wait {
  uv_timer_t timer;
  struct llm_req *r;
};

static void budget_check(struct ml_rt *rt);
static void flight_land(struct llm_state *st, struct llm_req *leader, const char *answer);
static void flight_unfollow(struct llm_req *r);

/* ---------------------------------------------------------------------------------- */
/* Request userdata */

static void retry_wait_closed(uv_handle_t *h) {
  free(h->data);
}

static void retry_wait_stop(struct llm_req *r) {
  if (r->retry_wait) {
    uv_close((uv_handle_t *)&r->retry_wait->timer, retry_wait_closed);
    r->retry_wait = NULL;
  }
}

static int req_gc(lua_State *L) {
  struct llm_req *r = luaL_checkudata(L, 1, REQ_MT);
  flight_unfollow(r);
  if (r->leading)
    flight_land(r->rt->llm, r, NULL);
  if (r->gate)
    gate_leave(r->gate, &r->gw, -1, LIMITER_CANCELLED);
  if (r->x) {
    http_xfer_free(r->x);
    r->x = NULL;
  }
  retry_wait_stop(r);
  free(r->body_json);
  r->body_json = NULL;
  free(r->url);
  r->url = NULL;
  if (r->res) {
    llm_response_free(r->res);
    free(r->res);
    r->res = NULL;
  }
  return 0;
}

/* The request is over, answered or failed for good: its transfer goes back to the
 * engine's pool and its body is dropped now, not when the collector gets to the request
 * object (thousands of finished requests would otherwise hold their easy handles). */
static void req_release(struct llm_req *r) {
  if (r->x) {
    http_xfer_free(r->x);
    r->x = NULL;
  }
  free(r->body_json);
  r->body_json = NULL;
  free(r->url);
  r->url = NULL;
}

static void on_xfer_done(struct http_xfer *x) {
  struct llm_req *r = x->ud;
  r->done = 1;
  r->t1_ns = uv_hrtime();
  sched_wake(r->task);
}

static int on_xfer_event(struct http_xfer *x, const struct sse_event *ev) {
  struct llm_req *r = x->ud;
  int rc = r->prov->kind == LLM_KIND_ANTHROPIC ? anthropic_stream_event(r->res, ev)
                                               : openai_stream_event(r->res, ev);
  if (rc < 0)
    return 1; /* abort: the error is in r->res->error */
  if (rc > 0)
    sched_wake(r->task); /* a delta for the stream callback */
  return 0;
}

static void req_cleanup(struct ml_task *t, void *data) {
  struct llm_req *r = data;
  (void)t;
  if (r->x)
    http_xfer_cancel(r->x);
  retry_wait_stop(r);
  if (r->gate)
    gate_leave(r->gate, &r->gw, -1, LIMITER_CANCELLED);
  flight_unfollow(r);
  if (r->leading) /* the followers send for themselves */
    flight_land(r->rt->llm, r, NULL);
}

/* Rate-limit headers go to the gate (libcurl context: pure C). */
static void on_xfer_header(struct http_xfer *x, const char *name, size_t nlen, const char *value,
                           size_t vlen) {
  struct llm_req *r = x->ud;
  if (r->gate == NULL || nlen >= 64 || vlen >= 128)
    return;
  if (!((nlen > 12 && strncasecmp(name, "x-ratelimit-", 12) == 0) ||
        (nlen > 20 && strncasecmp(name, "anthropic-ratelimit-", 20) == 0)))
    return;
  char n[64], v[128];
  memcpy(n, name, nlen);
  n[nlen] = '\0';
  memcpy(v, value, vlen);
  v[vlen] = '\0';
  gate_learn(r->gate, n, v);
}

/* ---------------------------------------------------------------------------------- */
/* Errors */

/* Replace every occurrence of the provider's key in s (a server may echo it back). */
static void redact_key(const struct llm_provider *p, char *s) {
  const char *key = p && p->api_key_env ? getenv(p->api_key_env) : NULL;
  if (key == NULL || strlen(key) < 4)
    return;
  size_t klen = strlen(key);
  char *hit;
  while ((hit = strstr(s, key)) != NULL) {
    static const char mask[] = "[redacted]";
    size_t m = sizeof mask - 1 < klen ? sizeof mask - 1 : klen;
    memcpy(hit, mask, m);
    memmove(hit + m, hit + klen, strlen(hit + klen) + 1);
  }
}

/* Raise {kind=, message=, status=, retryable=, provider=, model=, request=, ...}. */
static int raise_error(lua_State *L, struct llm_req *r, enum err_kind kind, long status,
                       int retryable, const char *detail) {
  char msg[1024];
  char what[64] = "";
  if (status > 0)
    snprintf(what, sizeof what, " (HTTP %ld)", status);
  char tries[48] = "";
  if (r->attempts > 1)
    snprintf(tries, sizeof tries, " after %d attempts", r->attempts);
  snprintf(msg, sizeof msg, "llm.chat %s/%s [request #%llu]: %s%s%s: %s%s",
           r->prov ? r->prov->name : "?", r->model, (unsigned long long)r->id,
           kind_phrases[kind], what, tries, detail,
           retryable && r->attempts <= 1 ? " (retryable)" : "");
  redact_key(r->prov, msg);
  sched_push_error(L, kind_names[kind], msg);
  if (status > 0) {
    lua_pushinteger(L, status);
    lua_setfield(L, -2, "status");
  }
  lua_pushboolean(L, retryable);
  lua_setfield(L, -2, "retryable");
  lua_pushstring(L, r->prov ? r->prov->name : "?");
  lua_setfield(L, -2, "provider");
  lua_pushstring(L, r->model);
  lua_setfield(L, -2, "model");
  lua_pushinteger(L, (lua_Integer)r->id);
  lua_setfield(L, -2, "request");
  lua_pushinteger(L, r->attempts > 0 ? r->attempts : 1);
  lua_setfield(L, -2, "attempts");
  if (r->x && r->x->retry_after[0]) {
    lua_pushstring(L, r->x->retry_after);
    lua_setfield(L, -2, "retry_after");
  }
  struct llm_stats *st = &r->rt->llm->stats;
  st->errors++;
  st->errors_by_kind[kind]++;
  req_release(r);
  return lua_error(L);
}

/* ---------------------------------------------------------------------------------- */
/* Cache and single flight */

/* The answer as stored in the cache: choices, usage and model; parsing options are never
 * part of it, so a cached answer is re-read with this request's own options. */
static char *answer_json(const struct llm_req *r) {
  cJSON *o = cJSON_CreateObject();
  cJSON *choices = cJSON_AddArrayToObject(o, "choices");
  for (int i = 0; i < r->res->nchoices; i++) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "text", r->res->choices[i].text.data ? r->res->choices[i].text.data : "");
    cJSON_AddStringToObject(c, "finish_reason", r->res->choices[i].finish_reason);
    cJSON_AddItemToArray(choices, c);
  }
  if (r->res->has_usage) {
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "input", (double)r->res->input_tokens);
    cJSON_AddNumberToObject(u, "output", (double)r->res->output_tokens);
  }
  cJSON_AddStringToObject(o, "model", r->res->model[0] ? r->res->model : r->model);
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return s;
}

static int answer_load(struct llm_req *r, const char *json) {
  cJSON *o = cJSON_Parse(json);
  const cJSON *choices = cJSON_GetObjectItemCaseSensitive(o, "choices");
  if (!cJSON_IsArray(choices) || cJSON_GetArraySize(choices) == 0) {
    cJSON_Delete(o);
    return -1;
  }
  llm_response_free(r->res);
  llm_response_init(r->res, r->n, 0);
  int i = 0;
  const cJSON *c;
  cJSON_ArrayForEach(c, choices) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(c, "text");
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(c, "finish_reason");
    if (!cJSON_IsString(t) || llm_response_append(r->res, i, t->valuestring, strlen(t->valuestring)) != 0) {
      cJSON_Delete(o);
      return -1;
    }
    if (cJSON_IsString(f))
      snprintf(r->res->choices[i].finish_reason, sizeof r->res->choices[i].finish_reason, "%s", f->valuestring);
    i++;
  }
  const cJSON *u = cJSON_GetObjectItemCaseSensitive(o, "usage");
  const cJSON *in = cJSON_GetObjectItemCaseSensitive(u, "input");
  const cJSON *out = cJSON_GetObjectItemCaseSensitive(u, "output");
  if (cJSON_IsNumber(in) && cJSON_IsNumber(out)) {
    r->res->input_tokens = (long)in->valuedouble;
    r->res->output_tokens = (long)out->valuedouble;
    r->res->has_usage = 1;
  }
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "model");
  if (cJSON_IsString(m))
    snprintf(r->res->model, sizeof r->res->model, "%s", m->valuestring);
  cJSON_Delete(o);
  r->cached = 1;
  return 0;
}

static struct flight *flight_find(struct llm_state *st, const char *key) {
  for (struct flight *f = st->flights; f; f = f->next)
    if (!f->done && strcmp(f->key, key) == 0)
      return f;
  return NULL;
}

/* The leader is done: hand its answer (or NULL after a failure) to the followers and
 * retire the flight. A follower that gets NULL sends its own request. */
static void flight_land(struct llm_state *st, struct llm_req *leader, const char *answer) {
  struct flight *f = leader->leading;
  if (f == NULL)
    return;
  leader->leading = NULL;
  f->done = 1;
  f->answer = answer ? strdup(answer) : NULL;
  for (struct llm_req *w = f->followers; w; w = w->next_follower)
    sched_wake(w->task);
  /* Unlink now; the followers hold the flight until they have read it. */
  for (struct flight **pp = &st->flights; *pp; pp = &(*pp)->next)
    if (*pp == f) {
      *pp = f->next;
      break;
    }
  if (f->followers == NULL) {
    free(f->answer);
    free(f);
  }
}

static void flight_unfollow(struct llm_req *r) {
  struct flight *f = r->following;
  if (f == NULL)
    return;
  r->following = NULL;
  for (struct llm_req **pp = &f->followers; *pp; pp = &(*pp)->next_follower)
    if (*pp == r) {
      *pp = r->next_follower;
      break;
    }
  if (f->done && f->followers == NULL) {
    free(f->answer);
    free(f);
  }
}

/* The cache file, opened on first use. A file that cannot be opened is reported once and
 * the run goes on without a cache. */
static struct llm_cache *cache_of(struct ml_rt *rt) {
  struct llm_state *st = rt->llm;
  if (st->cache || st->cache_failed || st->cache_mode == CACHE_OFF)
    return st->cache;
  char err[512];
  if (cache_open(&st->cache, st->cfg.cache_path, (enum cache_mode)st->cache_mode, err,
                 sizeof err) != 0) {
    st->cache_failed = 1;
    st->cache = NULL;
    rt_log(rt, ML_LOG_WARN, "running without the response cache: %s", err);
  }
  return st->cache;
}

/* ---------------------------------------------------------------------------------- */
/* Server capacity */

/* llama.cpp's server says how many requests it serves at once (GET /props: total_slots).
 * For a plain-http provider with no max_inflight, moonloop asks once, before the first
 * request to it is admitted, and uses the answer as the in-flight cap. A server without
 * /props answers 404 (or nothing within 2 s) and nothing changes. */
static void on_probe_done(struct http_xfer *x) {
  struct gate *g = x->ud;
  if (x->err == HTTP_OK && x->status == 200 && x->resp.data) {
    cJSON *o = cJSON_ParseWithLength(x->resp.data, x->resp.len);
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "total_slots");
    if (cJSON_IsNumber(n) && n->valuedouble >= 1 && n->valuedouble <= 100000)
      gate_set_slots(g, (int)n->valuedouble);
    cJSON_Delete(o);
  }
  gate_unhold(g);
  http_xfer_free(x);
}

static void probe_slots(struct ml_rt *rt, const struct llm_provider *p, struct gate *g) {
  if (p->kind != LLM_KIND_OPENAI || p->max_inflight > 0 || !p->base_url ||
      strncmp(p->base_url, "http://", 7) != 0)
    return;
  char url[1024];
  size_t n = strlen(p->base_url);
  if (n >= 3 && strcmp(p->base_url + n - 3, "/v1") == 0)
    n -= 3;
  snprintf(url, sizeof url, "%.*s/props", (int)n, p->base_url);
  struct http_xfer *x = http_xfer_new(rt->http, url, NULL, 0);
  if (x == NULL)
    return;
  x->ud = g;
  x->on_done = on_probe_done;
  x->connect_ms = 1000;
  x->total_ms = 2000;
  gate_hold(g);
  if (http_xfer_start(x) != 0) {
    gate_unhold(g);
    http_xfer_free(x);
  }
}

/* ---------------------------------------------------------------------------------- */
/* Building the request (the body itself: body.c) */

/* Push spec[name], or nil without a lookup when the table does not hold the key. */
static int spec_field(lua_State *L, const struct llm_req *r, enum spec_key k, const char *name) {
  if (!(r->spec_present & (1u << k))) {
    lua_pushnil(L);
    return LUA_TNIL;
  }
  return lua_getfield(L, SPEC, name);
}

static struct body_opts body_opts_of(const struct llm_req *r) {
  struct body_opts o = {r->model, r->n, r->stream, r->prov->stream_usage, r->want_json,
                        r->spec_present};
  return o;
}

/* ---------------------------------------------------------------------------------- */
/* Results */

/* Model text as Lua gets it: valid UTF-8, each byte that is not becoming U+FFFD, so a bad
 * answer cannot break the dataset, the journal or the report later. */
static void push_utf8(lua_State *L, const char *s, size_t len) {
  if (ml_json_utf8_check(s, len) == len) {
    lua_pushlstring(L, s, len);
    return;
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (;;) {
    size_t k = ml_json_utf8_check(s, len);
    luaL_addlstring(&b, s, k);
    if (k == len)
      break;
    luaL_addstring(&b, "\xEF\xBF\xBD");
    s += k + 1;
    len -= k + 1;
  }
  luaL_pushresult(&b);
}

static void push_choice(lua_State *L, struct llm_req *r, int i) {
  struct llm_choice *c = &r->res->choices[i];
  lua_createtable(L, 0, 10);
  push_utf8(L, c->text.data ? c->text.data : "", c->text.len);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "text");
  lua_createtable(L, 0, 2);
  lua_pushliteral(L, "assistant");
  lua_setfield(L, -2, "role");
  lua_insert(L, -2);
  lua_setfield(L, -2, "content");
  lua_setfield(L, -2, "message");
  lua_pushstring(L, c->finish_reason[0] ? c->finish_reason : "unknown");
  lua_setfield(L, -2, "finish_reason");
  lua_pushinteger(L, i + 1);
  lua_setfield(L, -2, "index");
}

/* Usage, cost, latency, model: on the single result, or on the list for n > 1. */
static void push_request_fields(lua_State *L, struct llm_req *r) {
  struct llm_stats *st = &r->rt->llm->stats;
  lua_createtable(L, 0, 2);
  if (r->res->has_usage) {
    lua_pushinteger(L, r->res->input_tokens);
    lua_setfield(L, -2, "input");
    lua_pushinteger(L, r->res->output_tokens);
    lua_setfield(L, -2, "output");
  }
  lua_setfield(L, -2, "usage");
  /* A cached or merged answer keeps its usage and cost but spends nothing now. */
  if (!r->cached) {
    st->input_tokens += (uint64_t)r->res->input_tokens;
    st->output_tokens += (uint64_t)r->res->output_tokens;
  }
  if (r->alias && r->alias->has_price && r->res->has_usage) {
    double cost = (double)r->res->input_tokens * r->alias->price_in / 1e6 +
                  (double)r->res->output_tokens * r->alias->price_out / 1e6;
    lua_pushnumber(L, cost);
    lua_setfield(L, -2, "cost_usd");
    if (!r->cached) {
      st->cost_usd += cost;
      budget_check(r->rt);
    }
  } else if (!r->cached) {
    st->unpriced_requests++; /* cost_usd stays nil: unknown, not zero */
    struct llm_state *ls = r->rt->llm;
    if (ls->budget_usd > 0 && !ls->unpriced_warned) {
      ls->unpriced_warned = 1;
      rt_log(r->rt, ML_LOG_WARN, "a dollar budget is set but %s/%s has no price in the config: "
                                 "its requests are not counted against the budget",
             r->prov->name, r->model);
    }
  }
  lua_pushnumber(L, (double)(r->t1_ns - r->t0_ns) / 1e6);
  lua_setfield(L, -2, "latency_ms");
  lua_pushboolean(L, r->cached);
  lua_setfield(L, -2, "cached");
  lua_pushstring(L, r->res->model[0] ? r->res->model : r->model);
  lua_setfield(L, -2, "model");
  lua_pushstring(L, r->prov->name);
  lua_setfield(L, -2, "provider");
  lua_pushinteger(L, (lua_Integer)r->id);
  lua_setfield(L, -2, "request");
  lua_pushinteger(L, r->attempts);
  lua_setfield(L, -2, "attempts"); /* sends it took (0 when cached or merged) */
}

/* For json = true: decode the text (strictly, then by extraction) into result.json. */
static void attach_json(lua_State *L, struct llm_req *r, int i) {
  struct llm_choice *c = &r->res->choices[i];
  const char *text = c->text.data ? c->text.data : "";
  char err[256];
  size_t s, e;
  cJSON *v = cJSON_ParseWithLength(text, c->text.len);
  if (v == NULL)
    v = ml_json_extract(text, c->text.len, &s, &e, err, sizeof err);
  if (v == NULL) {
    char detail[400];
    snprintf(detail, sizeof detail, "json = true but the answer holds no JSON: %s", err);
    lua_pushlstring(L, text, c->text.len); /* keep the text for the error object */
    lua_pop(L, 1);
    raise_error(L, r, EK_PARSE, 0, 1, detail);
  }
  int rc = ml_json_push(L, v, err, sizeof err);
  cJSON_Delete(v);
  if (rc != 0)
    raise_error(L, r, EK_PARSE, 0, 1, err);
  lua_setfield(L, -2, "json");
}

static int push_results(lua_State *L, struct llm_req *r) {
  struct llm_stats *st = &r->rt->llm->stats;
  if (r->res->nchoices == 0)
    return raise_error(L, r, EK_PARSE, 0, 1, "the response holds no choices");
  st->ok++;
  if (r->n <= 1) {
    push_choice(L, r, 0);
    push_request_fields(L, r);
    if (r->want_json)
      attach_json(L, r, 0);
    return 1;
  }
  lua_createtable(L, r->res->nchoices, 8);
  push_request_fields(L, r);
  for (int i = 0; i < r->res->nchoices; i++) {
    push_choice(L, r, i);
    if (r->want_json)
      attach_json(L, r, i);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* How an attempt failed, or 0 when its answer parsed. */
struct failure {
  enum err_kind kind;
  long status;
  int retryable;
  long hint_ms; /* the server's Retry-After, -1 when none */
  char detail[720];
};

static const char *stream_end_name(const struct llm_req *r) {
  return r->prov->kind == LLM_KIND_ANTHROPIC ? "message_stop" : "[DONE]";
}

static int parse_body(struct llm_req *r, struct http_xfer *x) {
  const char *body = x->resp.data ? x->resp.data : "";
  return r->prov->kind == LLM_KIND_ANTHROPIC ? anthropic_parse_body(r->res, body, x->resp.len)
                                             : openai_parse_body(r->res, body, x->resp.len);
}

static int classify(struct llm_req *r, struct failure *f) {
  struct http_xfer *x = r->x;
  f->status = x->status;
  f->retryable = 1;
  f->hint_ms = -1;
  f->detail[0] = '\0';
  if (x->err == HTTP_ECANCELLED) {
    f->kind = EK_CANCELLED;
    f->retryable = 0;
    snprintf(f->detail, sizeof f->detail, "cancelled");
  } else if (x->err == HTTP_EABORTED) { /* the stream sent an error or a malformed event */
    f->kind = r->res->error_type[0] ? EK_HTTP : EK_PARSE;
    if (strstr(r->res->error_type, "overloaded") || strstr(r->res->error_type, "rate_limit"))
      f->status = 529; /* the server pushed back mid-stream: throttled, worth a retry */
    snprintf(f->detail, sizeof f->detail, "%s",
             r->res->error[0] ? r->res->error : http_xfer_strerror(x));
  } else if (x->err == HTTP_ETIMEOUT || x->err == HTTP_EIDLE || x->err == HTTP_ECONNECT_TIMEOUT) {
    f->kind = EK_TIMEOUT;
    f->status = 0;
    snprintf(f->detail, sizeof f->detail, "%s", http_xfer_strerror(x));
  } else if (x->err == HTTP_ESTALE) {
    f->kind = EK_TRANSPORT;
    f->hint_ms = 0; /* the server never saw it: send again at once */
    snprintf(f->detail, sizeof f->detail, "%s", http_xfer_strerror(x));
  } else if (x->err != HTTP_OK && r->stream && x->is_sse && !r->res->stream_done) {
    f->kind = EK_TRANSPORT;
    snprintf(f->detail, sizeof f->detail, "the stream ended before %s (%s)", stream_end_name(r),
             http_xfer_strerror(x));
  } else if (x->err != HTTP_OK) {
    f->kind = EK_TRANSPORT;
    snprintf(f->detail, sizeof f->detail, "%s", http_xfer_strerror(x));
  } else if (x->status < 200 || x->status >= 300) {
    char detail[600];
    if (r->prov->kind == LLM_KIND_ANTHROPIC)
      anthropic_error_message(x->resp.data, x->resp.len, detail, sizeof detail);
    else
      openai_error_message(x->resp.data, x->resp.len, detail, sizeof detail);
    f->retryable = retry_status_retryable(x->status);
    f->kind = x->status == 429 ? EK_RATE_LIMITED : EK_HTTP;
    f->hint_ms = retry_after_ms_header(x->retry_after[0] ? x->retry_after : NULL,
                                       x->retry_after_ms[0] ? x->retry_after_ms : NULL,
                                       (int64_t)time(NULL) * 1000);
    if (f->hint_ms >= 0)
      snprintf(f->detail, sizeof f->detail, "%s; the server asked to wait %.1f s", detail,
               (double)f->hint_ms / 1000);
    else
      snprintf(f->detail, sizeof f->detail, "%s", detail);
  } else if (r->stream && x->is_sse && !r->res->stream_done) {
    f->kind = EK_TRANSPORT;
    snprintf(f->detail, sizeof f->detail, "the stream ended before %s: the response was cut short",
             stream_end_name(r));
  } else if ((!r->stream || !x->is_sse) && parse_body(r, x) != 0) {
    /* (asked for a stream and got a plain body: some servers ignore stream=true) */
    f->kind = EK_PARSE;
    snprintf(f->detail, sizeof f->detail, "%s", r->res->error);
  } else {
    return 0;
  }
  return -1;
}

static int retry_k(lua_State *L, int status, lua_KContext ctx);
static int chat_k(lua_State *L, int status, lua_KContext ctx);

static void on_retry_timer(uv_timer_t *t) {
  struct retry_wait *w = t->data;
  struct llm_req *r = w->r;
  r->retry_wait = NULL;
  uv_close((uv_handle_t *)t, retry_wait_closed);
  sched_wake(r->task);
}

/* The attempt is over: results, a retry after the policy's pause, or the final error. */
static enum limiter_outcome outcome_of(const struct failure *f) {
  if (f->kind == EK_CANCELLED)
    return LIMITER_CANCELLED;
  if (f->kind == EK_RATE_LIMITED || f->status == 529)
    return LIMITER_THROTTLED;
  if (f->kind == EK_TIMEOUT || f->kind == EK_TRANSPORT || f->status >= 500)
    return LIMITER_FAILED;
  return LIMITER_OK; /* the server answered (a 400 is our mistake, not its health) */
}

static int finish_http(lua_State *L, struct llm_req *r) {
  struct failure f;
  if (classify(r, &f) == 0) {
    if (r->gate)
      gate_leave(r->gate, &r->gw,
                 r->res->has_usage ? (double)(r->res->input_tokens + r->res->output_tokens) : -1,
                 LIMITER_OK);
    if (r->cache_key[0]) {
      char *answer = answer_json(r);
      if (answer) {
        struct llm_cache *c = cache_of(r->rt);
        if (c && cache_put(c, r->cache_key, r->model, answer) != 0)
          rt_log(r->rt, ML_LOG_WARN, "cache: %s", cache_errmsg(c));
        flight_land(r->rt->llm, r, answer);
        free(answer);
      }
    }
    req_release(r);
    int n = push_results(L, r);
    llm_response_free(r->res); /* the script has its own copies now */
    free(r->res);
    r->res = NULL;
    return n;
  }
  if (r->gate)
    gate_leave(r->gate, &r->gw, -1, outcome_of(&f));
  struct llm_state *st = r->rt->llm;
  if (!f.retryable || r->deltas_delivered)
    flight_land(st, r, NULL); /* no answer is coming from this one */
  if (f.retryable && !r->deltas_delivered && !st->budget_reached) {
    long elapsed = (long)((uv_hrtime() - r->t0_ns) / 1000000);
    long delay = retry_next_delay(&r->policy, r->attempts, f.hint_ms, elapsed, &r->rng);
    if (delay >= 0) {
      st->stats.retries++;
      http_xfer_free(r->x); /* the next attempt takes a fresh one */
      r->x = NULL;
      rt_log(r->rt, ML_LOG_DEBUG, "llm.chat %s/%s [request #%llu]: attempt %d failed (%s); "
                                  "retrying in %ld ms",
             r->prov->name, r->model, (unsigned long long)r->id, r->attempts, f.detail, delay);
      struct retry_wait *w = malloc(sizeof *w);
      if (w == NULL)
        return luaL_error(L, "out of memory");
      uv_timer_init(&r->rt->loop, &w->timer);
      w->timer.data = w;
      w->r = r;
      r->retry_wait = w;
      uv_timer_start(&w->timer, on_retry_timer, (uint64_t)delay, 0);
      return sched_wait(L, r->task, "llm.chat (retry pause)", req_cleanup, r, (lua_KContext)r,
                        retry_k);
    }
  }
  flight_land(st, r, NULL);
  return raise_error(L, r, f.kind, f.status, f.retryable, f.detail);
}

/* The continuation: deliver stream deltas, wait again, or finish. */
static int chat_k(lua_State *L, int status, lua_KContext ctx) {
  struct llm_req *r = (struct llm_req *)ctx;
  (void)status;
  sched_check_cancel(L, r->task);
  while (r->res->delta_head < r->res->ndeltas) {
    struct llm_delta d = r->res->deltas[r->res->delta_head++];
    lua_getfield(L, SPEC, "stream");
    push_utf8(L, d.text, d.len); /* like the final text: valid UTF-8 */
    lua_pushinteger(L, d.index + 1);
    r->deltas_delivered = 1;
    lua_callk(L, 2, 0, ctx, chat_k);
  }
  llm_response_compact_deltas(r->res);
  if (!r->done)
    return sched_wait(L, r->task, "llm.chat", req_cleanup, r, ctx, chat_k);
  return finish_http(L, r);
}

/* kind = "sim": the simulator's Lua function returns {text=, finish_reason=, usage=} per
 * choice; it is shaped into the same result tables as an HTTP answer. */
static int sim_k(lua_State *L, int status, lua_KContext ctx) {
  struct llm_req *r = (struct llm_req *)ctx;
  (void)status;
  r->t1_ns = uv_hrtime();
  if (!lua_istable(L, -1))
    return raise_error(L, r, EK_PARSE, 0, 0, "the simulator returned no list of choices");
  int n = (int)lua_rawlen(L, -1);
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, -1, i + 1);
    struct llm_choice *c;
    struct llm_choice *grown = realloc(r->res->choices, (size_t)(i + 1) * sizeof *c);
    if (grown == NULL)
      return luaL_error(L, "out of memory");
    r->res->choices = grown;
    c = &grown[i];
    memset(c, 0, sizeof *c);
    r->res->nchoices = i + 1;
    lua_getfield(L, -1, "text");
    size_t len = 0;
    const char *s = lua_tolstring(L, -1, &len);
    c->text.data = malloc(len + 1);
    if (c->text.data == NULL)
      return luaL_error(L, "out of memory");
    memcpy(c->text.data, s ? s : "", len);
    c->text.data[len] = '\0';
    c->text.len = c->text.cap = len;
    lua_pop(L, 1);
    lua_getfield(L, -1, "finish_reason");
    snprintf(c->finish_reason, sizeof c->finish_reason, "%s",
             lua_isstring(L, -1) ? lua_tostring(L, -1) : "stop");
    lua_pop(L, 1);
    lua_getfield(L, -1, "usage");
    if (lua_istable(L, -1)) {
      lua_getfield(L, -1, "input");
      lua_getfield(L, -2, "output");
      r->res->input_tokens += (long)lua_tointeger(L, -2);
      r->res->output_tokens += (long)lua_tointeger(L, -1);
      r->res->has_usage = 1;
      lua_pop(L, 2);
    }
    lua_pop(L, 2);
  }
  lua_pop(L, 1);
  return push_results(L, r);
}

static int start_sim(lua_State *L, struct llm_req *r, cJSON *body) {
  struct llm_state *st = r->rt->llm;
  if (!st->offline_notice_shown) {
    st->offline_notice_shown = 1;
    rt_log(r->rt, ML_LOG_INFO, "llm: using %s", st->cfg.source);
  }
  lua_getglobal(L, "require");
  lua_pushliteral(L, "moonloop.sim.provider");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "chat");
  lua_remove(L, -2);
  char err[256];
  if (ml_json_push(L, body, err, sizeof err) != 0) {
    cJSON_Delete(body);
    return luaL_error(L, "llm.chat: %s", err);
  }
  cJSON_Delete(body);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, r->n);
  lua_setfield(L, -2, "n");
  lua_pushstring(L, r->model);
  lua_setfield(L, -2, "model");
  lua_getfield(L, SPEC, "stream");
  if (lua_isfunction(L, -1))
    lua_setfield(L, -2, "stream");
  else
    lua_pop(L, 1);
  lua_getfield(L, SPEC, "tags");
  if (lua_istable(L, -1))
    lua_setfield(L, -2, "tags");
  else
    lua_pop(L, 1);
  lua_callk(L, 2, 1, (lua_KContext)r, sim_k);
  return sim_k(L, LUA_OK, (lua_KContext)r);
}

/* One attempt: a fresh transfer of the stored request. The key is read from the
 * environment here, attached in C and wiped from the stack buffer. */
static int send_attempt(lua_State *L, struct llm_req *r) {
  struct llm_state *st = r->rt->llm;
  if (st->budget_reached)
    return raise_error(L, r, EK_BUDGET, 0, 0, "the run's budget is used up: no new requests");
  if (r->gate && !r->gw.admitted &&
      !gate_enter(r->gate, &r->gw, r->task, r->est_tokens))
    return sched_wait(L, r->task, "llm.chat (rate limit)", req_cleanup, r, (lua_KContext)r,
                      retry_k); /* woken when admitted; retry_k sends */
  if (r->x) {
    http_xfer_free(r->x);
    r->x = NULL;
  }
  llm_response_free(r->res);
  llm_response_init(r->res, r->n, r->has_stream_fn);
  r->done = 0;
  struct http_xfer *x = http_xfer_new(r->rt->http, r->url, r->body_json, strlen(r->body_json));
  if (x == NULL)
    return luaL_error(L, "out of memory");
  r->x = x;
  x->ud = r;
  x->on_done = on_xfer_done;
  x->on_event = on_xfer_event;
  x->on_header = on_xfer_header;
  x->connect_ms = r->prov->connect_timeout_ms;
  x->total_ms = r->total_ms;
  x->idle_ms = r->prov->idle_timeout_ms;
  x->ca_file = r->prov->ca_file;
  int rc = 0;
  if (r->stream)
    rc |= http_xfer_header(x, "Accept: text/event-stream");
  if (r->role[0]) {
    char h[96];
    snprintf(h, sizeof h, "X-Moonloop-Role: %s", r->role);
    rc |= http_xfer_header(x, h);
  }
  const char *key = r->prov->api_key_env ? getenv(r->prov->api_key_env) : NULL;
  if (key && *key) {
    char auth[1024];
    if (r->prov->kind == LLM_KIND_ANTHROPIC)
      snprintf(auth, sizeof auth, "x-api-key: %s", key);
    else
      snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    rc |= http_xfer_header(x, auth);
    memset(auth, 0, sizeof auth);
  }
  if (r->prov->kind == LLM_KIND_ANTHROPIC)
    rc |= http_xfer_header(x, "anthropic-version: " ANTHROPIC_VERSION);
  if (rc != 0)
    return luaL_error(L, "out of memory");
  r->attempts++;
  if (http_xfer_start(x) != 0)
    return raise_error(L, r, EK_TRANSPORT, 0, 1, x->why);
  st->stats.sent++;
  budget_check(r->rt); /* the request that reaches the cap still goes; new ones will not */
  return sched_wait(L, r->task, "llm.chat", req_cleanup, r, (lua_KContext)r, chat_k);
}

/* A follower woke: the leader answered (use it) or failed (send our own request). */
static int follow_k(lua_State *L, int status, lua_KContext ctx) {
  struct llm_req *r = (struct llm_req *)ctx;
  (void)status;
  sched_check_cancel(L, r->task);
  struct flight *f = r->following;
  int answered = f && f->answer && answer_load(r, f->answer) == 0;
  flight_unfollow(r);
  if (answered) {
    r->rt->llm->stats.merged++;
    r->t1_ns = uv_hrtime();
    return push_results(L, r);
  }
  r->cache_key[0] = '\0'; /* on our own now: no flight, no second lookup */
  return send_attempt(L, r);
}

static int retry_k(lua_State *L, int status, lua_KContext ctx) {
  struct llm_req *r = (struct llm_req *)ctx;
  (void)status;
  sched_check_cancel(L, r->task);
  return send_attempt(L, r);
}

/* The budget is reached: stop new work and cancel what is in flight, once. The run stays
 * resumable; moonloop exits 3. */
static void budget_stop(struct ml_rt *rt, const char *why) {
  struct llm_state *st = rt->llm;
  if (st->budget_reached)
    return;
  st->budget_reached = 1;
  rt_log(rt, ML_LOG_WARN, "budget reached: %s; stopping new work and cancelling %u task(s) "
                          "(resume later with --resume and a higher budget)",
         why, rt->live_tasks);
  rt->exit_code = ML_EXIT_BUDGET;
  sched_cancel_all(rt);
}

static void budget_check(struct ml_rt *rt) {
  struct llm_state *st = rt->llm;
  char why[160];
  if (st->budget_usd > 0 && st->stats.cost_usd >= st->budget_usd) {
    snprintf(why, sizeof why, "$%.4f spent of a $%.2f budget", st->stats.cost_usd, st->budget_usd);
    budget_stop(rt, why);
  } else if (st->budget_requests > 0 && st->stats.sent >= st->budget_requests) {
    snprintf(why, sizeof why, "%llu requests sent of %llu allowed",
             (unsigned long long)st->stats.sent, (unsigned long long)st->budget_requests);
    budget_stop(rt, why);
  }
}

static int l_chat(lua_State *L) {
  struct ml_rt *rt = rt_from_lua(L);
  struct llm_state *st = rt->llm;
  luaL_checktype(L, SPEC, LUA_TTABLE);
  lua_settop(L, SPEC);
  unsigned present = 0;
  lua_pushnil(L);
  while (lua_next(L, SPEC)) {
    lua_pop(L, 1);
    int k = -1;
    if (lua_type(L, -1) == LUA_TSTRING) {
      size_t klen;
      const char *key = lua_tolstring(L, -1, &klen);
      k = spec_key_id(key, klen);
    }
    if (k < 0)
      return luaL_error(L, "llm.chat: unknown option '%s' (options: model, messages, prompt, "
                           "system, temperature, max_tokens, stop, json, schema, n, stream, "
                           "timeout_ms, attempts, seed, top_p, extra, tags, cache)",
                        luaL_tolstring(L, -1, NULL));
    present |= 1u << k;
  }
  /* A metatable may answer for keys the table does not hold: look every one up then. */
  if (lua_getmetatable(L, SPEC)) {
    lua_pop(L, 1);
    present = SPEC_ALL_KEYS;
  }
  struct ml_task *me = sched_check_waitable(L, "llm.chat");

  struct llm_req *r = lua_newuserdatauv(L, sizeof *r, 0); /* index REQ */
  memset(r, 0, sizeof *r);
  luaL_setmetatable(L, REQ_MT);
  r->rt = rt;
  r->task = me;
  r->id = ++st->next_request_id;
  r->t0_ns = uv_hrtime();
  r->spec_present = present;

  spec_field(L, r, SK_MODEL, "model");
  if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
    return luaL_error(L, "llm.chat: 'model' must be a string (a role alias like \"strong\", "
                         "\"provider/model\" or a model id)");
  const char *name = lua_tostring(L, -1);
  const char *model = NULL;
  char err[512];
  if (llm_config_resolve(&st->cfg, name, &r->prov, &model, &r->alias, err, sizeof err) != 0)
    return luaL_error(L, "llm.chat: %s", err);
  snprintf(r->model, sizeof r->model, "%s", model);
  lua_pop(L, 1);

  spec_field(L, r, SK_N, "n");
  r->n = lua_isnil(L, -1) ? 1 : (int)luaL_checkinteger(L, -1);
  lua_pop(L, 1);
  if (r->n < 1 || r->n > 128)
    return luaL_error(L, "llm.chat: n must be between 1 and 128 (got %d)", r->n);
  spec_field(L, r, SK_STREAM, "stream");
  r->stream = lua_toboolean(L, -1);
  r->has_stream_fn = lua_isfunction(L, -1);
  lua_pop(L, 1);
  spec_field(L, r, SK_JSON, "json");
  r->want_json = lua_toboolean(L, -1);
  lua_pop(L, 1);
  r->res = malloc(sizeof *r->res);
  if (r->res == NULL)
    return luaL_error(L, "out of memory");
  llm_response_init(r->res, r->n, r->has_stream_fn);
  if (st->budget_reached)
    return raise_error(L, r, EK_BUDGET, 0, 0, "the run's budget is used up: no new requests");
  st->stats.requests++;

  /* The cache and single flight: key = provider + canonical body + sample index. */
  spec_field(L, r, SK_CACHE, "cache");
  int want_cache = lua_isnil(L, -1) || lua_toboolean(L, -1);
  lua_pop(L, 1);
  int keyed = want_cache && !r->stream && st->cache_mode != CACHE_OFF;
  struct body_opts bo = body_opts_of(r);
  /* The usual request goes straight to text; the rest (and the cache key) needs a tree. */
  if (r->prov->kind == LLM_KIND_OPENAI && !keyed)
    r->body_json = body_text(L, SPEC, &bo);
  if (r->body_json == NULL) {
    cJSON *body = body_tree(L, SPEC, &bo, &r->want_json);
    if (r->prov->kind == LLM_KIND_SIM)
      return start_sim(L, r, body);
    if (r->prov->kind == LLM_KIND_ANTHROPIC) {
      char why[256];
      cJSON *messages_body = anthropic_body(body, why, sizeof why);
      cJSON_Delete(body);
      if (messages_body == NULL)
        return luaL_error(L, "llm.chat: %s (provider '%s', the Messages API)", why,
                          r->prov->name);
      body = messages_body;
    }
    if (keyed) {
      int sample = 0;
      spec_field(L, r, SK_TAGS, "tags");
      if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "sample");
        sample = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 0;
        lua_pop(L, 1);
      }
      lua_pop(L, 1);
      char why[256];
      if (cache_key(body, sample < 0 ? 0 : sample, r->prov->name, r->cache_key, why,
                    sizeof why) != 0)
        r->cache_key[0] = '\0';
    }
    if (r->cache_key[0]) {
      char *hit = NULL;
      struct llm_cache *c = cache_of(rt);
      if (c && cache_get(c, r->cache_key, &hit) == 1 && answer_load(r, hit) == 0) {
        free(hit);
        cJSON_Delete(body);
        st->stats.cache_hits++;
        r->t1_ns = uv_hrtime();
        return push_results(L, r);
      }
      free(hit);
    }
    r->body_json = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (r->body_json == NULL)
      return luaL_error(L, "out of memory");
  }
  {
    const char *path = r->prov->kind == LLM_KIND_ANTHROPIC ? "/messages" : "/chat/completions";
    size_t blen = strlen(r->prov->base_url), plen = strlen(path);
    r->url = malloc(blen + plen + 1);
    if (r->url == NULL)
      return luaL_error(L, "out of memory");
    memcpy(r->url, r->prov->base_url, blen);
    memcpy(r->url + blen, path, plen + 1);
  }
  r->total_ms = r->prov->timeout_ms;
  spec_field(L, r, SK_TIMEOUT_MS, "timeout_ms");
  if (!lua_isnil(L, -1)) {
    lua_Integer ms = luaL_checkinteger(L, -1);
    if (ms <= 0)
      return luaL_error(L, "llm.chat: timeout_ms must be positive");
    r->total_ms = (long)ms;
  }
  lua_pop(L, 1);
  /* tags.role travels as a header: servers ignore it, proxies can log it, and the mock
   * server's simulator uses it to know which role it plays. */
  spec_field(L, r, SK_TAGS, "tags");
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "role");
    size_t len = 0;
    const char *role = lua_tolstring(L, -1, &len);
    if (role && len > 0 && len < sizeof r->role &&
        strspn(role, "abcdefghijklmnopqrstuvwxyz_-0123456789") == len)
      memcpy(r->role, role, len + 1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (r->prov->api_key_env) {
    const char *key = getenv(r->prov->api_key_env);
    if (key == NULL || !*key)
      return luaL_error(L, "llm.chat: provider '%s' needs an API key in the environment "
                           "variable %s, which is not set",
                        r->prov->name, r->prov->api_key_env);
  }
  retry_policy_default(&r->policy);
  r->policy.max_attempts = r->prov->max_attempts;
  spec_field(L, r, SK_ATTEMPTS, "attempts"); /* a per-call cap, e.g. 1 for a quick probe */
  if (!lua_isnil(L, -1)) {
    lua_Integer a = luaL_checkinteger(L, -1);
    if (a < 1 || a > 100)
      return luaL_error(L, "llm.chat: attempts must be between 1 and 100");
    r->policy.max_attempts = (int)a;
  }
  lua_pop(L, 1);
  r->rng = r->t0_ns ^ (r->id * 0x9e3779b97f4a7c15ULL);
  struct limiter_config lc;
  limiter_config_default(&lc);
  lc.max_inflight = r->prov->max_inflight;
  lc.rpm = r->prov->rpm;
  lc.tpm = r->prov->tpm;
  lc.adaptive = 1;
  lc.breaker_threshold = r->prov->breaker_threshold;
  r->gate = gate_for(st->gates, r->prov->name, r->model, &lc);
  if (r->gate && gate_first_use(r->gate))
    probe_slots(rt, r->prov, r->gate);
  /* What the request may cost in tokens: the prompt (about 4 bytes a token) and the answer
   * (max_tokens, or a guess), for each choice. Corrected from the usage afterwards. */
  spec_field(L, r, SK_MAX_TOKENS, "max_tokens");
  double out_tokens = lua_isinteger(L, -1) ? (double)lua_tointeger(L, -1) : 256;
  lua_pop(L, 1);
  r->est_tokens = (double)strlen(r->body_json) / 4 + out_tokens * r->n;
  if (r->cache_key[0]) {
    struct flight *f = flight_find(st, r->cache_key);
    if (f) { /* the same request is in flight: wait for its answer */
      r->following = f;
      r->next_follower = f->followers;
      f->followers = r;
      return sched_wait(L, me, "llm.chat (an identical request in flight)", req_cleanup, r,
                        (lua_KContext)r, follow_k);
    }
    f = calloc(1, sizeof *f);
    if (f) {
      memcpy(f->key, r->cache_key, sizeof f->key);
      f->next = st->flights;
      st->flights = f;
      r->leading = f;
    }
  }
  return send_attempt(L, r);
}

static int l_stats(lua_State *L) {
  struct ml_rt *rt = rt_from_lua(L);
  const struct llm_stats *st = &rt->llm->stats;
  const struct http_stats *hs = http_engine_stats(rt->http);
  lua_createtable(L, 0, 12);
  lua_pushinteger(L, (lua_Integer)st->requests);
  lua_setfield(L, -2, "requests");
  lua_pushinteger(L, (lua_Integer)st->sent);
  lua_setfield(L, -2, "sent");
  lua_pushinteger(L, (lua_Integer)st->retries);
  lua_setfield(L, -2, "retries");
  lua_pushinteger(L, (lua_Integer)st->cache_hits);
  lua_setfield(L, -2, "cache_hits");
  lua_pushinteger(L, (lua_Integer)st->merged);
  lua_setfield(L, -2, "merged");
  lua_pushinteger(L, (lua_Integer)hs->refused_resends);
  lua_setfield(L, -2, "refused_resends");
  lua_pushinteger(L, (lua_Integer)st->ok);
  lua_setfield(L, -2, "ok");
  lua_pushinteger(L, (lua_Integer)st->errors);
  lua_setfield(L, -2, "errors");
  lua_createtable(L, 0, 7);
  for (int i = 0; i <= EK_TRANSPORT; i++) {
    lua_pushinteger(L, (lua_Integer)st->errors_by_kind[i]);
    lua_setfield(L, -2, kind_names[i]);
  }
  lua_setfield(L, -2, "errors_by_kind");
  lua_pushinteger(L, (lua_Integer)st->input_tokens);
  lua_setfield(L, -2, "input_tokens");
  lua_pushinteger(L, (lua_Integer)st->output_tokens);
  lua_setfield(L, -2, "output_tokens");
  if (st->unpriced_requests == 0) {
    lua_pushnumber(L, st->cost_usd);
    lua_setfield(L, -2, "cost_usd");
  }
  lua_pushinteger(L, (lua_Integer)hs->in_flight);
  lua_setfield(L, -2, "in_flight");
  lua_pushinteger(L, (lua_Integer)hs->in_flight_peak);
  lua_setfield(L, -2, "in_flight_peak");
  lua_pushinteger(L, (lua_Integer)hs->connections_opened);
  lua_setfield(L, -2, "connections_opened");
  lua_pushinteger(L, (lua_Integer)hs->http2_responses);
  lua_setfield(L, -2, "http2_responses");
  lua_newtable(L); /* limits["provider/model"] = what its gate knows */
  for (struct gate *g = gate_first(rt->llm->gates); g; g = gate_next(g)) {
    struct limiter_stats ls = gate_stats(g);
    static const char *const breaker[] = {"closed", "open", "half-open"};
    llm_push_limits(L, &ls, 6);
    lua_pushstring(L, breaker[ls.breaker]);
    lua_setfield(L, -2, "breaker");
    lua_pushinteger(L, (lua_Integer)ls.throttled);
    lua_setfield(L, -2, "throttled");
    lua_pushinteger(L, (lua_Integer)ls.failed);
    lua_setfield(L, -2, "failed");
    lua_pushinteger(L, (lua_Integer)ls.decreases);
    lua_setfield(L, -2, "decreases");
    lua_pushinteger(L, (lua_Integer)ls.opens);
    lua_setfield(L, -2, "breaker_opens");
    lua_setfield(L, -2, gate_name(g));
  }
  lua_setfield(L, -2, "limits");
  return 1;
}

/* llm.budget{usd = X, requests = N}: set the run's budget (the command line's
 * --budget-usd / --max-requests, over the config's budget table). */
static int l_budget(lua_State *L) {
  struct ml_rt *rt = rt_from_lua(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "usd");
  if (!lua_isnil(L, -1)) {
    lua_Number usd = luaL_checknumber(L, -1);
    luaL_argcheck(L, usd > 0, 1, "usd must be positive");
    rt->llm->budget_usd = usd;
  }
  lua_getfield(L, 1, "requests");
  if (!lua_isnil(L, -1)) {
    lua_Integer n = luaL_checkinteger(L, -1);
    luaL_argcheck(L, n > 0, 1, "requests must be positive");
    rt->llm->budget_requests = (uint64_t)n;
  }
  lua_pop(L, 2);
  budget_check(rt);
  return 0;
}

/* llm.resolve(name) -> {provider=, kind=, model=, alias=, price={input=, output=}|nil}:
 * what a role or model name maps to in the config (no keys, no URLs). */
static int l_resolve(lua_State *L) {
  struct ml_rt *rt = rt_from_lua(L);
  const char *name = luaL_optstring(L, 1, NULL);
  const struct llm_provider *p;
  const char *model;
  const struct llm_model *alias;
  char err[512];
  if (llm_config_resolve(&rt->llm->cfg, name, &p, &model, &alias, err, sizeof err) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_createtable(L, 0, 5);
  lua_pushstring(L, p->name);
  lua_setfield(L, -2, "provider");
  lua_pushstring(L, llm_kind_name(p->kind));
  lua_setfield(L, -2, "kind");
  lua_pushstring(L, model);
  lua_setfield(L, -2, "model");
  if (alias) {
    lua_pushstring(L, alias->alias);
    lua_setfield(L, -2, "alias");
    if (alias->has_price) {
      lua_createtable(L, 0, 2);
      lua_pushnumber(L, alias->price_in);
      lua_setfield(L, -2, "input");
      lua_pushnumber(L, alias->price_out);
      lua_setfield(L, -2, "output");
      lua_setfield(L, -2, "price");
    }
  }
  return 1;
}

int llm_open(lua_State *L, struct ml_rt *rt, struct llm_config *cfg) {
  int llm_limits_lua(lua_State *); /* src/llm/limits_api.c */
  static const luaL_Reg funcs[] = {{"chat", l_chat}, {"stats", l_stats}, {"resolve", l_resolve},
                                   {"budget", l_budget}, {"limits", llm_limits_lua}, {NULL, NULL}};
  rt->llm = calloc(1, sizeof *rt->llm);
  if (rt->llm == NULL)
    return -1;
  rt->llm->gates = gate_set_new(&rt->loop);
  if (rt->llm->gates == NULL)
    return -1;
  rt->llm->cfg = *cfg;
  enum cache_mode mode = CACHE_OFF;
  if (cfg->cache_path && cache_mode_parse(cfg->cache_mode, &mode) != 0)
    mode = CACHE_OFF;
  rt->llm->cache_mode = mode;
  rt->llm->budget_usd = cfg->budget_usd;
  rt->llm->budget_requests = cfg->budget_requests > 0 ? (uint64_t)cfg->budget_requests : 0;
  memset(cfg, 0, sizeof *cfg);
  luaL_newmetatable(L, REQ_MT);
  lua_pushcfunction(L, req_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  lua_setglobal(L, "llm");
  return 0;
}

void llm_close(struct ml_rt *rt) {
  if (rt->llm == NULL)
    return;
  llm_config_free(&rt->llm->cfg);
  gate_set_free(rt->llm->gates);
  cache_close(rt->llm->cache);
  free(rt->llm);
  rt->llm = NULL;
}

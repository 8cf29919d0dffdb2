/* Routing and response rendering for the mock server: which endpoint a request hits,
 * which fault and delay it gets, and the exact bytes (status line, headers, body or SSE
 * chunks) that server.c will send. */
#include "mock/server.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

/* ---- Response framing ---------------------------------------------------------- */

/* Status line and headers. content_length < 0 means a stream: chunked on HTTP/1.1, else
 * delimited by the close. */
static int put_head(struct mock_conn *c, int status, const char *ctype, long long content_length,
                    const char *extra) {
  struct mock_buf *o = &c->out;
  int rc = mock_buf_printf(o, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n", status, mreq_reason(status),
                           ctype);
  if (rc == 0 && content_length >= 0)
    rc = mock_buf_printf(o, "Content-Length: %lld\r\n", content_length);
  else if (rc == 0 && c->chunked)
    rc = mock_buf_adds(o, "Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n");
  else if (rc == 0)
    rc = mock_buf_adds(o, "Cache-Control: no-cache\r\n");
  if (rc == 0)
    rc = mock_buf_printf(o, "Connection: %s\r\nX-Mock-Seq: %llu\r\n%s",
                         c->keep_alive ? "keep-alive" : "close", (unsigned long long)c->seq,
                         extra ? extra : "");
  rc = rc ? rc : mock_rl_on_head(c, status, o); /* x-ratelimit-* under --rpm/--tpm */
  return rc ? rc : mock_buf_adds(o, "\r\n");
}

/* A whole response with a Content-Length body; head_only leaves the body out (HEAD). */
static int put_simple(struct mock_conn *c, int status, const char *ctype, const char *body,
                      size_t len, const char *extra, int head_only) {
  c->out.len = 0;
  c->status = status;
  int rc = put_head(c, status, ctype, (long long)len, extra);
  if (rc == 0 && !head_only)
    rc = mock_buf_add(&c->out, body, len);
  c->limit = c->out.len;
  c->after = AFTER_KEEP;
  c->paced = 0;
  return rc;
}

int mock_put_error(struct mock_conn *c, int status, const char *msg, const char *type,
                   const char *code, const char *extra) {
  struct mock_buf *b = &c->srv->body;
  b->len = 0;
  int rc = mock_render_error(b, msg, type, code);
  return rc ? rc : put_simple(c, status, "application/json", b->data, b->len, extra, 0);
}

int mock_put_json(struct mock_conn *c, int status, const char *body, size_t len,
                  const char *extra) {
  return put_simple(c, status, "application/json", body, len, extra, 0);
}

static int add_event_end(struct mock_conn *c) {
  if (c->nevents == c->events_cap) {
    size_t cap = c->events_cap ? c->events_cap * 2 : 32;
    size_t *p = realloc(c->events, cap * sizeof *p);
    if (p == NULL)
      return UV_ENOMEM;
    c->events = p;
    c->events_cap = cap;
  }
  c->events[c->nevents++] = c->out.len;
  return 0;
}

/* One SSE event becomes one HTTP chunk, as a streaming API server would send it. */
static int on_event(void *ud, const char *data, size_t len) {
  struct mock_conn *c = ud;
  int rc = c->chunked ? mock_buf_printf(&c->out, "%zx\r\n", len) : 0;
  rc = rc ? rc : mock_buf_add(&c->out, data, len);
  rc = rc ? rc : (c->chunked ? mock_buf_add(&c->out, "\r\n", 2) : 0);
  return rc ? rc : add_event_end(c);
}

/* The error event a server sends when it gives up mid-stream, in OpenAI's shape. */
static int openai_error_event(struct mock_buf *s, mock_event_fn fn, void *ud) {
  s->len = 0;
  int rc = mock_buf_adds(s, "data: ");
  rc = rc ? rc
          : mock_render_error(s, "The server is overloaded (mock fault).", "server_error", NULL);
  rc = rc ? rc : mock_buf_adds(s, "\n\n");
  return rc ? rc : fn(ud, s->data, s->len);
}

static int put_stream(struct mock_conn *c, const struct mock_chat *chat, enum mock_api api,
                      enum mock_fault fault) {
  struct mock_buf *scratch = &c->srv->scratch;
  c->out.len = 0;
  c->nevents = 0;
  c->status = 200;
  int rc = put_head(c, 200, "text/event-stream", -1, NULL);
  int bad = fault == MOCK_FAULT_BADSSE || fault == MOCK_FAULT_BADJSON;
  if (rc == 0)
    rc = api == MOCK_API_ANTHROPIC ? mock_render_message_stream(scratch, chat, bad, on_event, c)
                                   : mock_render_stream(scratch, chat, bad, on_event, c);
  if (rc == 0 && fault == MOCK_FAULT_SSE_ERROR) {
    /* Half the events, then an error event in place of the rest; the response itself
     * ends cleanly, as a real server's does. */
    size_t k = c->nevents / 2 ? c->nevents / 2 : 1;
    c->out.len = c->events[k - 1];
    c->nevents = k;
    rc = api == MOCK_API_ANTHROPIC ? mock_render_message_error_event(scratch, on_event, c)
                                   : openai_error_event(scratch, on_event, c);
  }
  if (rc == 0 && c->chunked) {
    rc = mock_buf_add(&c->out, "0\r\n\r\n", 5);
    c->events[c->nevents - 1] = c->out.len; /* the last chunk travels with [DONE] */
  }
  if (rc)
    return rc;
  c->limit = c->out.len;
  c->paced = c->srv->cfg.stream_interval_ms > 0;
  c->after = AFTER_KEEP;
  if (fault == MOCK_FAULT_STALL || fault == MOCK_FAULT_TRUNCATE) {
    /* Some events but never [DONE]. */
    size_t k = c->nevents / 2 ? c->nevents / 2 : 1;
    c->limit = c->events[k - 1];
    c->after = fault == MOCK_FAULT_STALL ? AFTER_STALL : AFTER_CLOSE;
  }
  if (!c->chunked && c->after == AFTER_KEEP)
    c->keep_alive = 0; /* HTTP/1.0: the close ends the stream */
  return 0;
}

static int put_completion(struct mock_conn *c, const struct mock_chat *chat, enum mock_api api,
                          enum mock_fault fault) {
  struct mock_buf *b = &c->srv->body;
  b->len = 0;
  int rc =
      api == MOCK_API_ANTHROPIC ? mock_render_message(b, chat) : mock_render_completion(b, chat);
  if (rc)
    return rc;
  if (fault == MOCK_FAULT_BADJSON || fault == MOCK_FAULT_BADSSE)
    b->len /= 2; /* an object cut in half never parses, yet the framing is exact */
  rc = put_simple(c, 200, "application/json", b->data, b->len, NULL, 0);
  if (rc)
    return rc;
  if (fault == MOCK_FAULT_STALL || fault == MOCK_FAULT_TRUNCATE) {
    c->limit = c->out.len - b->len + b->len / 2;
    c->after = fault == MOCK_FAULT_STALL ? AFTER_STALL : AFTER_CLOSE;
  }
  return 0;
}

int mock_put_answer(struct mock_conn *c, const struct mock_chat *chat, enum mock_api api,
                    enum mock_fault fault) {
  if (fault == MOCK_FAULT_SSE_ERROR && !c->stream) {
    /* What the same overload looks like to a request that is not streamed. */
    c->fault = fault;
    if (api == MOCK_API_ANTHROPIC)
      return mock_put_anthropic_error(c, 529, "overloaded_error", "Overloaded (mock fault)", NULL);
    return mock_put_error(c, 503, "The server is overloaded (mock fault).", "server_error", NULL,
                          NULL);
  }
  return c->stream ? put_stream(c, chat, api, fault) : put_completion(c, chat, api, fault);
}

/* ---- Chat completions ----------------------------------------------------------- */

/* Parse the chat request and render the answer (or the 400/500 it deserves). */
static int build_chat(struct mock_conn *c, const char *body, size_t len, const char *role,
                      size_t role_len, enum mock_fault fault) {
  struct mock_server *srv = c->srv;
  const char *bad = NULL;
  char err[1024];
  cJSON *j = cJSON_ParseWithLength(body, len);
  if (!cJSON_IsObject(j)) {
    bad = "We could not parse the JSON body of your request. (HINT: This likely means you "
          "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.)";
    goto bad_request;
  }
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
  const cJSON *messages = cJSON_GetObjectItemCaseSensitive(j, "messages");
  const cJSON *n_item = cJSON_GetObjectItemCaseSensitive(j, "n");
  const cJSON *opts = cJSON_GetObjectItemCaseSensitive(j, "stream_options");
  if (!cJSON_IsString(model)) {
    bad = "you must provide a model parameter (a string)";
    goto bad_request;
  }
  if (!cJSON_IsArray(messages)) {
    bad = "Missing required parameter: 'messages' (an array).";
    goto bad_request;
  }
  int n = 1;
  if (n_item && !cJSON_IsNull(n_item)) {
    double d = cJSON_IsNumber(n_item) ? n_item->valuedouble : 0;
    if (!(d >= 1 && d <= MOCK_MAX_CHOICES) || d != (double)(int)d) {
      bad = "Invalid 'n': expected an integer from 1 to 128.";
      goto bad_request;
    }
    n = (int)d;
  }
  c->stream = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "stream"));
  struct mock_chat chat = {
      .body_hash = c->body_hash,
      .model = model->valuestring,
      .model_len = strlen(model->valuestring),
      .choices = srv->choices,
      .n = n,
      .include_usage =
          c->stream && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(opts, "include_usage")),
      .stream_chunks = srv->cfg.stream_chunks,
  };
  if (mock_answer_chat(&srv->ans, j, n, role, role_len, srv->choices, err, sizeof err) != 0) {
    if (srv->ans.errors_reported++ < 10)
      fprintf(stderr, "mock-server: %s: %s\n", srv->ans.path, err);
    c->fault = MOCK_FAULT_NONE;
    c->stream = 0;
    cJSON_Delete(j);
    return mock_put_error(c, 500, err, "server_error", NULL, NULL);
  }
  int rc = mock_put_answer(c, &chat, MOCK_API_OPENAI, fault);
  mock_answer_release(&srv->ans);
  cJSON_Delete(j);
  return rc;

bad_request:
  cJSON_Delete(j);
  c->fault = MOCK_FAULT_NONE;
  c->stream = 0;
  return mock_put_error(c, 400, bad, "invalid_request_error", NULL, NULL);
}

int mock_draw_fault(struct mock_conn *c, const char *base, uint64_t *latency,
                    enum mock_fault *fault, char *msg, size_t msglen) {
  struct mock_server *srv = c->srv;
  const struct mreq *r = &c->req;
  const char *v;
  size_t vn;
  /* Both draws always happen, so an override does not shift later requests' outcomes. */
  *fault = mock_fault_draw(srv->cfg.fault_prob, &srv->rng);
  *latency = mock_latency_draw(&srv->cfg.latency, &srv->rng);
  if (mreq_header(r, base, "x-mock-fault", &v, &vn)) {
    int f = mock_fault_parse(v, vn);
    if (f < 0) {
      snprintf(msg, msglen,
               "X-Mock-Fault: unknown fault '%.*s'; expected none, 429, 500, 503, 529, reset, "
               "stall, truncate, badjson, badsse or sse_error",
               (int)(vn > 40 ? 40 : vn), v);
      *latency = 0;
      return -1;
    }
    *fault = (enum mock_fault)f;
  }
  if (mreq_header(r, base, "x-mock-latency", &v, &vn)) {
    uint64_t ms = 0;
    size_t i = 0;
    for (; i < vn && v[i] >= '0' && v[i] <= '9' && ms <= 3600000; i++)
      ms = ms * 10 + (uint64_t)(v[i] - '0');
    if (vn == 0 || i != vn || ms > 3600000) {
      snprintf(msg, msglen, "X-Mock-Latency: expected milliseconds from 0 to 3600000");
      *latency = 0;
      return -1;
    }
    *latency = ms;
  }
  c->fault = *fault;
  return 0;
}

static int handle_chat(struct mock_conn *c, const char *base, uint64_t *latency) {
  struct mock_server *srv = c->srv;
  const struct mreq *r = &c->req;
  char extra[256], msg[256];
  const char *v;
  size_t vn;
  enum mock_fault fault;
  if (mock_draw_fault(c, base, latency, &fault, msg, sizeof msg) != 0)
    return mock_put_error(c, 400, msg, "invalid_request_error", NULL, NULL);
  switch (fault) {
  case MOCK_FAULT_429:
    /* Only Retry-After: an injected 429 is a random refusal, not a limit the server
     * enforces, so it must not advertise one (a client that learns "60 per minute" from it
     * would crawl for the rest of its run). --rpm/--tpm send the real x-ratelimit-*. */
    snprintf(extra, sizeof extra, "Retry-After: %d\r\n", srv->cfg.retry_after);
    return mock_put_error(c, 429,
                          "Rate limit reached for requests (mock fault). Please try again "
                          "later.",
                          "requests", "rate_limit_exceeded", extra);
  case MOCK_FAULT_500:
    return mock_put_error(c, 500,
                          "The server had an error while processing your request (mock "
                          "fault).",
                          "server_error", NULL, NULL);
  case MOCK_FAULT_503:
    return mock_put_error(c, 503,
                          "The engine is currently overloaded, please try again later "
                          "(mock fault).",
                          "server_error", NULL, NULL);
  case MOCK_FAULT_529:
    return mock_put_error(c, 529, "The server is overloaded (mock fault).", "server_error", NULL,
                          NULL);
  case MOCK_FAULT_RESET:
    c->out.len = c->limit = 0;
    c->after = AFTER_RESET;
    return 0;
  default:
    /* The simulator plays the role the client names (llm.chat sends tags.role). */
    if (!mreq_header(r, base, "x-moonloop-role", &v, &vn)) {
      v = NULL;
      vn = 0;
    }
    return build_chat(c, base + r->body.off, r->body.len, v, vn, fault);
  }
}

static const char MODELS[] =
    "{\"object\":\"list\",\"data\":["
    "{\"id\":\"mock-model\",\"object\":\"model\",\"created\":1700000000,\"owned_by\":\"moonloop\"},"
    "{\"id\":\"mock-weak\",\"object\":\"model\",\"created\":1700000000,\"owned_by\":\"moonloop\"},"
    "{\"id\":\"mock-strong\",\"object\":\"model\",\"created\":1700000000,\"owned_by\":\"moonloop\"}"
    "]}";

/* ---- Routing ------------------------------------------------------------------- */

int mock_route(struct mock_conn *c, const char *base, uint64_t *latency) {
  const struct mreq *r = &c->req;
  *latency = 0;
  const char *m = base + r->method.off, *p = base + r->target.off;
  size_t mlen = r->method.len, plen = r->target.len;
  const char *q = memchr(p, '?', plen);
  if (q)
    plen = (size_t)(q - p);
#define IS(s, n, lit) ((n) == sizeof(lit) - 1 && memcmp((s), (lit), (n)) == 0)
  int get = IS(m, mlen, "GET"), head = IS(m, mlen, "HEAD"), post = IS(m, mlen, "POST");
  int rc;
  if (IS(p, plen, "/health")) {
    rc = (get || head) ? put_simple(c, 200, "text/plain", "ok", 2, NULL, head)
                       : mock_put_error(c, 405, "Use GET /health.", "invalid_request_error", NULL,
                                        "Allow: GET, HEAD\r\n");
  } else if (IS(p, plen, "/v1/models")) {
    rc = (get || head)
             ? put_simple(c, 200, "application/json", MODELS, sizeof MODELS - 1, NULL, head)
             : mock_put_error(c, 405, "Use GET /v1/models.", "invalid_request_error", NULL,
                              "Allow: GET, HEAD\r\n");
  } else if (IS(p, plen, "/props") && c->srv->cfg.slots > 0) {
    char props[96];
    int n = snprintf(props, sizeof props, "{\"total_slots\":%d}", c->srv->cfg.slots);
    rc = get ? put_simple(c, 200, "application/json", props, (size_t)n, NULL, 0)
             : mock_put_error(c, 405, "Use GET /props.", "invalid_request_error", NULL,
                              "Allow: GET\r\n");
  } else if (IS(p, plen, "/stats")) {
    rc = get ? mock_rl_stats(c)
             : mock_put_error(c, 405, "Use GET /stats.", "invalid_request_error", NULL,
                              "Allow: GET\r\n");
  } else if (IS(p, plen, "/v1/messages") || IS(p, plen, "/messages")) {
    rc = post ? mock_handle_messages(c, base, latency)
              : mock_put_anthropic_error(c, 405, "invalid_request_error", "Use POST for messages.",
                                         "Allow: POST\r\n");
  } else if (IS(p, plen, "/v1/chat/completions") || IS(p, plen, "/chat/completions")) {
    if (!post)
      rc = mock_put_error(c, 405, "Use POST for chat completions.", "invalid_request_error", NULL,
                          "Allow: POST\r\n");
    else if ((rc = mock_rl_admit(c, base, MOCK_API_OPENAI)) == 0)
      rc = handle_chat(c, base, latency);
    else if (rc == MOCK_RL_THROTTLED)
      rc = 0; /* the 429 is rendered, and answered at once */
  } else {
    char msg[400];
    snprintf(msg, sizeof msg, "Unknown request URL: %s %s. Please check the URL for typos.",
             c->method, c->path);
    rc = mock_put_error(c, 404, msg, "invalid_request_error", "unknown_url", NULL);
  }
#undef IS
  return rc;
}

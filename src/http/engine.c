/* libcurl multi-socket + libuv glue, transfers and their deadlines.
 *
 * Rules this file keeps (runtime-anchors section 1.3):
 *  - never call into libcurl's multi API from inside a libcurl callback; completions are
 *    delivered from drain_done(), which runs after curl_multi_socket_action returns;
 *  - drain curl_multi_info_read after every socket_action, whatever `running` says;
 *  - a poll handle is closed inside CURL_POLL_REMOVE, before libcurl closes the fd;
 *  - a zero timeout from libcurl is served from the check phase, not by re-arming a timer
 *    inside a timer callback (libuv 1.44 would run it again in the same phase);
 *  - every transfer has its own timer for the total and idle deadlines, so a stalled
 *    server cannot keep a task waiting forever, even when it is the last transfer. */
#include "http/engine.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define POOL_MAX 4096

struct sock_ctx {
  uv_poll_t poll; /* first member: the handle's address is the context's */
  curl_socket_t fd;
  struct http_engine *eng;
};

struct http_engine {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  uv_check_t kick_check;
  uv_idle_t kick_idle;
  int kick_pending;
  CURL *pool[POOL_MAX];
  int npool;
  struct http_stats stats;
  int closing;
  int verbose; /* MOONLOOP_CURL_VERBOSE=1: libcurl's own trace on stderr, for debugging */
};

static void drain_done(struct http_engine *eng);
static void xfer_finish(struct http_xfer *x, enum http_err err, CURLcode result);

/* ---------------------------------------------------------------------------------- */
/* Socket and timer glue */

static void socket_action(struct http_engine *eng, curl_socket_t fd, int flags) {
  int running = 0;
  curl_multi_socket_action(eng->multi, fd, flags, &running);
  drain_done(eng);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  struct sock_ctx *ctx = (struct sock_ctx *)h;
  int flags = 0;
  if (status < 0)
    flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE)
    flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE)
    flags |= CURL_CSELECT_OUT;
  socket_action(ctx->eng, ctx->fd, flags);
}

static void sock_closed(uv_handle_t *h) {
  free(h);
}

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
  struct http_engine *eng = userp;
  struct sock_ctx *ctx = socketp;
  (void)easy;
  if (what == CURL_POLL_REMOVE) {
    if (ctx) {
      /* uv_close removes the fd from epoll now; libcurl may close and reuse it next. */
      uv_close((uv_handle_t *)&ctx->poll, sock_closed);
      curl_multi_assign(eng->multi, s, NULL);
    }
    return 0;
  }
  if (ctx == NULL) {
    ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL)
      return -1;
    if (uv_poll_init_socket(eng->loop, &ctx->poll, s) != 0) {
      free(ctx);
      return -1;
    }
    ctx->fd = s;
    ctx->eng = eng;
    /* Idle keep-alive connections must not keep the loop (and the process) alive; the
     * transfers' own timers do that while requests are in flight. */
    uv_unref((uv_handle_t *)&ctx->poll);
    curl_multi_assign(eng->multi, s, ctx);
  }
  int events = 0;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
    events |= UV_READABLE;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
    events |= UV_WRITABLE;
  uv_poll_start(&ctx->poll, events, on_poll);
  return 0;
}

static void on_timer(uv_timer_t *t) {
  struct http_engine *eng = t->data;
  socket_action(eng, CURL_SOCKET_TIMEOUT, 0);
}

/* An active idle handle keeps the poll phase from blocking; libuv requires a callback. */
static void on_kick_idle(uv_idle_t *h) {
  (void)h;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
  struct http_engine *eng = userp;
  (void)multi;
  if (timeout_ms < 0) {
    uv_timer_stop(&eng->timer);
  } else if (timeout_ms == 0) {
    uv_timer_stop(&eng->timer);
    eng->kick_pending = 1;
    if (!uv_is_active((uv_handle_t *)&eng->kick_idle))
      uv_idle_start(&eng->kick_idle, on_kick_idle);
  } else {
    uv_timer_start(&eng->timer, on_timer, (uint64_t)timeout_ms, 0);
  }
  return 0;
}

static void on_kick(uv_check_t *c) {
  struct http_engine *eng = c->data;
  if (!eng->kick_pending)
    return;
  eng->kick_pending = 0;
  uv_idle_stop(&eng->kick_idle);
  socket_action(eng, CURL_SOCKET_TIMEOUT, 0);
}

/* ---------------------------------------------------------------------------------- */
/* Engine */

int http_engine_new(struct http_engine **out, uv_loop_t *loop, char *err, size_t errlen) {
  struct http_engine *eng = calloc(1, sizeof *eng);
  if (eng == NULL) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  eng->loop = loop;
  const char *v = getenv("MOONLOOP_CURL_VERBOSE");
  eng->verbose = v != NULL && v[0] == '1';
  eng->multi = curl_multi_init();
  if (eng->multi == NULL) {
    snprintf(err, errlen, "curl_multi_init failed");
    free(eng);
    return -1;
  }
  curl_multi_setopt(eng->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(eng->multi, CURLMOPT_SOCKETDATA, eng);
  curl_multi_setopt(eng->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(eng->multi, CURLMOPT_TIMERDATA, eng);
  curl_multi_setopt(eng->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  /* The connection cache must hold every connection thousands of in-flight requests
   * open, or finished ones are closed instead of reused. */
  curl_multi_setopt(eng->multi, CURLMOPT_MAXCONNECTS, 20000L);

  uv_timer_init(loop, &eng->timer);
  eng->timer.data = eng;
  uv_unref((uv_handle_t *)&eng->timer);
  uv_check_init(loop, &eng->kick_check);
  eng->kick_check.data = eng;
  uv_check_start(&eng->kick_check, on_kick);
  uv_unref((uv_handle_t *)&eng->kick_check);
  uv_idle_init(loop, &eng->kick_idle);
  uv_unref((uv_handle_t *)&eng->kick_idle);
  *out = eng;
  return 0;
}

static void engine_handle_closed(uv_handle_t *h) {
  (void)h;
}

void http_engine_free(struct http_engine *eng) {
  if (eng == NULL)
    return;
  eng->closing = 1;
  /* curl_multi_cleanup may call the socket callback for cached connections. */
  curl_multi_cleanup(eng->multi);
  for (int i = 0; i < eng->npool; i++)
    curl_easy_cleanup(eng->pool[i]);
  uv_close((uv_handle_t *)&eng->timer, engine_handle_closed);
  uv_close((uv_handle_t *)&eng->kick_check, engine_handle_closed);
  uv_close((uv_handle_t *)&eng->kick_idle, engine_handle_closed);
  /* The struct is freed by the caller after the loop has run the close callbacks. */
}

void http_engine_release(struct http_engine *eng) {
  free(eng);
}

const struct http_stats *http_engine_stats(const struct http_engine *eng) {
  return &eng->stats;
}

/* ---------------------------------------------------------------------------------- */
/* Transfer callbacks (libcurl context: C buffers and timers only) */

static int buf_append(struct http_buf *b, const char *p, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *d = realloc(b->data, cap);
    if (d == NULL)
      return -1;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

static int sse_trampoline(void *ud, const struct sse_event *ev) {
  struct http_xfer *x = ud;
  return x->on_event ? x->on_event(x, ev) : 0;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud) {
  struct http_xfer *x = ud;
  size_t n = size * nmemb;
  x->bytes_in += n;
  x->t_last_byte_ms = uv_now(x->eng->loop);
  if (x->is_sse) {
    int rc = sse_feed(&x->sse, p, n);
    if (rc == SSE_EABORT) {
      x->err = HTTP_EABORTED;
      return CURL_WRITEFUNC_ERROR;
    }
    if (rc != SSE_OK) {
      x->err = HTTP_ESSE;
      snprintf(x->why, sizeof x->why, "event stream rejected: %s", sse_strerror(rc));
      return CURL_WRITEFUNC_ERROR;
    }
    return n;
  }
  if (x->max_body && x->resp.len + n > x->max_body) {
    x->err = HTTP_ETOOBIG;
    snprintf(x->why, sizeof x->why, "response larger than the %zu-byte limit",
             x->max_body);
    return CURL_WRITEFUNC_ERROR;
  }
  if (buf_append(&x->resp, p, n) != 0)
    return CURL_WRITEFUNC_ERROR;
  return n;
}

/* Copy a header's value (trimmed) into dst if the line is "name: value". */
static int header_value(const char *line, size_t len, const char *name, char *dst,
                        size_t dstlen) {
  size_t nl = strlen(name);
  if (len <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
    return 0;
  const char *v = line + nl + 1;
  const char *end = line + len;
  while (v < end && (*v == ' ' || *v == '\t'))
    v++;
  while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
    end--;
  size_t n = (size_t)(end - v);
  if (n >= dstlen)
    n = dstlen - 1;
  memcpy(dst, v, n);
  dst[n] = '\0';
  return 1;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud) {
  struct http_xfer *x = ud;
  size_t n = size * nmemb;
  x->t_last_byte_ms = uv_now(x->eng->loop);
  if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
    /* A new status line (a 100 Continue or a retry resets what came before). */
    const char *sp = memchr(p, ' ', n);
    x->status = sp ? strtol(sp + 1, NULL, 10) : 0;
    x->content_type[0] = x->retry_after[0] = x->retry_after_ms[0] = x->request_id[0] = '\0';
    return n;
  }
  if (header_value(p, n, "content-type", x->content_type, sizeof x->content_type))
    return n;
  if (header_value(p, n, "retry-after", x->retry_after, sizeof x->retry_after))
    return n;
  if (header_value(p, n, "retry-after-ms", x->retry_after_ms, sizeof x->retry_after_ms))
    return n;
  if (header_value(p, n, "x-request-id", x->request_id, sizeof x->request_id) ||
      header_value(p, n, "request-id", x->request_id, sizeof x->request_id))
    return n;
  if (x->on_header) {
    const char *colon = memchr(p, ':', n);
    if (colon) {
      const char *v = colon + 1, *end = p + n;
      while (v < end && (*v == ' ' || *v == '\t'))
        v++;
      while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
      x->on_header(x, p, (size_t)(colon - p), v, (size_t)(end - v));
    }
  }
  if (n <= 2 && (p[0] == '\r' || p[0] == '\n')) {
    /* End of headers: choose the body parser from what the server said. */
    x->is_sse = x->status >= 200 && x->status < 300 &&
                strncasecmp(x->content_type, "text/event-stream", 17) == 0;
  }
  return n;
}

/* The request body is handed to libcurl through a read callback (not POSTFIELDS) so that
 * a rewind is visible: libcurl rewinds to send the same request again when a reused
 * connection turns out dead before any byte of the answer. Such a silent re-send would be
 * billed by the server without the engine knowing, so it is refused; the transfer fails
 * with HTTP_ESTALE and the request layer retries it as a counted, journaled attempt. */
static size_t on_read(char *buf, size_t size, size_t nitems, void *ud) {
  struct http_xfer *x = ud;
  size_t room = size * nitems;
  size_t left = x->body_len - x->body_sent;
  size_t n = left < room ? left : room;
  memcpy(buf, x->body + x->body_sent, n);
  x->body_sent += n;
  return n;
}

static int on_seek(void *ud, curl_off_t offset, int origin) {
  struct http_xfer *x = ud;
  if (origin == SEEK_SET && offset == 0 && x->body_sent == 0)
    return CURL_SEEKFUNC_OK; /* nothing sent yet: not a re-send */
  x->rewinds++;
  x->eng->stats.refused_resends++;
  return CURL_SEEKFUNC_FAIL;
}

/* ---------------------------------------------------------------------------------- */
/* Deadlines */

static void arm_timer(struct http_xfer *x);

static void on_xfer_timer(uv_timer_t *t) {
  struct http_xfer *x = t->data;
  if (!x->active)
    return;
  uint64_t now = uv_now(x->eng->loop);
  if (x->total_ms > 0 && now >= x->t_start_ms + (uint64_t)x->total_ms) {
    snprintf(x->why, sizeof x->why, "no complete response within %ld ms", x->total_ms);
    curl_multi_remove_handle(x->eng->multi, x->easy);
    xfer_finish(x, HTTP_ETIMEOUT, CURLE_OPERATION_TIMEDOUT);
    if (x->on_done)
      x->on_done(x);
    return;
  }
  if (x->idle_ms > 0 && now >= x->t_last_byte_ms + (uint64_t)x->idle_ms) {
    snprintf(x->why, sizeof x->why, "no data from the server for %ld ms", x->idle_ms);
    curl_multi_remove_handle(x->eng->multi, x->easy);
    xfer_finish(x, HTTP_EIDLE, CURLE_OPERATION_TIMEDOUT);
    if (x->on_done)
      x->on_done(x);
    return;
  }
  arm_timer(x);
}

/* The write callback only records the time of the last byte; the timer re-arms itself
 * for the earliest deadline when it fires, which is cheaper than re-arming per chunk. */
static void arm_timer(struct http_xfer *x) {
  uint64_t now = uv_now(x->eng->loop);
  uint64_t due = UINT64_MAX;
  if (x->total_ms > 0)
    due = x->t_start_ms + (uint64_t)x->total_ms;
  if (x->idle_ms > 0 && x->t_last_byte_ms + (uint64_t)x->idle_ms < due)
    due = x->t_last_byte_ms + (uint64_t)x->idle_ms;
  if (due == UINT64_MAX) {
    /* No deadline configured: still hold a timer so the loop stays alive. */
    due = now + 3600 * 1000;
  }
  uv_timer_start(&x->timer, on_xfer_timer, due > now ? due - now : 0, 0);
}

/* ---------------------------------------------------------------------------------- */
/* Transfers */

struct http_xfer *http_xfer_new(struct http_engine *eng, const char *url, const char *body,
                                size_t body_len) {
  struct http_xfer *x = calloc(1, sizeof *x);
  if (x == NULL)
    return NULL;
  x->eng = eng;
  x->easy = eng->npool > 0 ? eng->pool[--eng->npool] : curl_easy_init();
  if (x->easy == NULL)
    goto fail;
  x->body = malloc(body_len + 1);
  if (x->body == NULL)
    goto fail;
  if (body_len > 0)
    memcpy(x->body, body, body_len);
  x->body[body_len] = '\0';
  x->body_len = body_len;
  x->connect_ms = 10000;
  x->total_ms = 600000;
  x->idle_ms = 120000;
  x->max_body = 32u << 20;
  uv_timer_init(eng->loop, &x->timer);
  x->timer.data = x;

  CURL *e = x->easy;
  curl_easy_setopt(e, CURLOPT_URL, url);
  if (body == NULL) {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L); /* a probe such as llama.cpp's GET /props */
  } else {
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(e, CURLOPT_READDATA, x);
    curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt(e, CURLOPT_SEEKDATA, x);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
  }
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(e, CURLOPT_PRIVATE, x);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  if (eng->verbose)
    curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
  if (strncmp(url, "https:", 6) == 0) {
    /* Wait for a connection being set up so HTTP/2 can multiplex instead of opening one
     * connection per request. */
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  }
  x->headers = curl_slist_append(NULL, "Content-Type: application/json");
  x->headers = curl_slist_append(x->headers, "Expect:"); /* no 100-continue round trip */
  if (x->headers == NULL)
    goto fail;
  return x;
fail:
  if (x->easy)
    curl_easy_cleanup(x->easy);
  free(x->body);
  free(x);
  return NULL;
}

int http_xfer_header(struct http_xfer *x, const char *header) {
  struct curl_slist *l = curl_slist_append(x->headers, header);
  if (l == NULL)
    return -1;
  x->headers = l;
  return 0;
}

int http_xfer_start(struct http_xfer *x) {
  struct http_engine *eng = x->eng;
  sse_init(&x->sse, sse_trampoline, x);
  curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers);
  if (x->connect_ms > 0)
    curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS, x->connect_ms);
  if (x->ca_file)
    curl_easy_setopt(x->easy, CURLOPT_CAINFO, x->ca_file);
  x->t_start_ms = x->t_last_byte_ms = uv_now(eng->loop);
  x->active = 1;
  CURLMcode mc = curl_multi_add_handle(eng->multi, x->easy);
  if (mc != CURLM_OK) {
    x->active = 0;
    snprintf(x->why, sizeof x->why, "curl_multi_add_handle: %s", curl_multi_strerror(mc));
    return -1;
  }
  arm_timer(x);
  eng->stats.started++;
  eng->stats.in_flight++;
  if (eng->stats.in_flight > eng->stats.in_flight_peak)
    eng->stats.in_flight_peak = eng->stats.in_flight;
  return 0;
}

static void xfer_finish(struct http_xfer *x, enum http_err err, CURLcode result) {
  struct http_engine *eng = x->eng;
  x->active = 0;
  x->t_end_ms = uv_now(eng->loop);
  uv_timer_stop(&x->timer);
  if (x->err == HTTP_OK)
    x->err = err;
  x->result = result;
  if (x->err == HTTP_OK && result != CURLE_OK) {
    if (result == CURLE_SEND_FAIL_REWIND || (x->rewinds > 0 && x->bytes_in == 0))
      x->err = HTTP_ESTALE;
    else
      x->err = result == CURLE_OPERATION_TIMEDOUT ? HTTP_ECONNECT_TIMEOUT : HTTP_ETRANSPORT;
  }
  long reused = 0;
  curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &reused);
  x->reused_connection = reused == 0;
  if (reused > 0)
    eng->stats.connections_opened += (uint64_t)reused;
  long version = 0;
  curl_easy_getinfo(x->easy, CURLINFO_HTTP_VERSION, &version);
  if (version == CURL_HTTP_VERSION_2_0)
    eng->stats.http2_responses++;
  eng->stats.in_flight--;
  eng->stats.bytes_in += x->bytes_in;
  if (x->err == HTTP_OK)
    eng->stats.completed++;
  else if (x->err == HTTP_ECANCELLED)
    eng->stats.cancelled++;
  else {
    eng->stats.failed++;
    if (x->err == HTTP_ETIMEOUT || x->err == HTTP_EIDLE || x->err == HTTP_ECONNECT_TIMEOUT)
      eng->stats.timeouts++;
  }
}

static void drain_done(struct http_engine *eng) {
  CURLMsg *msg;
  int pending;
  while ((msg = curl_multi_info_read(eng->multi, &pending)) != NULL) {
    if (msg->msg != CURLMSG_DONE)
      continue;
    CURL *easy = msg->easy_handle;
    CURLcode result = msg->data.result; /* msg is invalid after remove_handle */
    struct http_xfer *x = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    curl_multi_remove_handle(eng->multi, easy);
    if (x == NULL || !x->active)
      continue;
    if (result == CURLE_OK && x->status == 0) {
      long code = 0;
      curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
      x->status = code;
    }
    xfer_finish(x, HTTP_OK, result);
    if (x->on_done)
      x->on_done(x);
  }
}

void http_xfer_cancel(struct http_xfer *x) {
  if (!x->active)
    return;
  curl_multi_remove_handle(x->eng->multi, x->easy);
  xfer_finish(x, HTTP_ECANCELLED, CURLE_ABORTED_BY_CALLBACK);
}

static void xfer_closed(uv_handle_t *h) {
  free(h->data);
}

void http_xfer_free(struct http_xfer *x) {
  if (x == NULL)
    return;
  http_xfer_cancel(x);
  struct http_engine *eng = x->eng;
  if (x->easy) {
    if (!eng->closing && eng->npool < POOL_MAX) {
      curl_easy_reset(x->easy);
      eng->pool[eng->npool++] = x->easy;
    } else {
      curl_easy_cleanup(x->easy);
    }
    x->easy = NULL;
  }
  curl_slist_free_all(x->headers);
  free(x->body);
  free(x->resp.data);
  sse_free(&x->sse);
  x->closing = 1;
  uv_close((uv_handle_t *)&x->timer, xfer_closed);
}

const char *http_xfer_strerror(const struct http_xfer *x) {
  switch (x->err) {
  case HTTP_OK: return "ok";
  case HTTP_ETIMEOUT:
  case HTTP_EIDLE:
  case HTTP_ETOOBIG:
  case HTTP_ESSE:
    return x->why;
  case HTTP_EABORTED: return x->why[0] ? x->why : "stream aborted";
  case HTTP_ECANCELLED: return "cancelled";
  case HTTP_ESTALE:
    return "a kept-alive connection was closed by the server before it answered";
  case HTTP_ECONNECT_TIMEOUT:
  case HTTP_ETRANSPORT:
    break;
  }
  switch (x->result) {
  case CURLE_COULDNT_CONNECT: return "could not connect to the server (is it running?)";
  case CURLE_COULDNT_RESOLVE_HOST: return "could not resolve the server's host name";
  case CURLE_RECV_ERROR: return "connection reset while reading the response";
  case CURLE_SEND_ERROR: return "connection reset while sending the request";
  case CURLE_GOT_NOTHING: return "the server closed the connection without answering";
  case CURLE_PARTIAL_FILE: return "the response was cut short (fewer bytes than announced)";
  case CURLE_OPERATION_TIMEDOUT: return "timed out connecting to the server";
  default: break;
  }
  return x->errbuf[0] ? x->errbuf : curl_easy_strerror(x->result);
}

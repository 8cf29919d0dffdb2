/* libcurl multi-socket + libuv glue, transfers and their deadlines.
 *
 * Rules this file keeps (runtime-anchors section 1.3):
 *  - never call into libcurl's multi API from inside a libcurl callback; completions are
 *    delivered from drain_done(), which runs after curl_multi_socket_action returns;
 *  - drain curl_multi_info_read after every socket_action, whatever `running` says;
 *  - libcurl's sockets sit in an epoll set of the engine's own, which the loop polls as one
 *    descriptor; events are matched to sockets by descriptor and generation, so an event
 *    for a socket closed earlier in the same batch is dropped, not given to its successor;
 *  - a zero timeout from libcurl is served from the check phase, not by re-arming a timer
 *    inside a timer callback (libuv 1.44 would run it again in the same phase);
 *  - every transfer has its own timer for the total and idle deadlines, so a stalled
 *    server cannot keep a task waiting forever, even when it is the last transfer.
 *
 * What it does for speed (tests/bench/README.md has the measurements):
 *  - the request body goes out with the headers in one send (CURLOPT_POSTFIELDS), not
 *    through a read callback that libcurl calls after sending the headers;
 *  - finished transfers are kept with their easy handle still configured, their timer
 *    initialised and their buffers allocated, so a new one costs a few setopts;
 *  - transfers are spread over several multi handles once one holds SHARD_FILL of them:
 *    libcurl 7.88 walks a host's whole connection list to find a free connection for
 *    each new transfer, which at thousands of connections costs more than the request;
 *  - a new connection costs two epoll_ctl calls (watch for writable, then readable) and
 *    closing it none. With a libuv poll handle per socket it cost seven system calls
 *    (uv_poll_init's probe adds and removes the descriptor and sets it non-blocking again,
 *    and every uv_poll_start removes it before adding it back) and an eighth at close. */
#include "http/engine.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <unistd.h>

#if LIBCURL_VERSION_NUM < 0x075000
#error "moonloop needs libcurl 7.80 or newer (CURLOPT_PREREQFUNCTION)"
#endif

/* Finished transfers kept for reuse: as many as were ever in flight at once, up to this.
 * (A cap below the in-flight count would destroy and re-create the excess every wave:
 * at 10,000 in flight, 6,000 curl_easy_init and setopt rounds a second.) */
#define POOL_MAX 65536
/* Transfers per multi handle before another one is opened, and the most handles. */
#define SHARD_FILL 128
#define SHARD_MAX 128
/* Idle connections one multi handle keeps (its share of thousands in flight fits). */
#define SHARD_MAXCONNECTS 1024L
/* Shards whose zero timeout one loop turn serves (SHARD_FILL transfers each at most). */
#define KICK_BUDGET 2
/* Buffers that grew past these are released when a transfer goes back to the pool. */
#define KEEP_RESP_CAP ((size_t)16 << 10)
#define KEEP_BODY_CAP ((size_t)64 << 10)
#define KEEP_HEADER_CAP ((size_t)4 << 10)
#define RESP_MIN_CAP ((size_t)1024)
/* Socket events taken from the engine's epoll set per loop turn; more wait for the next. */
#define EVENT_BATCH 256

struct http_shard {
  struct http_engine *eng;
  CURLM *multi;
  uv_timer_t timer;
  unsigned in_flight;
  int kick_pending;
};

/* A socket libcurl has shown us. It lives until libcurl closes the socket (through
 * on_close_socket), not just while a transfer uses it: an idle kept-alive connection stays
 * in the epoll set waiting for readability, what the next transfer on it waits for, so
 * reusing it costs no epoll_ctl. */
struct sock_ctx {
  curl_socket_t fd;
  uint32_t gen;             /* tells this socket from an earlier one with the same number */
  struct http_shard *shard; /* the multi handle watching it; NULL while it idles in a pool */
  uint32_t events;          /* EPOLLIN | EPOLLOUT it is registered for (0: not in the set) */
};

struct http_engine {
  uv_loop_t *loop;
  struct http_shard *shards[SHARD_MAX];
  int nshards;
  int kicks;     /* shards with a zero timeout to serve from the check phase */
  int kick_next; /* the shard the next check phase looks at first */
  uv_check_t kick_check;
  uv_idle_t kick_idle;
  struct http_xfer **pool; /* finished transfers, ready for reuse */
  int npool, pool_cap;
  struct sock_ctx **socks; /* by descriptor: the sockets libcurl has open */
  size_t nsocks;
  uint32_t sock_gen;
  int epfd;          /* the epoll set of every socket libcurl wants watched */
  uv_poll_t ep_poll; /* the loop's watch on epfd */
  struct http_stats stats;
  int closing;
  int verbose;  /* MOONLOOP_CURL_VERBOSE=1: libcurl's own trace on stderr, for debugging */
  int no_proxy; /* no proxy variable is set: tell libcurl so instead of it asking per transfer */
};

static void drain_done(struct http_shard *sh);
static void xfer_finish(struct http_xfer *x, enum http_err err, CURLcode result);

/* ---------------------------------------------------------------------------------- */
/* Socket and timer glue */

static void socket_action(struct http_shard *sh, curl_socket_t fd, int flags) {
  int running = 0;
  curl_multi_socket_action(sh->multi, fd, flags, &running);
  drain_done(sh);
}

/* Registers ctx for events (EPOLLIN, EPOLLOUT; 0 takes it out of the set), changing the
 * set only when they change. Returns 0, or -1 when epoll_ctl refuses. */
static int sock_watch(struct http_engine *eng, struct sock_ctx *ctx, uint32_t events) {
  if (events == ctx->events)
    return 0;
  struct epoll_event ev = {.events = events,
                           .data.u64 = (uint64_t)ctx->gen << 32 | (uint32_t)ctx->fd};
  int op = events == 0 ? EPOLL_CTL_DEL : ctx->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
  if (epoll_ctl(eng->epfd, op, ctx->fd, &ev) != 0)
    return -1;
  ctx->events = events;
  return 0;
}

static struct sock_ctx *sock_find(const struct http_engine *eng, curl_socket_t s) {
  return s >= 0 && (size_t)s < eng->nsocks ? eng->socks[s] : NULL;
}

/* The engine's epoll set has events: hand up to EVENT_BATCH of them to libcurl. The loop
 * polls the set level-triggered, so what is left comes back next turn. */
static void on_sockets_ready(uv_poll_t *h, int status, int events) {
  struct http_engine *eng = h->data;
  (void)status;
  (void)events;
  struct epoll_event ev[EVENT_BATCH];
  int n = epoll_wait(eng->epfd, ev, EVENT_BATCH, 0);
  for (int i = 0; i < n; i++) {
    curl_socket_t fd = (curl_socket_t)(uint32_t)ev[i].data.u64;
    struct sock_ctx *ctx = sock_find(eng, fd);
    /* Closed, replaced or taken out of the set by an earlier event of this batch. */
    if (ctx == NULL || ctx->gen != (uint32_t)(ev[i].data.u64 >> 32) || ctx->events == 0)
      continue;
    if (ctx->shard == NULL) {
      /* An idle connection became readable: the server closed it or sent something
       * unasked. libcurl finds out when it next picks the connection; until then, stop
       * watching, or the loop would spin on it. */
      sock_watch(eng, ctx, 0);
      continue;
    }
    /* A hang-up or an error wakes whatever the socket waits for, so libcurl reads the end
     * of the stream or the error from the socket itself. */
    uint32_t e = ev[i].events;
    uint32_t woke = e & (EPOLLERR | EPOLLHUP) ? ctx->events : e & ctx->events;
    int flags = e & EPOLLERR ? CURL_CSELECT_ERR : 0;
    if (woke & EPOLLIN)
      flags |= CURL_CSELECT_IN;
    if (woke & EPOLLOUT)
      flags |= CURL_CSELECT_OUT;
    socket_action(ctx->shard, fd, flags);
  }
}

static struct sock_ctx *sock_new(struct http_engine *eng, curl_socket_t s) {
  if (s < 0)
    return NULL;
  if ((size_t)s >= eng->nsocks) {
    size_t n = eng->nsocks ? eng->nsocks : 256;
    while (n <= (size_t)s)
      n *= 2;
    struct sock_ctx **t = realloc(eng->socks, n * sizeof *t);
    if (t == NULL)
      return NULL;
    memset(t + eng->nsocks, 0, (n - eng->nsocks) * sizeof *t);
    eng->socks = t;
    eng->nsocks = n;
  }
  struct sock_ctx *ctx = calloc(1, sizeof *ctx);
  if (ctx == NULL)
    return NULL;
  ctx->fd = s;
  ctx->gen = ++eng->sock_gen;
  eng->socks[s] = ctx;
  return ctx;
}

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
  struct http_shard *sh = userp;
  struct sock_ctx *ctx = socketp ? socketp : sock_find(sh->eng, s);
  (void)easy;
  if (what == CURL_POLL_REMOVE) {
    if (ctx) {
      /* Back in the connection pool: keep waiting for readability (what the next
       * transfer on it waits for, so reusing it changes nothing) and ignore events. */
      ctx->shard = NULL;
      sock_watch(sh->eng, ctx, ctx->events & EPOLLIN);
      curl_multi_assign(sh->multi, s, NULL);
    }
    return 0;
  }
  if (ctx == NULL && (ctx = sock_new(sh->eng, s)) == NULL)
    return -1;
  if (socketp == NULL)
    curl_multi_assign(sh->multi, s, ctx);
  ctx->shard = sh;
  uint32_t events = 0;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
    events |= EPOLLIN;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
    events |= EPOLLOUT;
  return sock_watch(sh->eng, ctx, events);
}

/* libcurl closes a socket. Closing the descriptor takes it out of the epoll set (libcurl
 * never duplicates one); an event for it still in this turn's batch finds no context, or
 * one of another generation, and is dropped. */
static int on_close_socket(void *clientp, curl_socket_t s) {
  struct http_engine *eng = clientp;
  struct sock_ctx *ctx = sock_find(eng, s);
  if (ctx) {
    eng->socks[s] = NULL;
    free(ctx);
  }
  return close(s);
}

static void on_timer(uv_timer_t *t) {
  socket_action(t->data, CURL_SOCKET_TIMEOUT, 0);
}

/* An active idle handle keeps the poll phase from blocking; libuv requires a callback. */
static void on_kick_idle(uv_idle_t *h) {
  (void)h;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
  struct http_shard *sh = userp;
  struct http_engine *eng = sh->eng;
  (void)multi;
  if (timeout_ms < 0) {
    uv_timer_stop(&sh->timer);
  } else if (timeout_ms == 0) {
    uv_timer_stop(&sh->timer);
    if (!sh->kick_pending) {
      sh->kick_pending = 1;
      eng->kicks++;
    }
    if (!uv_is_active((uv_handle_t *)&eng->kick_idle))
      uv_idle_start(&eng->kick_idle, on_kick_idle);
  } else {
    uv_timer_start(&sh->timer, on_timer, (uint64_t)timeout_ms, 0);
  }
  return 0;
}

static void on_kick(uv_check_t *c) {
  struct http_engine *eng = c->data;
  if (eng->kicks == 0)
    return;
  uv_idle_stop(&eng->kick_idle);
  /* At most KICK_BUDGET shards a turn, taken in turn from where the last turn stopped: a
   * burst of new transfers (thousands spawned at once) then connects a few hundred at a
   * time, and the loop polls between, so the first requests go out while the others are
   * still connecting instead of after all of them. A shard kicked again while this runs
   * is served on a later turn; the idle handle keeps those turns from blocking. */
  int budget = KICK_BUDGET;
  for (int n = 0; n < eng->nshards && eng->kicks > 0 && budget > 0; n++) {
    int i = eng->kick_next;
    eng->kick_next = (i + 1) % eng->nshards;
    struct http_shard *sh = eng->shards[i];
    if (!sh->kick_pending)
      continue;
    sh->kick_pending = 0;
    eng->kicks--;
    budget--;
    socket_action(sh, CURL_SOCKET_TIMEOUT, 0);
  }
  if (eng->kicks > 0 && !uv_is_active((uv_handle_t *)&eng->kick_idle))
    uv_idle_start(&eng->kick_idle, on_kick_idle);
}

/* ---------------------------------------------------------------------------------- */
/* Shards */

static struct http_shard *shard_new(struct http_engine *eng) {
  if (eng->nshards == SHARD_MAX)
    return NULL;
  struct http_shard *sh = calloc(1, sizeof *sh);
  if (sh == NULL)
    return NULL;
  sh->eng = eng;
  sh->multi = curl_multi_init();
  if (sh->multi == NULL) {
    free(sh);
    return NULL;
  }
  curl_multi_setopt(sh->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(sh->multi, CURLMOPT_SOCKETDATA, sh);
  curl_multi_setopt(sh->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(sh->multi, CURLMOPT_TIMERDATA, sh);
  curl_multi_setopt(sh->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  /* The connection cache must hold every connection its in-flight requests opened, or
   * finished ones are closed instead of reused. */
  curl_multi_setopt(sh->multi, CURLMOPT_MAXCONNECTS, SHARD_MAXCONNECTS);
  uv_timer_init(eng->loop, &sh->timer);
  sh->timer.data = sh;
  uv_unref((uv_handle_t *)&sh->timer);
  eng->shards[eng->nshards++] = sh;
  return sh;
}

/* The first shard with room, so that a light load stays on few connection pools; a new
 * shard when all are full; the least loaded one when no more may be opened. */
static struct http_shard *shard_pick(struct http_engine *eng) {
  struct http_shard *least = NULL;
  for (int i = 0; i < eng->nshards; i++) {
    struct http_shard *sh = eng->shards[i];
    if (sh->in_flight < SHARD_FILL)
      return sh;
    if (least == NULL || sh->in_flight < least->in_flight)
      least = sh;
  }
  struct http_shard *sh = shard_new(eng);
  return sh ? sh : least;
}

static void shard_closed(uv_handle_t *h) {
  free(h->data);
}

/* ---------------------------------------------------------------------------------- */
/* Engine */

static void xfer_destroy(struct http_xfer *x);

/* The close callback of a half-made engine's poll handle: the last of it to go. */
static void engine_abandoned(uv_handle_t *h) {
  struct http_engine *eng = h->data;
  close(eng->epfd);
  free(eng);
}

int http_engine_new(struct http_engine **out, uv_loop_t *loop, char *err, size_t errlen) {
  struct http_engine *eng = calloc(1, sizeof *eng);
  if (eng == NULL) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  eng->loop = loop;
  const char *v = getenv("MOONLOOP_CURL_VERBOSE");
  eng->verbose = v != NULL && v[0] == '1';
  /* libcurl reads the proxy variables for every transfer (five getenv calls, each a walk
   * of the environment). When none is set now, none will be: the process does not change
   * its environment. (Plain-http HTTP_PROXY is one libcurl ignores itself.) */
  static const char *const proxy_vars[] = {"http_proxy", "https_proxy", "HTTPS_PROXY",
                                           "all_proxy", "ALL_PROXY"};
  eng->no_proxy = 1;
  for (size_t i = 0; i < sizeof proxy_vars / sizeof proxy_vars[0]; i++) {
    const char *p = getenv(proxy_vars[i]);
    if (p != NULL && p[0] != '\0')
      eng->no_proxy = 0;
  }
  eng->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (eng->epfd < 0 || uv_poll_init(loop, &eng->ep_poll, eng->epfd) != 0) {
    snprintf(err, errlen, "cannot create an epoll set for the HTTP engine");
    if (eng->epfd >= 0)
      close(eng->epfd);
    free(eng);
    return -1;
  }
  eng->ep_poll.data = eng;
  uv_poll_start(&eng->ep_poll, UV_READABLE, on_sockets_ready);
  /* Idle keep-alive connections must not keep the loop (and the process) alive; the
   * transfers' own timers do that while requests are in flight. */
  uv_unref((uv_handle_t *)&eng->ep_poll);
  if (shard_new(eng) == NULL) {
    snprintf(err, errlen, "curl_multi_init failed");
    uv_close((uv_handle_t *)&eng->ep_poll, engine_abandoned); /* it frees eng */
    return -1;
  }
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
  for (int i = 0; i < eng->nshards; i++) {
    struct http_shard *sh = eng->shards[i];
    /* curl_multi_cleanup may call the socket callback for cached connections. */
    curl_multi_cleanup(sh->multi);
    sh->multi = NULL;
    uv_close((uv_handle_t *)&sh->timer, shard_closed);
  }
  eng->nshards = 0;
  for (int i = 0; i < eng->npool; i++)
    xfer_destroy(eng->pool[i]);
  eng->npool = 0;
  uv_close((uv_handle_t *)&eng->kick_check, engine_handle_closed);
  uv_close((uv_handle_t *)&eng->kick_idle, engine_handle_closed);
  uv_close((uv_handle_t *)&eng->ep_poll, engine_handle_closed);
  /* The struct is freed by the caller after the loop has run the close callbacks. */
}

void http_engine_release(struct http_engine *eng) {
  close(eng->epfd); /* after the loop let go of its poll handle */
  free(eng->pool);
  free(eng->socks);
  free(eng);
}

const struct http_stats *http_engine_stats(const struct http_engine *eng) {
  return &eng->stats;
}

/* ---------------------------------------------------------------------------------- */
/* Transfer callbacks (libcurl context: C buffers and timers only) */

static int buf_append(struct http_buf *b, const char *p, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : RESP_MIN_CAP;
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
    /* A stream is parsed as it comes, but its total size is capped like a body's: a
     * server that never ends its stream must not grow the answer without bound. */
    if (x->max_body && x->bytes_in > x->max_body) {
      x->err = HTTP_ETOOBIG;
      snprintf(x->why, sizeof x->why, "event stream larger than the %zu-byte limit",
               x->max_body);
      return CURL_WRITEFUNC_ERROR;
    }
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
static int header_value(const char *line, size_t len, const char *name, size_t nl, char *dst,
                        size_t dstlen) {
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

#define HEADER_VALUE(line, len, lit, dst) \
  header_value(line, len, lit, sizeof lit - 1, dst, sizeof dst)

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
  if (n <= 2 && (p[0] == '\r' || p[0] == '\n')) {
    /* End of headers: choose the body parser from what the server said. */
    x->is_sse = x->status >= 200 && x->status < 300 &&
                strncasecmp(x->content_type, "text/event-stream", 17) == 0;
    return n;
  }
  /* The names this file keeps start with c, r, x or (request-id) r: skip the others
   * without comparing, which is most headers of most responses. */
  switch (p[0] | 0x20) {
  case 'c':
    if (HEADER_VALUE(p, n, "content-type", x->content_type))
      return n;
    break;
  case 'r':
    if (HEADER_VALUE(p, n, "retry-after", x->retry_after) ||
        HEADER_VALUE(p, n, "retry-after-ms", x->retry_after_ms) ||
        HEADER_VALUE(p, n, "request-id", x->request_id))
      return n;
    break;
  case 'x':
    if (HEADER_VALUE(p, n, "x-request-id", x->request_id))
      return n;
    break;
  default:
    break;
  }
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
  return n;
}

/* Called by libcurl before each send of the request. libcurl sends a request again on
 * its own when a reused connection turns out dead before any byte of the answer. Such a
 * silent re-send would be billed by the server without the engine knowing, so it is
 * refused: the transfer fails with HTTP_ESTALE and the request layer retries it as a
 * counted, journaled attempt. (A GET, such as a capacity probe, may go again.) */
static int on_prereq(void *ud, char *primary_ip, char *local_ip, int primary_port,
                     int local_port) {
  struct http_xfer *x = ud;
  (void)primary_ip;
  (void)local_ip;
  (void)primary_port;
  (void)local_port;
  if (x->sends++ == 0 || !x->post)
    return CURL_PREREQFUNC_OK;
  x->rewinds++;
  x->eng->stats.refused_resends++;
  return CURL_PREREQFUNC_ABORT;
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
    curl_multi_remove_handle(x->shard->multi, x->easy);
    xfer_finish(x, HTTP_ETIMEOUT, CURLE_OPERATION_TIMEDOUT);
    if (x->on_done)
      x->on_done(x);
    return;
  }
  if (x->idle_ms > 0 && now >= x->t_last_byte_ms + (uint64_t)x->idle_ms) {
    snprintf(x->why, sizeof x->why, "no data from the server for %ld ms", x->idle_ms);
    curl_multi_remove_handle(x->shard->multi, x->easy);
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

/* The options every transfer shares; set once per easy handle (and after a reset). */
static void xfer_configure(struct http_xfer *x) {
  CURL *e = x->easy;
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
  curl_easy_setopt(e, CURLOPT_PREREQDATA, x);
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, x->eng);
  curl_easy_setopt(e, CURLOPT_PRIVATE, x);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  /* gzip only: every server that compresses speaks it, and libcurl formats request
   * headers a byte at a time, so the full list ("deflate, gzip, br, zstd") costs more per
   * request than it could save. */
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "gzip");
  /* The receive buffer, one per transfer: thousands of waiting transfers each hold one,
   * and libcurl's default of 16 KB is mostly unused by LLM answers and stream events.
   * 4 KB takes most answers, or a burst of a dozen events, in one read (2 KB cost the
   * streaming benchmark a third read per answer; 16 KB cost 2 KB more per request). */
  curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 4096L);
  /* HTTP/2 over TLS when the server offers it; plain http stays HTTP/1.1. */
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  if (x->eng->verbose)
    curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
  if (x->eng->no_proxy)
    curl_easy_setopt(e, CURLOPT_PROXY, "");
  x->ca_set = 0;
}

static struct http_xfer *xfer_create(struct http_engine *eng) {
  struct http_xfer *x = calloc(1, sizeof *x);
  if (x == NULL)
    return NULL;
  x->eng = eng;
  x->easy = curl_easy_init();
  if (x->easy == NULL) {
    free(x);
    return NULL;
  }
  xfer_configure(x);
  uv_timer_init(eng->loop, &x->timer);
  x->timer.data = x;
  return x;
}

static void xfer_closed(uv_handle_t *h) {
  free(h->data);
}

static void xfer_destroy(struct http_xfer *x) {
  if (x->easy)
    curl_easy_cleanup(x->easy);
  x->easy = NULL;
  if (x->harena)
    memset(x->harena, 0, x->hcap); /* it held the API key */
  free(x->harena);
  free(x->hnodes);
  free(x->body);
  free(x->resp.data);
  sse_free(&x->sse);
  uv_close((uv_handle_t *)&x->timer, xfer_closed);
}

static int reserve(char **buf, size_t *cap, size_t need) {
  if (need <= *cap)
    return 0;
  size_t c = *cap ? *cap : 256;
  while (c < need)
    c *= 2;
  char *d = realloc(*buf, c);
  if (d == NULL)
    return -1;
  *buf = d;
  *cap = c;
  return 0;
}

struct http_xfer *http_xfer_new(struct http_engine *eng, const char *url, const char *body,
                                size_t body_len) {
  struct http_xfer *x = eng->npool > 0 ? eng->pool[--eng->npool] : xfer_create(eng);
  if (x == NULL)
    return NULL;
  memset(x, 0, offsetof(struct http_xfer, eng));
  x->connect_ms = 10000;
  x->total_ms = 600000;
  x->idle_ms = 120000;
  x->max_body = 32u << 20;
  x->resp.len = 0;
  if (x->resp.data)
    x->resp.data[0] = '\0';
  x->hlen = 0;
  x->nheaders = 0;
  if (reserve(&x->body, &x->body_cap, body_len + 1) != 0)
    goto fail;
  if (body_len > 0)
    memcpy(x->body, body, body_len);
  x->body[body_len] = '\0';
  x->body_len = body_len;

  CURL *e = x->easy;
  if (curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK)
    goto fail;
  if (body == NULL) {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L); /* a probe such as llama.cpp's GET /props */
  } else {
    /* libcurl sends a body this small in the same packet as the headers. */
    x->post = 1;
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
  }
  /* Over https, wait for a connection being set up so HTTP/2 can multiplex instead of
   * opening one connection per request; over plain http (HTTP/1.1) that would only wait. */
  curl_easy_setopt(e, CURLOPT_PIPEWAIT, strncmp(url, "https:", 6) == 0 ? 1L : 0L);
  if (http_xfer_header(x, "Content-Type: application/json") != 0 ||
      http_xfer_header(x, "Expect:") != 0) /* no 100-continue round trip */
    goto fail;
  return x;
fail:
  http_xfer_free(x);
  return NULL;
}

int http_xfer_header(struct http_xfer *x, const char *header) {
  size_t n = strlen(header) + 1;
  if (reserve(&x->harena, &x->hcap, x->hlen + n) != 0)
    return -1;
  memcpy(x->harena + x->hlen, header, n);
  x->hlen += n;
  x->nheaders++;
  return 0;
}

/* The header list libcurl reads, over the arena (no allocation per header). */
static int build_headers(struct http_xfer *x) {
  if (x->nheaders > x->hnodes_cap) {
    int cap = x->hnodes_cap ? x->hnodes_cap : 8;
    while (cap < x->nheaders)
      cap *= 2;
    struct curl_slist *n = realloc(x->hnodes, (size_t)cap * sizeof *n);
    if (n == NULL)
      return -1;
    x->hnodes = n;
    x->hnodes_cap = cap;
  }
  char *p = x->harena;
  for (int i = 0; i < x->nheaders; i++) {
    x->hnodes[i].data = p;
    x->hnodes[i].next = i + 1 < x->nheaders ? &x->hnodes[i + 1] : NULL;
    p += strlen(p) + 1;
  }
  x->headers = x->nheaders > 0 ? x->hnodes : NULL;
  return 0;
}

int http_xfer_start(struct http_xfer *x) {
  struct http_engine *eng = x->eng;
  struct http_shard *sh = shard_pick(eng);
  if (sh == NULL || build_headers(x) != 0) {
    snprintf(x->why, sizeof x->why, "out of memory");
    return -1;
  }
  sse_init(&x->sse, sse_trampoline, x);
  curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers);
  curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS, x->connect_ms > 0 ? x->connect_ms : 0L);
  if (x->ca_file) {
    curl_easy_setopt(x->easy, CURLOPT_CAINFO, x->ca_file);
    x->ca_set = 1;
  }
  x->t_start_ms = x->t_last_byte_ms = uv_now(eng->loop);
  x->active = 1;
  CURLMcode mc = curl_multi_add_handle(sh->multi, x->easy);
  if (mc != CURLM_OK) {
    x->active = 0;
    snprintf(x->why, sizeof x->why, "curl_multi_add_handle: %s", curl_multi_strerror(mc));
    return -1;
  }
  x->shard = sh;
  sh->in_flight++;
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
  x->shard->in_flight--;
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

static void drain_done(struct http_shard *sh) {
  CURLMsg *msg;
  int pending;
  while ((msg = curl_multi_info_read(sh->multi, &pending)) != NULL) {
    if (msg->msg != CURLMSG_DONE)
      continue;
    CURL *easy = msg->easy_handle;
    CURLcode result = msg->data.result; /* msg is invalid after remove_handle */
    struct http_xfer *x = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    curl_multi_remove_handle(sh->multi, easy);
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
  curl_multi_remove_handle(x->shard->multi, x->easy);
  xfer_finish(x, HTTP_ECANCELLED, CURLE_ABORTED_BY_CALLBACK);
}

void http_xfer_free(struct http_xfer *x) {
  if (x == NULL)
    return;
  http_xfer_cancel(x);
  struct http_engine *eng = x->eng;
  uv_timer_stop(&x->timer);
  sse_free(&x->sse);
  if (x->hlen > 0)
    memset(x->harena, 0, x->hlen); /* it held the API key */
  if (eng->npool == eng->pool_cap && !eng->closing && eng->pool_cap < POOL_MAX) {
    int cap = eng->pool_cap ? eng->pool_cap * 2 : 256;
    struct http_xfer **p = realloc(eng->pool, (size_t)cap * sizeof *p);
    if (p != NULL) {
      eng->pool = p;
      eng->pool_cap = cap;
    }
  }
  if (eng->closing || eng->npool == eng->pool_cap) {
    xfer_destroy(x);
    return;
  }
  /* Keep it for the next transfer, without buffers one big answer grew. */
  if (x->resp.cap > KEEP_RESP_CAP) {
    free(x->resp.data);
    x->resp.data = NULL;
    x->resp.cap = 0;
  }
  if (x->body_cap > KEEP_BODY_CAP) {
    free(x->body);
    x->body = NULL;
    x->body_cap = 0;
  }
  if (x->hcap > KEEP_HEADER_CAP) {
    free(x->harena);
    x->harena = NULL;
    x->hcap = 0;
  }
  if (x->ca_set) { /* back to the system's CA bundle: only a reset restores it */
    curl_easy_reset(x->easy);
    xfer_configure(x);
  }
  eng->pool[eng->npool++] = x;
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

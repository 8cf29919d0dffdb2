/* `moonloop mock-server`: connections, routing, latency, fault injection and the request
 * log, on one libuv loop. Each connection serves one request at a time (pipelined bytes
 * wait in its input buffer); a response is rendered whole before it is sent, then written
 * with one uv_try_write (uv_write for what the kernel did not take). */
#include "mock/server.h"
#include "mock/mock.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#define MOCK_BACKLOG 16384
#define MOCK_DRAIN_MS 2000 /* how long a closing connection waits for the client's FIN */

static void conn_resume(struct mock_conn *c);
static void send_more(struct mock_conn *c);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_timer(uv_timer_t *t);

/* ---- Request log ------------------------------------------------------------------- */

static void log_request(struct mock_conn *c, int completed) {
  struct mock_server *srv = c->srv;
  if (!c->active)
    return;
  c->active = 0;
  if (srv->log == NULL)
    return;
  struct mock_buf *b = &srv->logline;
  b->len = 0;
  double dur = (double)(uv_hrtime() - c->t0) / 1e6;
  int rc = mock_buf_printf(b, "{\"seq\":%llu,\"conn\":%llu,\"t_ms\":%.3f,\"method\":",
                           (unsigned long long)c->seq, (unsigned long long)c->id,
                           (double)(c->t0 - srv->t_start) / 1e6);
  rc = rc ? rc : mock_buf_json_str(b, c->method, strlen(c->method));
  rc = rc ? rc : mock_buf_adds(b, ",\"path\":");
  rc = rc ? rc : mock_buf_json_str(b, c->path, strlen(c->path));
  rc = rc ? rc
          : mock_buf_printf(b,
                            ",\"status\":%d,\"fault\":\"%s\",\"stream\":%s,\"latency_ms\":%llu,"
                            "\"duration_ms\":%.3f,\"completed\":%s,\"bytes\":%zu,"
                            "\"body_hash\":\"%016llx\"}\n",
                            c->status, mock_fault_name(c->fault), c->stream ? "true" : "false",
                            (unsigned long long)c->latency_ms, dur, completed ? "true" : "false",
                            c->sent, (unsigned long long)c->body_hash);
  if (rc == 0 && fwrite(b->data, 1, b->len, srv->log) == b->len)
    srv->log_dirty = 1;
}

static void on_flush(uv_prepare_t *h) {
  struct mock_server *srv = h->data;
  if (srv->log_dirty) {
    fflush(srv->log);
    srv->log_dirty = 0;
  }
}

/* ---- Closing ----------------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h) {
  struct mock_conn *c = h->data;
  if (--c->open_handles > 0)
    return;
  mock_buf_free(&c->in);
  mock_buf_free(&c->out);
  free(c->events);
  free(c);
}

/* Close now; reset sends an RST instead of a FIN (SO_LINGER 0). */
void mock_conn_close(struct mock_conn *c, int reset) {
  if (c->state == CONN_CLOSED)
    return;
  log_request(c, 0);
  c->state = CONN_CLOSED;
  struct mock_server *srv = c->srv;
  if (c->prev)
    c->prev->next = c->next;
  else
    srv->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  srv->nconns--;
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
  if (!reset || uv_tcp_close_reset(&c->tcp, on_handle_closed) != 0)
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  struct mock_conn *c = req->data;
  c->shutting = 0;
  if (c->state == CONN_CLOSED)
    return;
  if (status < 0 || c->peer_eof)
    mock_conn_close(c, 0);
}

/* Finish politely: send our FIN, keep reading (and discarding) until the client's FIN or
 * a deadline, so that unread request bytes do not turn our last response into an RST. */
static void conn_drain(struct mock_conn *c) {
  if (c->state == CONN_CLOSED || c->state == CONN_DRAINING)
    return;
  c->state = CONN_DRAINING;
  c->sreq.data = c;
  if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
    mock_conn_close(c, 0);
    return;
  }
  c->shutting = 1;
  uv_timer_start(&c->timer, on_timer, MOCK_DRAIN_MS, 0);
  if (!c->peer_eof && !c->reading &&
      uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
    c->reading = 1;
}

/* ---- Writing ----------------------------------------------------------------------- */

/* The planned bytes are all out: keep the connection, close it, or stall. */
static void response_done(struct mock_conn *c) {
  switch (c->after) {
  case AFTER_KEEP:
    log_request(c, 1);
    if (!c->keep_alive) {
      conn_drain(c);
      return;
    }
    c->state = CONN_IDLE;
    if (c->out.cap > MOCK_KEEP_BUF)
      mock_buf_free(&c->out);
    if (!c->pumping)
      conn_resume(c);
    return;
  case AFTER_CLOSE:
    log_request(c, 0);
    conn_drain(c);
    return;
  case AFTER_STALL:
  case AFTER_RESET:
    c->state = CONN_STALLED; /* logged when the client gives up */
    return;
  }
}

/* A write finished: more of a paced stream after the interval, or the end. */
static void written(struct mock_conn *c) {
  if (c->sent < c->limit) {
    if (c->paced && c->srv->cfg.stream_interval_ms > 0)
      uv_timer_start(&c->timer, on_timer, c->srv->cfg.stream_interval_ms, 0);
    else
      send_more(c);
    return;
  }
  response_done(c);
}

static void on_write(uv_write_t *req, int status) {
  struct mock_conn *c = req->data;
  if (c->state == CONN_CLOSED)
    return;
  if (status < 0) {
    mock_conn_close(c, 0);
    return;
  }
  written(c);
}

/* Send out[sent..upto): the kernel usually takes it all at once, so try that first and
 * queue only the rest. */
static void write_upto(struct mock_conn *c, size_t upto) {
  uv_buf_t b = uv_buf_init(c->out.data + c->sent, (unsigned)(upto - c->sent));
  if (b.len == 0) {
    written(c);
    return;
  }
  int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (n == (int)b.len) {
    c->sent = upto;
    written(c);
    return;
  }
  if (n < 0 && n != UV_EAGAIN) {
    mock_conn_close(c, 0);
    return;
  }
  if (n > 0) {
    b.base += n;
    b.len -= (unsigned)n;
  }
  c->wreq.data = c;
  if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
    mock_conn_close(c, 0);
    return;
  }
  c->sent = upto;
}

static void send_more(struct mock_conn *c) {
  size_t upto = c->limit;
  if (c->paced && c->ev_next < c->nevents && c->events[c->ev_next] < upto)
    upto = c->events[c->ev_next++];
  write_upto(c, upto);
}

/* Latency is over (or was zero): put the response on the wire. */
static void go(struct mock_conn *c) {
  if (c->after == AFTER_RESET) {
    c->status = 0;
    mock_conn_close(c, 1);
    return;
  }
  c->state = CONN_SENDING;
  c->sent = 0;
  c->ev_next = 0;
  send_more(c);
}

static void on_timer(uv_timer_t *t) {
  struct mock_conn *c = t->data;
  switch (c->state) {
  case CONN_WAIT: go(c); break;
  case CONN_SENDING: send_more(c); break;
  case CONN_DRAINING: mock_conn_close(c, 0); break;
  default: break;
  }
}

static void start_response(struct mock_conn *c, uint64_t latency_ms) {
  if (latency_ms > 0) {
    c->state = CONN_WAIT;
    uv_timer_start(&c->timer, on_timer, latency_ms, 0);
  } else {
    go(c);
  }
}

static void copy_field(char *dst, size_t cap, const char *src, size_t n) {
  if (n >= cap)
    n = cap - 1;
  memcpy(dst, src, n);
  dst[n] = '\0';
}

/* Start serving the complete request at base; sets the connection's state. */
static void handle_request(struct mock_conn *c, const char *base) {
  struct mock_server *srv = c->srv;
  const struct mreq *r = &c->req;
  c->active = 1;
  c->seq = ++srv->seq;
  c->t0 = uv_hrtime();
  c->fault = MOCK_FAULT_NONE;
  c->stream = 0;
  c->latency_ms = 0;
  c->sent = 0;
  c->keep_alive = r->keep_alive && !c->peer_eof;
  c->chunked = r->version_minor >= 1;
  c->body_hash = mock_fnv1a(base + r->body.off, r->body.len);
  copy_field(c->method, sizeof c->method, base + r->method.off, r->method.len);
  copy_field(c->path, sizeof c->path, base + r->target.off, r->target.len);

  uint64_t latency = 0;
  int rc = mock_route(c, base, &latency);
  if (rc != 0) {
    fprintf(stderr, "mock-server: out of memory building a response; closing connection %llu\n",
            (unsigned long long)c->id);
    mock_conn_close(c, 0);
    return;
  }
  c->latency_ms = latency;
  start_response(c, latency);
}

/* The parser rejected the request: say why, then close (the stream is out of sync). */
static void handle_bad_request(struct mock_conn *c, const char *base, int status) {
  const struct mreq *r = &c->req;
  c->active = 1;
  c->seq = ++c->srv->seq;
  c->t0 = uv_hrtime();
  c->fault = MOCK_FAULT_NONE;
  c->stream = 0;
  c->latency_ms = 0;
  c->body_hash = mock_fnv1a("", 0);
  c->keep_alive = 0;
  c->chunked = 1;
  copy_field(c->method, sizeof c->method, base + r->method.off, r->method.len);
  copy_field(c->path, sizeof c->path, base + r->target.off, r->target.len);
  if (mock_put_error(c, status, r->error ? r->error : "bad request", "invalid_request_error", NULL,
                     NULL) != 0) {
    mock_conn_close(c, 0);
    return;
  }
  start_response(c, 0);
}

static void on_continue_written(uv_write_t *req, int status) {
  struct mock_conn *c = req->data;
  (void)status;
  c->cont_writing = 0;
}

static void send_continue(struct mock_conn *c) {
  static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
  uv_buf_t b = uv_buf_init((char *)msg, sizeof msg - 1);
  c->req.expect_continue = 0; /* once per request */
  if (c->cont_writing)
    return;
  int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (n == (int)b.len)
    return;
  if (n < 0 && n != UV_EAGAIN)
    return; /* the read side will see the error */
  if (n > 0) {
    b.base += n;
    b.len -= (unsigned)n;
  }
  c->creq.data = c;
  if (uv_write(&c->creq, (uv_stream_t *)&c->tcp, &b, 1, on_continue_written) == 0)
    c->cont_writing = 1;
}

/* Serve every complete request in data[0..len) while the connection is idle. Returns how
 * many bytes were used; the rest (a partial request, or requests that must wait) stays
 * with the caller. */
static size_t pump(struct mock_conn *c, const char *data, size_t len) {
  size_t off = 0;
  c->pumping = 1;
  while (c->state == CONN_IDLE && !c->srv->stopping) {
    int rc = mreq_parse(&c->req, data + off, len - off);
    if (rc == MREQ_AGAIN) {
      if (c->req.headers_done && c->req.expect_continue)
        send_continue(c);
      break;
    }
    if (rc < 0) {
      handle_bad_request(c, data + off, -rc);
      off = len; /* whatever follows cannot be framed */
      break;
    }
    handle_request(c, data + off);
    off += c->req.total;
    mreq_reset(&c->req);
  }
  c->pumping = 0;
  return off;
}

static int stash(struct mock_conn *c, const char *p, size_t n) {
  if (c->in_off > 0 && c->in_off == c->in.len)
    c->in_off = c->in.len = 0;
  return mock_buf_add(&c->in, p, n);
}

/* Serve what is buffered, then compact the buffer and read again. */
static void serve_buffered(struct mock_conn *c) {
  size_t have = c->in.len - c->in_off;
  if (have > 0 && c->state == CONN_IDLE)
    c->in_off += pump(c, c->in.data + c->in_off, have);
  if (c->state == CONN_CLOSED)
    return;
  if (c->in_off == c->in.len) {
    c->in_off = c->in.len = 0;
    if (c->in.cap > MOCK_KEEP_BUF)
      mock_buf_free(&c->in);
  } else if (c->state == CONN_IDLE && c->in_off > 0) {
    /* A partial request: its parser offsets are relative to its first byte, so moving
     * the bytes to the front is safe. */
    memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
    c->in.len -= c->in_off;
    c->in_off = 0;
  }
}

static void conn_resume(struct mock_conn *c) {
  serve_buffered(c);
  if (c->state != CONN_IDLE)
    return;
  if (c->peer_eof) {
    mock_conn_close(c, 0);
    return;
  }
  if (!c->reading && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
    c->reading = 1;
}

/* ---- Reading ----------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct mock_conn *c = h->data;
  (void)suggested;
  buf->base = c->srv->rbuf;
  buf->len = sizeof c->srv->rbuf;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct mock_conn *c = s->data;
  if (nread == 0 || c->state == CONN_CLOSED)
    return;
  if (nread < 0) {
    /* EOF or an error. A client that leaves while we wait or send has given up on the
     * request: close at once and log it as not completed. */
    c->peer_eof = 1;
    c->reading = 0;
    uv_read_stop(s);
    if (c->state == CONN_DRAINING && c->shutting)
      return; /* on_shutdown closes */
    mock_conn_close(c, 0);
    return;
  }
  size_t n = (size_t)nread;
  if (c->state == CONN_STALLED || c->state == CONN_DRAINING)
    return; /* nothing more will be answered on this connection */
  if (c->state == CONN_IDLE && c->in.len == c->in_off) {
    /* The common case: parse straight from the shared read buffer. */
    size_t used = pump(c, buf->base, n);
    if (c->state == CONN_CLOSED || c->state == CONN_DRAINING)
      return;
    if (used < n && stash(c, buf->base + used, n - used) != 0) {
      mock_conn_close(c, 0);
      return;
    }
    return;
  }
  if (stash(c, buf->base, n) != 0) {
    mock_conn_close(c, 0);
    return;
  }
  if (c->state == CONN_IDLE) {
    serve_buffered(c);
    if (c->state == CONN_CLOSED)
      return;
  }
  /* A client pipelining far ahead of us waits in its socket buffer, not in our memory. */
  size_t cap = c->req.max_header + c->req.max_body + sizeof c->srv->rbuf;
  if (c->state != CONN_IDLE && c->in.len - c->in_off > cap && c->reading) {
    uv_read_stop(s);
    c->reading = 0;
  }
}

/* ---- Connections and the listener -------------------------------------------------- */

static void on_refused_closed(uv_handle_t *h) { free(h); }

/* Accept and close at once. A connection left unaccepted would make libuv stop watching
 * the listener, and the backlog would fill with clients that only time out. */
static void refuse(struct mock_server *srv, uv_stream_t *listener) {
  uv_tcp_t *t = malloc(sizeof *t);
  if (t == NULL || uv_tcp_init(&srv->loop, t) != 0) {
    free(t);
    return;
  }
  uv_accept(listener, (uv_stream_t *)t);
  uv_close((uv_handle_t *)t, on_refused_closed);
}

static void on_connection(uv_stream_t *listener, int status) {
  struct mock_server *srv = listener->data;
  if (status < 0 || srv->stopping)
    return;
  struct mock_conn *c = NULL;
  if (srv->nconns >= srv->cfg.max_connections || (c = calloc(1, sizeof *c)) == NULL) {
    refuse(srv, listener);
    return;
  }
  c->srv = srv;
  c->id = ++srv->next_conn_id;
  uv_tcp_init(&srv->loop, &c->tcp);
  uv_timer_init(&srv->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->open_handles = 2;
  mreq_init(&c->req, srv->cfg.max_body);
  c->state = CONN_IDLE;
  c->next = srv->conns;
  if (srv->conns)
    srv->conns->prev = c;
  srv->conns = c;
  srv->nconns++;
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
    mock_conn_close(c, 0);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1); /* small paced writes must not wait for delayed ACKs */
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
    mock_conn_close(c, 0);
    return;
  }
  c->reading = 1;
}

static void on_signal(uv_signal_t *s, int signum) {
  struct mock_server *srv = s->data;
  if (srv->stopping)
    return;
  srv->stopping = 1;
  fprintf(stderr, "mock-server: %s, shutting down (%d connections open)\n",
          signum == SIGINT ? "SIGINT" : "SIGTERM", srv->nconns);
  uv_close((uv_handle_t *)&srv->listener, NULL);
  uv_close((uv_handle_t *)&srv->sigint, NULL);
  uv_close((uv_handle_t *)&srv->sigterm, NULL);
  uv_close((uv_handle_t *)&srv->flusher, NULL);
  while (srv->conns)
    mock_conn_close(srv->conns, 0);
}

/* ---- Startup ----------------------------------------------------------------------- */

/* Thousands of connections need thousands of descriptors; take what the hard limit
 * allows. */
static void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

/* Resolve --host to a socket address; only loopback unless allow_remote. */
static int resolve_host(const struct mock_config *cfg, struct sockaddr_storage *ss, char *err,
                        size_t errlen) {
  const char *host = cfg->host;
  if (strcmp(host, "localhost") == 0)
    host = "127.0.0.1";
  int loopback = 0;
  struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
  memset(ss, 0, sizeof *ss);
  if (uv_ip4_addr(host, cfg->port, v4) == 0) {
    loopback = (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
  } else if (uv_ip6_addr(host, cfg->port, v6) == 0) {
    loopback = memcmp(&v6->sin6_addr, &in6addr_loopback, sizeof in6addr_loopback) == 0;
  } else {
    snprintf(err, errlen, "mock-server: --host expects an IPv4 or IPv6 address (got \"%s\")",
             cfg->host);
    return -1;
  }
  if (!loopback && !cfg->allow_remote) {
    snprintf(err, errlen,
             "mock-server: --host %s is not a loopback address; the mock server has no "
             "authentication, so pass --allow-remote if you really mean it",
             cfg->host);
    return -1;
  }
  return 0;
}

static int write_port_file(const char *path, int port, char *err, size_t errlen) {
  char tmp[4096];
  int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  if (n < 0 || (size_t)n >= sizeof tmp) {
    snprintf(err, errlen, "mock-server: --port-file path too long");
    return -1;
  }
  FILE *f = fopen(tmp, "w");
  if (f == NULL)
    goto fail;
  int bad = fprintf(f, "%d\n", port) < 0;
  bad |= fclose(f) != 0;
  if (bad || rename(tmp, path) != 0)
    goto fail;
  return 0;

fail:
  snprintf(err, errlen, "mock-server: cannot write --port-file %s: %s", path, strerror(errno));
  unlink(tmp);
  return -1;
}

static void close_leftover(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

int mock_main(int argc, char **argv) {
  char err[1024];
  int exit_code = 1, loop_open = 0;
  struct mock_server *srv = calloc(1, sizeof *srv);
  if (srv == NULL) {
    fprintf(stderr, "mock-server: out of memory\n");
    return 1;
  }
  int rc = mock_parse_args(&srv->cfg, argc, argv, err, sizeof err);
  if (rc != 0) {
    if (rc < 0)
      fprintf(stderr, "%s\n", err);
    free(srv);
    return rc > 0 ? 0 : 2;
  }
  struct sockaddr_storage addr;
  if (resolve_host(&srv->cfg, &addr, err, sizeof err) != 0 ||
      mock_answer_open(&srv->ans, srv->cfg.answer_path, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    free(srv);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN); /* a client that vanishes mid-write is an error code, not death */
  raise_nofile();
  srv->rng = srv->cfg.seed;
  if (mock_rl_init(srv) != 0) {
    fprintf(stderr, "mock-server: out of memory\n");
    goto done;
  }

  if (srv->cfg.log_path) {
    srv->log = fopen(srv->cfg.log_path, "w");
    if (srv->log == NULL) {
      fprintf(stderr, "mock-server: cannot open --log %s: %s\n", srv->cfg.log_path,
              strerror(errno));
      exit_code = 2;
      goto done;
    }
    setvbuf(srv->log, NULL, _IOFBF, 1 << 16);
  }

  if ((rc = uv_loop_init(&srv->loop)) != 0)
    goto uv_fail;
  loop_open = 1;
  uv_tcp_init(&srv->loop, &srv->listener);
  srv->listener.data = srv;
  if ((rc = uv_tcp_bind(&srv->listener, (struct sockaddr *)&addr, 0)) != 0 ||
      (rc = uv_listen((uv_stream_t *)&srv->listener, MOCK_BACKLOG, on_connection)) != 0) {
    fprintf(stderr, "mock-server: cannot listen on %s port %d: %s\n", srv->cfg.host, srv->cfg.port,
            uv_strerror(rc));
    goto done;
  }
  srv->t_start = uv_hrtime();
  struct sockaddr_storage bound;
  int blen = sizeof bound;
  if ((rc = uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&bound, &blen)) != 0)
    goto uv_fail;
  int port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                               : ((struct sockaddr_in *)&bound)->sin_port);
  if (srv->cfg.port_file && write_port_file(srv->cfg.port_file, port, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    goto done;
  }

  uv_signal_init(&srv->loop, &srv->sigint);
  uv_signal_init(&srv->loop, &srv->sigterm);
  srv->sigint.data = srv->sigterm.data = srv;
  uv_signal_start(&srv->sigint, on_signal, SIGINT);
  uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
  uv_prepare_init(&srv->loop, &srv->flusher);
  srv->flusher.data = srv;
  uv_prepare_start(&srv->flusher, on_flush);
  uv_unref((uv_handle_t *)&srv->flusher);

  fprintf(stderr, "mock-server listening on http://%s%s%s:%d\n",
          bound.ss_family == AF_INET6 ? "[" : "", srv->cfg.host,
          bound.ss_family == AF_INET6 ? "]" : "", port);
  uv_run(&srv->loop, UV_RUN_DEFAULT);
  exit_code = 0;
  goto done;

uv_fail:
  fprintf(stderr, "mock-server: %s\n", uv_strerror(rc));
done:
  if (loop_open) {
    /* Early failures leave handles open; close them so the loop can be closed. */
    uv_walk(&srv->loop, close_leftover, NULL);
    uv_run(&srv->loop, UV_RUN_DEFAULT);
    uv_loop_close(&srv->loop);
  }
  if (srv->log && fclose(srv->log) != 0 && exit_code == 0) {
    fprintf(stderr, "mock-server: writing --log %s failed: %s\n", srv->cfg.log_path,
            strerror(errno));
    exit_code = 1;
  }
  mock_answer_close(&srv->ans);
  mock_rl_free(srv);
  mock_buf_free(&srv->body);
  mock_buf_free(&srv->scratch);
  mock_buf_free(&srv->logline);
  free(srv);
  return exit_code;
}

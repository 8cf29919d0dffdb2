/* The HTTP engine: libcurl's multi-socket interface driven by the libuv loop.
 * A few CURLM handles ("shards", each with its own connection pool, so keep-alive and
 * HTTP/2 multiplexing come for free), one epoll set for all their sockets (polled by the
 * loop as a single descriptor), a timer per shard and per transfer, and a pool of finished transfers for reuse. Transfers complete through a C
 * callback; no Lua runs in here. */
#ifndef ML_HTTP_ENGINE_H
#define ML_HTTP_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <curl/curl.h>
#include <uv.h>

#include "http/sse.h"

struct http_engine;
struct http_xfer;

/* How a transfer ended, beyond libcurl's own result code. */
enum http_err {
  HTTP_OK = 0,
  HTTP_ETRANSPORT,     /* libcurl failed: connect, reset, truncated body... (see result) */
  HTTP_ETIMEOUT,       /* the whole-request deadline passed */
  HTTP_EIDLE,          /* no byte arrived for idle_ms */
  HTTP_ECONNECT_TIMEOUT,
  HTTP_ETOOBIG,        /* the response exceeded max_body */
  HTTP_ESSE,           /* the event stream broke a parser limit */
  HTTP_EABORTED,       /* the consumer stopped the stream (an error event, say) */
  HTTP_ECANCELLED,
  HTTP_ESTALE,         /* a reused connection died before any answer: not sent again by
                          libcurl behind our back; the caller decides (and counts) a retry */
};

typedef void (*http_done_fn)(struct http_xfer *x);
/* Called for each SSE event of a 2xx text/event-stream response (inside libcurl's write
 * callback: C only). Return non-zero to abort the transfer with HTTP_EABORTED. */
typedef int (*http_event_fn)(struct http_xfer *x, const struct sse_event *ev);

struct http_buf {
  char *data;
  size_t len, cap;
};

struct http_shard;

/* A transfer. The engine keeps finished transfers (their easy handle, timer and buffers)
 * for reuse, so a caller must treat one as gone after http_xfer_free. Everything before
 * `eng` is per transfer: http_xfer_new zeroes it and sets the defaults. The caller sets
 * the limits and callbacks and reads the response and outcome fields; the rest belongs
 * to engine.c (`resp` too, which the caller only reads). */
struct http_xfer {
  const char *ca_file; /* CA bundle to trust instead of the system's (not copied) */

  /* Limits (milliseconds; 0 = none). */
  long connect_ms, total_ms, idle_ms;
  size_t max_body;

  /* Callbacks */
  http_event_fn on_event;
  /* Every response header (libcurl context: C only). name/value are not NUL-terminated. */
  void (*on_header)(struct http_xfer *x, const char *name, size_t nlen, const char *value,
                    size_t vlen);
  http_done_fn on_done;
  void *ud;

  /* Response */
  long status;
  int is_sse;
  struct sse_parser sse;
  char content_type[96];
  char retry_after[64];
  char retry_after_ms[32];
  char request_id[96];
  uint64_t bytes_in;

  /* Outcome */
  enum http_err err;
  CURLcode result;
  char errbuf[CURL_ERROR_SIZE]; /* libcurl's own words */
  char why[256];                /* ours, for deadlines, limits and aborted streams */
  uint64_t t_start_ms, t_end_ms, t_last_byte_ms;
  int active;
  int reused_connection;
  int rewinds; /* times libcurl tried to send the request again on its own (refused) */

  /* engine.c's own from here on; up to `eng`, zeroed by http_xfer_new */
  int sends;                /* request sends libcurl started for this transfer */
  int post;                 /* it has a request body (a resend would repeat it) */
  struct http_shard *shard; /* the multi handle running it */

  struct http_engine *eng;
  CURL *easy;
  int ca_set; /* the easy handle holds a CURLOPT_CAINFO */
  struct curl_slist *headers; /* built over hnodes when the transfer starts */
  struct curl_slist *hnodes;
  int hnodes_cap;
  char *harena; /* the request headers, NUL-separated */
  size_t hlen, hcap;
  int nheaders;
  char *body; /* the request body (a copy, NUL-terminated) */
  size_t body_len, body_cap;
  struct http_buf resp; /* the body when not a stream (or the error body of a stream) */
  uv_timer_t timer;     /* the earliest of the total and idle deadlines */
};

struct http_stats {
  uint64_t started, completed, failed, cancelled, timeouts;
  uint64_t bytes_in;
  uint64_t connections_opened;
  uint64_t http2_responses;
  uint64_t refused_resends; /* libcurl wanted to re-send a request on a dead reused connection */
  unsigned in_flight, in_flight_peak;
};

int http_engine_new(struct http_engine **out, uv_loop_t *loop, char *err, size_t errlen);
/* Cancels what is in flight, closes every handle; run the loop afterwards so the
 * close callbacks fire before uv_loop_close. */
void http_engine_free(struct http_engine *eng);
/* Free the engine's memory once the loop has run its handles' close callbacks. */
void http_engine_release(struct http_engine *eng);
const struct http_stats *http_engine_stats(const struct http_engine *eng);

/* Allocate a transfer for url with a JSON body (copied; body NULL with body_len 0 makes it
 * a GET). Headers are appended with
 * http_xfer_header. Returns NULL when out of memory. */
struct http_xfer *http_xfer_new(struct http_engine *eng, const char *url, const char *body,
                                size_t body_len);
int http_xfer_header(struct http_xfer *x, const char *header);
/* Start it; on_done runs exactly once unless it is cancelled first. */
int http_xfer_start(struct http_xfer *x);
/* Stop a running transfer now (removes it from libcurl; on_done is not called). Safe to
 * call from Lua-side code and libuv callbacks, never from inside a libcurl callback. */
void http_xfer_cancel(struct http_xfer *x);
/* Release a transfer (cancelling it if still running). Memory goes after its timer closes. */
void http_xfer_free(struct http_xfer *x);

/* A human-readable description of a failed transfer: "connection reset by peer", ... */
const char *http_xfer_strerror(const struct http_xfer *x);

#endif

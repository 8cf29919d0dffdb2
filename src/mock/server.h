/* Internal interfaces of `moonloop mock-server`, shared by its files: options.c (flags),
 * faults.c (PRNG, latency, fault choice), answer.c (Lua answers and JSON rendering) and
 * server.c (the loop, connections and I/O). Not a public API. */
#ifndef ML_MOCK_SERVER_H
#define ML_MOCK_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <lua.h>
#include <uv.h>

#include "mock/http_req.h"

/* ---- Growable byte buffer ---------------------------------------------------------- */

struct mock_buf {
  char *data;
  size_t len, cap;
};

/* Make room for extra more bytes. Returns 0 or UV_ENOMEM. */
int mock_buf_reserve(struct mock_buf *b, size_t extra);
int mock_buf_add(struct mock_buf *b, const void *p, size_t n);
int mock_buf_adds(struct mock_buf *b, const char *s);
int mock_buf_printf(struct mock_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s as a quoted JSON string; invalid UTF-8 becomes U+FFFD so the output always
 * parses. */
int mock_buf_json_str(struct mock_buf *b, const char *s, size_t n);
void mock_buf_free(struct mock_buf *b);

/* ---- Configuration (options.c) ----------------------------------------------------- */

enum mock_fault {
  MOCK_FAULT_NONE = 0,
  MOCK_FAULT_429,
  MOCK_FAULT_500,
  MOCK_FAULT_503,
  MOCK_FAULT_RESET,
  MOCK_FAULT_STALL,
  MOCK_FAULT_TRUNCATE,
  MOCK_FAULT_BADJSON,
  MOCK_FAULT_BADSSE,
  MOCK_FAULT_529,       /* Anthropic's "overloaded" status */
  MOCK_FAULT_SSE_ERROR, /* a stream that ends in an error event after some deltas */
  MOCK_FAULT_COUNT,
  MOCK_FAULT_RATELIMIT /* not drawable: the 429 of --rpm/--tpm (ratelimit.c), for the log */
};

enum mock_dist { MOCK_LAT_FIXED = 0, MOCK_LAT_UNIFORM, MOCK_LAT_EXP, MOCK_LAT_NORMAL };

struct mock_latency {
  enum mock_dist dist;
  double a, b; /* fixed: a; uniform: a..b; exp: mean a; normal: mean a, sd b (all ms) */
};

struct mock_config {
  const char *host;
  int port;
  int allow_remote;
  const char *port_file;
  const char *log_path;
  const char *answer_path; /* NULL: the bundled lua/moonloop/mock/answer.lua */
  struct mock_latency latency;
  uint64_t stream_interval_ms;
  int stream_chunks;
  double fault_prob[MOCK_FAULT_COUNT];
  int retry_after;
  uint64_t seed;
  int max_connections;
  size_t max_body;
  long long rpm, tpm; /* per-key limits per minute; 0 is off (ratelimit.c) */
  int slots;          /* > 0: GET /props answers {"total_slots": N} like llama.cpp's server */
};

/* Fill cfg from argv (argv[0] is the subcommand name). Returns 0; 1 when --help was
 * printed; or -1 with a message naming the flag in err (the caller exits with 2). */
int mock_parse_args(struct mock_config *cfg, int argc, char **argv, char *err, size_t errlen);

/* Parse a latency spec ("250", "uniform:100:500", "exp:300", "normal:300:50"). */
int mock_parse_latency(const char *s, struct mock_latency *out);

/* ---- Faults and randomness (faults.c) ---------------------------------------------- */

/* splitmix64: small, fast, and the same sequence for the same seed everywhere. */
uint64_t mock_rand(uint64_t *state);
double mock_rand01(uint64_t *state); /* uniform in [0, 1) */

/* Draw a latency in ms (clamped at 0). */
uint64_t mock_latency_draw(const struct mock_latency *lat, uint64_t *state);

/* Pick a fault from the configured probabilities with one draw. */
enum mock_fault mock_fault_draw(const double prob[MOCK_FAULT_COUNT], uint64_t *state);

/* "429", "reset", ... and back; mock_fault_parse returns -1 for an unknown name. */
const char *mock_fault_name(enum mock_fault f);
int mock_fault_parse(const char *s, size_t n);

/* ---- Answers (answer.c) ------------------------------------------------------------ */

struct mock_choice {
  const char *text; /* owned by the Lua stack until mock_answer_release */
  size_t text_len;
  const char *finish_reason;
  size_t finish_len;
  long long input_tokens, output_tokens;
};

struct mock_answerer {
  lua_State *L;
  int chat_ref;
  int base; /* stack top to restore on release */
  const char *path;
  unsigned errors_reported;
};

/* Open a Lua state and load the answer file (path, or the bundled default when NULL).
 * Returns 0, or -1 with err naming the file and what is wrong. */
int mock_answer_open(struct mock_answerer *a, const char *path, char *err, size_t errlen);
void mock_answer_close(struct mock_answerer *a);

/* Call chat(req, i, meta) for i = 0..n-1, where meta = { role = role } (role is the
 * X-Moonloop-Role header, or NULL for none). On success fills out[0..n) (strings stay
 * valid until mock_answer_release) and returns 0. Returns -1 with the Lua error in err. */
int mock_answer_chat(struct mock_answerer *a, const void *req_json, int n, const char *role,
                     size_t role_len, struct mock_choice *out, char *err, size_t errlen);
void mock_answer_release(struct mock_answerer *a);

/* What a chat completion response is rendered from. */
struct mock_chat {
  uint64_t body_hash;
  const char *model;
  size_t model_len;
  const struct mock_choice *choices;
  int n;
  int include_usage;
  int stream_chunks;
};

/* Render a chat.completion JSON object into b. */
int mock_render_completion(struct mock_buf *b, const struct mock_chat *c);

/* Called once per SSE event with its bytes ("data: ...\n\n"). */
typedef int (*mock_event_fn)(void *ud, const char *data, size_t len);

/* Render a stream as events; bad_event (badsse) inserts one non-JSON data line after the
 * role chunks. Uses scratch for each event. */
int mock_render_stream(struct mock_buf *scratch, const struct mock_chat *c, int bad_event,
                       mock_event_fn fn, void *ud);

/* OpenAI-shaped error body: {"error":{"message":..,"type":..,"param":null,"code":..}}. */
int mock_render_error(struct mock_buf *b, const char *message, const char *type, const char *code);

/* 64-bit FNV-1a, used for ids and for the request log. */
uint64_t mock_fnv1a(const void *p, size_t n);

/* ---- Server and connections (server.c, routes.c) ---------------------------------- */

#define MOCK_MAX_CHOICES 128
#define MOCK_KEEP_BUF (256 * 1024) /* larger per-connection buffers are freed when idle */

enum mock_conn_state {
  CONN_IDLE,     /* reading; waiting for (the rest of) a request */
  CONN_WAIT,     /* latency timer running; the response is ready */
  CONN_SENDING,  /* response being written, maybe paced by the timer */
  CONN_STALLED,  /* stall fault: nothing more will be sent until the client leaves */
  CONN_DRAINING, /* done; write side shut down, input discarded until EOF */
  CONN_CLOSED,
};

/* What happens once the planned bytes of a response are out. */
enum mock_after { AFTER_KEEP, AFTER_CLOSE, AFTER_STALL, AFTER_RESET };

struct mock_server;

struct mock_conn {
  uv_tcp_t tcp;
  uv_timer_t timer; /* latency, stream pacing, drain deadline (by state) */
  uv_write_t wreq;
  uv_write_t creq; /* "100 Continue" */
  uv_shutdown_t sreq;
  struct mock_server *srv;
  struct mock_conn *prev, *next;
  uint64_t id;
  int open_handles;
  enum mock_conn_state state;
  int reading, peer_eof, pumping, cont_writing, shutting;

  struct mreq req;
  struct mock_buf in; /* unparsed bytes from in_off on */
  size_t in_off;

  /* The response in flight: out[0..limit) is sent, paced at events[] when streaming. */
  struct mock_buf out;
  size_t sent, limit;
  size_t *events;
  size_t nevents, events_cap, ev_next;
  int paced, keep_alive, chunked;
  enum mock_after after;

  /* What the request log says about the request in flight. */
  int active;
  uint64_t seq, latency_ms, t0, body_hash;
  int status, stream;
  enum mock_fault fault;
  char method[16];
  char path[256];
};

struct mock_server {
  uv_loop_t loop;
  uv_tcp_t listener;
  uv_signal_t sigint, sigterm;
  uv_prepare_t flusher; /* flushes the request log once per loop turn */
  struct mock_config cfg;
  struct mock_answerer ans;
  FILE *log;
  int log_dirty;
  uint64_t rng, seq, next_conn_id;
  uint64_t t_start; /* uv_hrtime() when listening began: the log's t_ms counts from here */
  int nconns;
  struct mock_conn *conns;
  int stopping;
  struct mock_buf body, scratch, logline;
  struct mock_choice choices[MOCK_MAX_CHOICES];
  struct mock_rl *rl;   /* buckets and /stats counters (ratelimit.c) */
  char rbuf[64 * 1024]; /* every read lands here first; copied only if left unparsed */
};

/* Close the connection now (reset: RST instead of FIN); logs an unfinished request. */
void mock_conn_close(struct mock_conn *c, int reset);

/* Route the complete request at base and render its response into c->out (status,
 * limit, after, paced, fault, stream set); *latency gets the delay to apply first.
 * Returns 0 or UV_ENOMEM. */
int mock_route(struct mock_conn *c, const char *base, uint64_t *latency);

/* Render an OpenAI-shaped error response into c->out. Returns 0 or UV_ENOMEM. */
int mock_put_error(struct mock_conn *c, int status, const char *msg, const char *type,
                   const char *code, const char *extra);

/* Draw the fault and the latency of a chat request (same draws whatever the API, so the
 * outcomes of a seed do not depend on it), then apply the X-Mock-Fault and
 * X-Mock-Latency overrides; sets c->fault. Returns 0, or -1 with msg saying which
 * override header is malformed (the caller answers 400 in its API's shape). */
int mock_draw_fault(struct mock_conn *c, const char *base, uint64_t *latency,
                    enum mock_fault *fault, char *msg, size_t msglen);

/* Render a whole JSON response (body[0..len), extra headers or NULL) into c->out. */
int mock_put_json(struct mock_conn *c, int status, const char *body, size_t len, const char *extra);

/* ---- Rate limits and /stats (ratelimit.c) ------------------------------------------ */

enum mock_api { MOCK_API_OPENAI = 0, MOCK_API_ANTHROPIC };
#define MOCK_RL_THROTTLED 1

/* Allocate the limiter (buckets start full) in srv->rl; 0 or UV_ENOMEM. */
int mock_rl_init(struct mock_server *srv);
void mock_rl_free(struct mock_server *srv);

/* Charge the chat request at base to its key's buckets (--rpm, --tpm) and count it for
 * /stats. Returns 0 when admitted, MOCK_RL_THROTTLED when the 429 (in api's shape) is
 * already rendered into c->out, or UV_ENOMEM. Either way the response head gets the
 * rate-limit headers in api's spelling. */
int mock_rl_admit(struct mock_conn *c, const char *base, enum mock_api api);

/* Called by the head of every response: counts the outcome of an admitted request once
 * and appends its rate-limit headers to out. 0 or UV_ENOMEM. */
int mock_rl_on_head(struct mock_conn *c, int status, struct mock_buf *out);

/* Render the GET /stats JSON into c->out. 0 or UV_ENOMEM. */
int mock_rl_stats(struct mock_conn *c);

/* ---- Anthropic Messages API (messages.c) --------------------------------------------- */

/* Render an answer (JSON, or SSE when c->stream) in api's shape into c->out, with the
 * fault's damage applied (badjson, badsse, stall, truncate, sse_error). In routes.c. */
int mock_put_answer(struct mock_conn *c, const struct mock_chat *chat, enum mock_api api,
                    enum mock_fault fault);

/* POST /v1/messages: checks the x-api-key and anthropic-version headers, the rate limits
 * and the faults, then answers from the answer function. Returns 0 or UV_ENOMEM. */
int mock_handle_messages(struct mock_conn *c, const char *base, uint64_t *latency);

/* Anthropic-shaped error response ({"type":"error","error":{"type":..,"message":..}}). */
int mock_put_anthropic_error(struct mock_conn *c, int status, const char *type, const char *msg,
                             const char *extra);

/* A "message" object, and the event stream of one (bad_event as in mock_render_stream). */
int mock_render_message(struct mock_buf *b, const struct mock_chat *c);
int mock_render_message_stream(struct mock_buf *scratch, const struct mock_chat *c, int bad_event,
                               mock_event_fn fn, void *ud);
/* The overloaded_error event that ends a stream hit by the sse_error fault. */
int mock_render_message_error_event(struct mock_buf *scratch, mock_event_fn fn, void *ud);

/* Where piece j of k of a choice's text starts, never inside a UTF-8 sequence (answer.c). */
size_t mock_piece_start(const struct mock_choice *ch, int j, int k);

#endif

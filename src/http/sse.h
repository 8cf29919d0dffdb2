/* Incremental Server-Sent Events parser (WHATWG event-stream rules).
 * Fed arbitrary network chunks; calls back once per dispatched event. Pure C, no Lua,
 * safe to run inside a libcurl write callback. */
#ifndef ML_SSE_H
#define ML_SSE_H

#include <stddef.h>

/* One dispatched event. Pointers are valid only during the callback. `data` has the
 * trailing newline stripped and is NUL-terminated; `event` is "message" when the stream
 * gave no event name. */
struct sse_event {
  const char *event;
  size_t event_len;
  const char *data;
  size_t data_len;
  const char *id; /* last event id seen so far, "" if none */
};

/* Return 0 to continue, non-zero to stop parsing (sse_feed then returns SSE_EABORT).
 * The callback must not call sse_feed or sse_free on the parser that called it. */
typedef int (*sse_event_fn)(void *ud, const struct sse_event *ev);

enum {
  SSE_OK = 0,
  SSE_ETOOBIG = -1, /* a line or an event exceeded its limit */
  SSE_EABORT = -2,  /* the callback asked to stop */
  SSE_ENOMEM = -3,
};

struct sse_parser {
  sse_event_fn on_event;
  void *ud;
  size_t max_line;  /* default 1 MiB; may be changed after sse_init, 0 means default */
  size_t max_event; /* default 4 MiB of data; same rules */
  /* private state (retry_ms and events may be read) */
  char *line;
  size_t line_len, line_cap;
  char *data;
  size_t data_len, data_cap;
  char *event;
  size_t event_len, event_cap;
  char *id;
  size_t id_len, id_cap;
  int last_was_cr;
  int bom_checked;
  int bom_seen; /* bytes of a leading BOM matched so far, while !bom_checked */
  int in_event; /* a field line was seen since the last blank line */
  int failed;   /* 0 or the sticky SSE_E* code */
  long retry_ms; /* -1 until a valid retry field was seen */
  unsigned long long events;
};

/* Allocates nothing; buffers grow on first use. on_event may be NULL (events are counted). */
void sse_init(struct sse_parser *p, sse_event_fn on_event, void *ud);
/* Feed a chunk; returns SSE_OK or a negative SSE_E* code (sticky once failed). */
int sse_feed(struct sse_parser *p, const char *buf, size_t len);
/* Whether bytes of an unfinished event are buffered (used to detect truncated streams):
 * a partial line, or field lines not yet closed by a blank line. Comments alone do not
 * count. 0 once the parser has failed; the sticky error code is the report then. */
int sse_pending(const struct sse_parser *p);
/* Releases the buffers; the parser needs sse_init before reuse. Safe to call twice. */
void sse_free(struct sse_parser *p);
const char *sse_strerror(int code);

#endif

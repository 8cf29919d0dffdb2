/* Incremental Server-Sent Events parser following the WHATWG event-stream interpretation.
 * Written by hand because no packaged C library parses SSE incrementally with byte limits;
 * it runs inside libcurl write callbacks, so it never blocks and allocates only on use. */
#include "http/sse.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SSE_DEFAULT_MAX_LINE ((size_t)1 << 20)
#define SSE_DEFAULT_MAX_EVENT ((size_t)4 << 20)
/* Buffers that grew past this for one big line or event are released afterwards, so a
 * single large event does not pin megabytes in each of thousands of idle streams. */
#define SSE_KEEP_CAP ((size_t)64 << 10)
#define SSE_MIN_CAP ((size_t)512) /* one allocation for a typical chunk of an LLM stream */

static const unsigned char sse_bom[3] = {0xEF, 0xBB, 0xBF};

void sse_init(struct sse_parser *p, sse_event_fn on_event, void *ud) {
  memset(p, 0, sizeof *p);
  p->on_event = on_event;
  p->ud = ud;
  p->max_line = SSE_DEFAULT_MAX_LINE;
  p->max_event = SSE_DEFAULT_MAX_EVENT;
  p->retry_ms = -1;
}

void sse_free(struct sse_parser *p) {
  free(p->line);
  free(p->data);
  free(p->event);
  free(p->id);
  memset(p, 0, sizeof *p);
  p->retry_ms = -1;
}

const char *sse_strerror(int code) {
  switch (code) {
  case SSE_OK:
    return "success";
  case SSE_ETOOBIG:
    return "SSE line or event exceeds the configured limit";
  case SSE_EABORT:
    return "SSE parsing stopped by the event callback";
  case SSE_ENOMEM:
    return "out of memory while buffering an SSE stream";
  default:
    return "unknown SSE error";
  }
}

int sse_pending(const struct sse_parser *p) {
  /* After a failure the error is the report; what was buffered depends on chunking. */
  if (p->failed)
    return 0;
  /* A half-matched BOM counts: if the stream ends there, those bytes were content. */
  return p->line_len > 0 || p->in_event || (!p->bom_checked && p->bom_seen > 0);
}

static size_t sse_max_line(const struct sse_parser *p) {
  return p->max_line ? p->max_line : SSE_DEFAULT_MAX_LINE;
}

static size_t sse_max_event(const struct sse_parser *p) {
  return p->max_event ? p->max_event : SSE_DEFAULT_MAX_EVENT;
}

/* Make room for `need` bytes in *buf, growing geometrically so that byte-at-a-time
 * appends stay amortised O(1). Returns 0 or SSE_ENOMEM; *buf is untouched on failure. */
static int sse_reserve(char **buf, size_t *cap, size_t need) {
  if (need <= *cap)
    return 0;
  size_t ncap = *cap > SSE_MIN_CAP ? *cap : SSE_MIN_CAP;
  while (ncap < need) {
    if (ncap > SIZE_MAX / 2) {
      ncap = need;
      break;
    }
    ncap *= 2;
  }
  char *nbuf = realloc(*buf, ncap);
  if (nbuf == NULL)
    return SSE_ENOMEM;
  *buf = nbuf;
  *cap = ncap;
  return 0;
}

static void sse_release_if_big(char **buf, size_t *cap) {
  if (*cap > SSE_KEEP_CAP) {
    free(*buf);
    *buf = NULL;
    *cap = 0;
  }
}

static int sse_fail(struct sse_parser *p, int code) {
  p->failed = code;
  return code;
}

/* Store `v` as a NUL-terminated string in one of the small per-field buffers. */
static int sse_set_string(char **buf, size_t *len, size_t *cap, const char *v, size_t n) {
  if (sse_reserve(buf, cap, n + 1) != 0)
    return SSE_ENOMEM;
  if (n > 0)
    memcpy(*buf, v, n);
  (*buf)[n] = '\0';
  *len = n;
  return 0;
}

static int sse_dispatch(struct sse_parser *p) {
  if (p->data_len == 0) {
    /* Nothing to deliver: only the type is forgotten, as the spec says. */
    p->event_len = 0;
    return 0;
  }
  /* Every data line appended a '\n'; the last one becomes the terminator, so the
   * callback gets a NUL-terminated string without another allocation. */
  p->data_len--;
  p->data[p->data_len] = '\0';

  struct sse_event ev;
  if (p->event_len > 0) {
    ev.event = p->event;
    ev.event_len = p->event_len;
  } else {
    ev.event = "message";
    ev.event_len = sizeof "message" - 1;
  }
  ev.data = p->data;
  ev.data_len = p->data_len;
  ev.id = p->id != NULL ? p->id : "";

  p->events++;
  int stop = p->on_event != NULL ? p->on_event(p->ud, &ev) : 0;
  p->data_len = 0;
  p->event_len = 0;
  sse_release_if_big(&p->data, &p->data_cap);
  if (stop)
    return sse_fail(p, SSE_EABORT);
  return 0;
}

/* All ASCII digits, at least one; saturates rather than wrapping on absurd values. */
static void sse_set_retry(struct sse_parser *p, const char *v, size_t n) {
  if (n == 0)
    return;
  long ms = 0;
  for (size_t i = 0; i < n; i++) {
    if (v[i] < '0' || v[i] > '9')
      return;
  }
  for (size_t i = 0; i < n; i++) {
    int d = v[i] - '0';
    if (ms > (LONG_MAX - d) / 10) {
      ms = LONG_MAX;
      break;
    }
    ms = ms * 10 + d;
  }
  p->retry_ms = ms;
}

static int sse_field_is(const char *name, size_t n, const char *want) {
  size_t wn = strlen(want);
  return n == wn && memcmp(name, want, wn) == 0;
}

/* Interpret one complete line (terminator excluded). `line` may point into the caller's
 * chunk or into p->line; it is never p->data, p->event or p->id. */
static int sse_line(struct sse_parser *p, const char *line, size_t n) {
  if (n == 0) {
    p->in_event = 0;
    return sse_dispatch(p);
  }
  if (line[0] == ':')
    return 0;

  const char *colon = memchr(line, ':', n);
  const char *name = line;
  size_t name_len = n;
  const char *value = line + n;
  size_t value_len = 0;
  if (colon != NULL) {
    name_len = (size_t)(colon - line);
    value = colon + 1;
    value_len = n - name_len - 1;
    if (value_len > 0 && value[0] == ' ') {
      value++;
      value_len--;
    }
  }
  p->in_event = 1;

  if (sse_field_is(name, name_len, "data")) {
    size_t max = sse_max_event(p);
    /* The '\n' appended here is stripped at dispatch when it is the last one, so the
     * limit is on the bytes the callback will see. */
    if (value_len > max || p->data_len > max - value_len)
      return sse_fail(p, SSE_ETOOBIG);
    if (sse_reserve(&p->data, &p->data_cap, p->data_len + value_len + 1) != 0)
      return sse_fail(p, SSE_ENOMEM);
    if (value_len > 0)
      memcpy(p->data + p->data_len, value, value_len);
    p->data_len += value_len;
    p->data[p->data_len++] = '\n';
  } else if (sse_field_is(name, name_len, "event")) {
    if (sse_set_string(&p->event, &p->event_len, &p->event_cap, value, value_len) != 0)
      return sse_fail(p, SSE_ENOMEM);
  } else if (sse_field_is(name, name_len, "id")) {
    if (memchr(value, '\0', value_len) == NULL &&
        sse_set_string(&p->id, &p->id_len, &p->id_cap, value, value_len) != 0)
      return sse_fail(p, SSE_ENOMEM);
  } else if (sse_field_is(name, name_len, "retry")) {
    sse_set_retry(p, value, value_len);
  }
  /* Unknown fields are ignored, so providers can add new ones. */
  return 0;
}

/* Append the unterminated tail of a chunk to the line buffer. */
static int sse_hold(struct sse_parser *p, const char *s, size_t n) {
  if (n > sse_max_line(p) - p->line_len)
    return sse_fail(p, SSE_ETOOBIG);
  if (sse_reserve(&p->line, &p->line_cap, p->line_len + n) != 0)
    return sse_fail(p, SSE_ENOMEM);
  memcpy(p->line + p->line_len, s, n);
  p->line_len += n;
  return 0;
}

/* The index of the first CR or LF in buf[i..len), or len. memchr reads many bytes at a
 * time; CR is rare (servers end lines with LF), so it is looked for only before the LF. */
static size_t sse_line_end(const char *buf, size_t i, size_t len) {
  const char *lf = memchr(buf + i, '\n', len - i);
  size_t j = lf ? (size_t)(lf - buf) : len;
  const char *cr = memchr(buf + i, '\r', j - i);
  return cr ? (size_t)(cr - buf) : j;
}

/* Split a BOM-free chunk into lines. A line wholly inside the chunk is interpreted in
 * place; only a line that straddles chunks is copied, so each byte is scanned once. */
static int sse_lines(struct sse_parser *p, const char *buf, size_t len) {
  size_t i = 0;
  if (p->last_was_cr && len > 0) {
    /* The CR that ended the previous chunk already ended a line; this LF is its pair. */
    if (buf[0] == '\n')
      i = 1;
    p->last_was_cr = 0;
  }
  while (i < len) {
    size_t j = sse_line_end(buf, i, len);
    if (j == len)
      return sse_hold(p, buf + i, len - i);

    int rc;
    if (p->line_len > 0) {
      rc = sse_hold(p, buf + i, j - i);
      if (rc == 0)
        rc = sse_line(p, p->line, p->line_len);
      p->line_len = 0;
      sse_release_if_big(&p->line, &p->line_cap);
    } else if (j - i > sse_max_line(p)) {
      rc = sse_fail(p, SSE_ETOOBIG);
    } else {
      rc = sse_line(p, buf + i, j - i);
    }
    if (rc != 0)
      return rc;

    if (buf[j] == '\r') {
      if (j + 1 == len)
        p->last_was_cr = 1;
      else if (buf[j + 1] == '\n')
        j++;
    }
    i = j + 1;
  }
  return 0;
}

int sse_feed(struct sse_parser *p, const char *buf, size_t len) {
  if (p->failed)
    return p->failed;
  size_t i = 0;
  /* The BOM may arrive split over chunks, so match it byte by byte. On a mismatch the
   * bytes matched so far were content after all and are replayed as such. */
  while (!p->bom_checked && i < len) {
    if ((unsigned char)buf[i] == sse_bom[p->bom_seen]) {
      i++;
      if (++p->bom_seen == (int)sizeof sse_bom)
        p->bom_checked = 1;
      continue;
    }
    p->bom_checked = 1;
    if (p->bom_seen > 0) {
      int rc = sse_lines(p, (const char *)sse_bom, (size_t)p->bom_seen);
      if (rc != 0)
        return rc;
    }
  }
  if (i == len)
    return 0;
  return sse_lines(p, buf + i, len - i);
}

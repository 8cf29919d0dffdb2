/* Incremental HTTP/1.1 request parser (RFC 9112 subset) for the mock server.
 * Written by hand because the server needs only request lines, headers and Content-Length
 * bodies, and because rejecting hostile input precisely is the point of a test server. */
#include "mock/http_req.h"

#include <string.h>

/* RFC 9110 token characters: what a method or a header name may contain. */
static int is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
    return 1;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Header values: visible ASCII, blanks and obs-text; never NUL, CR, LF or other controls. */
static int is_value_char(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

static int lower(int c) { return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c; }

static int span_ieq(const char *p, size_t len, const char *lit) {
  size_t n = strlen(lit);
  if (len != n)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (lower((unsigned char)p[i]) != lower((unsigned char)lit[i]))
      return 0;
  return 1;
}

static struct mreq_span mkspan(size_t off, size_t len) {
  struct mreq_span s = {(uint32_t)off, (uint32_t)len};
  return s;
}

void mreq_init(struct mreq *r, size_t max_body) {
  memset(r, 0, sizeof *r);
  r->max_header = MREQ_DEFAULT_MAX_HEADER;
  r->max_body = max_body ? max_body : MREQ_DEFAULT_MAX_BODY;
}

void mreq_reset(struct mreq *r) {
  size_t max_header = r->max_header, max_body = r->max_body;
  /* Only the fixed part: clearing the whole header table per request would cost more than
   * parsing a typical request. */
  memset(r, 0, offsetof(struct mreq, headers));
  r->scan = r->line_start = r->start = r->header_len = 0;
  r->failed = 0;
  r->error = NULL;
  r->max_header = max_header;
  r->max_body = max_body;
}

static int fail(struct mreq *r, int code, const char *why) {
  r->failed = code;
  r->error = why;
  return code;
}

/* Line [b, e) without its line ending; returns the length with one trailing CR removed. */
static size_t strip_cr(const char *buf, size_t b, size_t e) {
  if (e > b && buf[e - 1] == '\r')
    e--;
  return e - b;
}

#define BAD_LINE "malformed request line (expected METHOD /path HTTP/1.1): "

/* METHOD SP request-target SP HTTP/1.x */
static int parse_request_line(struct mreq *r, const char *buf, size_t b, size_t len) {
  size_t i = b, end = b + len;
  while (i < end && is_tchar((unsigned char)buf[i]))
    i++;
  if (i == b || i >= end || buf[i] != ' ')
    return fail(r, MREQ_EBAD, BAD_LINE "bad method");
  r->method = mkspan(b, i - b);
  size_t t = ++i;
  while (i < end && (unsigned char)buf[i] > 0x20 && (unsigned char)buf[i] < 0x7f)
    i++;
  if (i == t || i >= end || buf[i] != ' ')
    return fail(r, MREQ_EBAD, BAD_LINE "bad target");
  r->target = mkspan(t, i - t);
  i++;
  if (end - i != 8 || memcmp(buf + i, "HTTP/", 5) != 0 || buf[i + 6] != '.' || buf[i + 5] < '0' ||
      buf[i + 5] > '9' || buf[i + 7] < '0' || buf[i + 7] > '9')
    return fail(r, MREQ_EBAD, BAD_LINE "bad version");
  if (buf[i + 5] != '1')
    return fail(r, MREQ_EVERSION, "only HTTP/1.0 and HTTP/1.1 are supported");
  r->version_minor = buf[i + 7] == '0' ? 0 : 1;
  return 0;
}

/* Content-Length = 1*DIGIT. Sets *too_big instead of overflowing. */
static int parse_length(const char *p, size_t len, size_t limit, size_t *out, int *too_big) {
  size_t v = 0;
  *too_big = 0;
  if (len == 0)
    return -1;
  for (size_t i = 0; i < len; i++) {
    if (p[i] < '0' || p[i] > '9')
      return -1;
    if (!*too_big) {
      v = v * 10 + (size_t)(p[i] - '0');
      if (v > limit)
        *too_big = 1;
    }
  }
  *out = v;
  return 0;
}

/* Walk a comma-separated token list (Connection, Transfer-Encoding) calling back with
 * each trimmed, non-empty element. Returns the bitwise OR of the callback results. */
static int each_token(const char *p, size_t len, int (*fn)(const char *, size_t)) {
  int acc = 0;
  size_t i = 0;
  while (i < len) {
    size_t b = i;
    while (i < len && p[i] != ',')
      i++;
    size_t e = i;
    while (b < e && (p[b] == ' ' || p[b] == '\t'))
      b++;
    while (e > b && (p[e - 1] == ' ' || p[e - 1] == '\t'))
      e--;
    if (e > b)
      acc |= fn(p + b, e - b);
    i++;
  }
  return acc;
}

enum { TOK_CLOSE = 1, TOK_KEEPALIVE = 2, TOK_CHUNKED = 4, TOK_OTHER = 8 };

static int connection_token(const char *p, size_t n) {
  if (span_ieq(p, n, "close"))
    return TOK_CLOSE;
  if (span_ieq(p, n, "keep-alive"))
    return TOK_KEEPALIVE;
  return 0;
}

static int coding_token(const char *p, size_t n) {
  return span_ieq(p, n, "chunked") ? TOK_CHUNKED : TOK_OTHER;
}

/* Parse the complete header block [r->start, r->header_len). */
static int parse_head(struct mreq *r, const char *buf) {
  size_t pos = r->start;
  const char *nl = memchr(buf + pos, '\n', r->header_len - pos);
  size_t eol = (size_t)(nl - buf);
  int rc = parse_request_line(r, buf, pos, strip_cr(buf, pos, eol));
  if (rc)
    return rc;
  pos = eol + 1;

  int conn = 0, coding = 0, have_length = 0, length_too_big = 0;
  size_t length = 0;
  for (;;) {
    nl = memchr(buf + pos, '\n', r->header_len - pos);
    eol = (size_t)(nl - buf);
    size_t len = strip_cr(buf, pos, eol);
    if (len == 0)
      break;
    const char *line = buf + pos;
    if (line[0] == ' ' || line[0] == '\t')
      return fail(r, MREQ_EBAD, "obsolete header line folding");
    size_t n = 0;
    while (n < len && is_tchar((unsigned char)line[n]))
      n++;
    if (n == 0 || n >= len || line[n] != ':')
      return fail(r, MREQ_EBAD, "malformed header name");
    size_t vb = n + 1, ve = len;
    while (vb < ve && (line[vb] == ' ' || line[vb] == '\t'))
      vb++;
    while (ve > vb && (line[ve - 1] == ' ' || line[ve - 1] == '\t'))
      ve--;
    for (size_t i = vb; i < ve; i++)
      if (!is_value_char((unsigned char)line[i]))
        return fail(r, MREQ_EBAD, "control character in a header value");
    if (r->nheaders == MREQ_MAX_HEADERS)
      return fail(r, MREQ_EHEADERS, "too many header fields");
    struct mreq_header *h = &r->headers[r->nheaders++];
    h->name = mkspan(pos, n);
    h->value = mkspan(pos + vb, ve - vb);

    const char *v = line + vb;
    size_t vlen = ve - vb;
    if (span_ieq(line, n, "content-length")) {
      size_t val = 0;
      int big = 0;
      /* Spans are 32-bit, so no body limit may exceed 2 GiB whatever the caller set. */
      size_t limit = r->max_body < (UINT32_MAX >> 1) ? r->max_body : (UINT32_MAX >> 1);
      if (parse_length(v, vlen, limit, &val, &big) != 0)
        return fail(r, MREQ_EBAD, "invalid Content-Length");
      if (have_length && (big != length_too_big || val != length))
        return fail(r, MREQ_EBAD, "conflicting Content-Length headers");
      have_length = 1;
      length = val;
      length_too_big = big;
    } else if (span_ieq(line, n, "transfer-encoding")) {
      coding |= each_token(v, vlen, coding_token);
      if (vlen == 0)
        coding |= TOK_OTHER;
    } else if (span_ieq(line, n, "connection")) {
      conn |= each_token(v, vlen, connection_token);
    } else if (span_ieq(line, n, "expect")) {
      r->expect_continue = span_ieq(v, vlen, "100-continue");
    }
    pos = eol + 1;
  }

  /* A transfer coding wins over Content-Length (RFC 9112 6.3), and we decode none. */
  if (coding & TOK_OTHER)
    return fail(r, MREQ_EUNSUPPORTED, "unsupported Transfer-Encoding");
  if (coding & TOK_CHUNKED)
    return fail(r, MREQ_ELENGTH, "chunked request bodies are not supported; send Content-Length");
  if (length_too_big)
    return fail(r, MREQ_ETOOLARGE, "request body larger than the server's limit");
  r->content_length = length;
  if (r->version_minor >= 1)
    r->keep_alive = !(conn & TOK_CLOSE);
  else
    r->keep_alive = (conn & TOK_KEEPALIVE) && !(conn & TOK_CLOSE);
  if (r->version_minor == 0)
    r->expect_continue = 0;
  r->headers_done = 1;
  return 0;
}

/* Look for the blank line that ends the header block, resuming where the last call
 * stopped. Returns 1 when found (r->header_len set), 0 when more bytes are needed. */
static int find_head_end(struct mreq *r, const char *buf, size_t len) {
  while (r->scan < len) {
    const char *nl = memchr(buf + r->scan, '\n', len - r->scan);
    if (nl == NULL) {
      r->scan = len;
      return 0;
    }
    size_t eol = (size_t)(nl - buf);
    size_t line_len = strip_cr(buf, r->line_start, eol);
    r->scan = eol + 1;
    if (line_len == 0) {
      if (r->line_start == r->start) {
        /* Blank lines before the request line are tolerated (RFC 9112 2.2). */
        r->start = r->line_start = eol + 1;
        continue;
      }
      r->header_len = eol + 1;
      return 1;
    }
    r->line_start = eol + 1;
  }
  return 0;
}

int mreq_parse(struct mreq *r, const char *buf, size_t len) {
  if (r->failed)
    return r->failed;
  if (!r->headers_done) {
    int found = find_head_end(r, buf, len);
    size_t seen = found ? r->header_len : len;
    if (seen > r->max_header || seen > UINT32_MAX)
      return fail(r, MREQ_EHEADERS, "request header block too large");
    if (!found)
      return MREQ_AGAIN;
    int rc = parse_head(r, buf);
    if (rc)
      return rc;
  }
  if (len - r->header_len < r->content_length)
    return MREQ_AGAIN;
  r->body = mkspan(r->header_len, r->content_length);
  r->total = r->header_len + r->content_length;
  return MREQ_DONE;
}

int mreq_header(const struct mreq *r, const char *buf, const char *name, const char **value,
                size_t *len) {
  for (unsigned i = 0; i < r->nheaders; i++) {
    const struct mreq_header *h = &r->headers[i];
    if (span_ieq(buf + h->name.off, h->name.len, name)) {
      *value = buf + h->value.off;
      *len = h->value.len;
      return 1;
    }
  }
  return 0;
}

const char *mreq_reason(int status) {
  switch (status) {
  case 100: return "Continue";
  case 200: return "OK";
  case 400: return "Bad Request";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 411: return "Length Required";
  case 413: return "Content Too Large";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 503: return "Service Unavailable";
  case 505: return "HTTP Version Not Supported";
  case 529: return "Site Overloaded"; /* not IANA-registered; what Anthropic's API sends */
  default: return "Unknown";
  }
}

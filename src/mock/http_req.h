/* Incremental HTTP/1.1 request parser for the mock server.
 * It is fed the bytes of one connection as they arrive and reports when a whole request
 * (request line, headers, Content-Length body) is present, or which 4xx/5xx it deserves. */
#ifndef ML_MOCK_HTTP_REQ_H
#define ML_MOCK_HTTP_REQ_H

#include <stddef.h>
#include <stdint.h>

#define MREQ_DEFAULT_MAX_HEADER (64 * 1024)
#define MREQ_DEFAULT_MAX_BODY (8 * 1024 * 1024)
#define MREQ_MAX_HEADERS 64

/* Results of mreq_parse. Errors are the negated HTTP status the client should get. */
enum {
  MREQ_AGAIN = 0,           /* incomplete: feed more bytes */
  MREQ_DONE = 1,            /* one whole request is present; see mreq.total */
  MREQ_EBAD = -400,         /* malformed request line, header or Content-Length */
  MREQ_ELENGTH = -411,      /* chunked request body: we need a Content-Length */
  MREQ_ETOOLARGE = -413,    /* Content-Length above max_body */
  MREQ_EHEADERS = -431,     /* header block above max_header, or too many headers */
  MREQ_EUNSUPPORTED = -501, /* a transfer coding other than chunked */
  MREQ_EVERSION = -505,     /* not HTTP/1.x */
};

/* A byte range of the request, as an offset from the request's first byte. Offsets (not
 * pointers) let the caller move or grow its buffer between calls. */
struct mreq_span {
  uint32_t off, len;
};

struct mreq_header {
  struct mreq_span name, value; /* value has surrounding blanks trimmed */
};

struct mreq {
  /* Limits; mreq_init sets the defaults, the caller may change them before parsing. */
  size_t max_header;
  size_t max_body;

  /* Results, valid once headers_done is set (body and total once MREQ_DONE). */
  int headers_done;
  int version_minor;   /* 0 or 1 (HTTP/1.2+ is treated as 1.1) */
  int keep_alive;      /* the connection may serve another request after this one */
  int expect_continue; /* HTTP/1.1 client waits for "100 Continue" before the body */
  struct mreq_span method, target, body;
  size_t content_length;
  size_t total; /* bytes of the whole request, to consume before the next one */
  unsigned nheaders;
  struct mreq_header headers[MREQ_MAX_HEADERS];
  const char *error; /* static text saying why the request was rejected */

  /* Private: where the header scan resumes, so split input costs O(n) overall. */
  size_t scan;
  size_t line_start;
  size_t start; /* first byte of the request line (blank lines before it are skipped) */
  size_t header_len;
  int failed;
};

/* Set defaults and clear all state. max_body 0 means MREQ_DEFAULT_MAX_BODY. */
void mreq_init(struct mreq *r, size_t max_body);

/* Forget the current request but keep the limits, for the next request on a connection. */
void mreq_reset(struct mreq *r);

/* Parse the bytes buf[0..len) which start at the request's first byte. Between calls the
 * caller may only append bytes (the buffer may move). Returns MREQ_AGAIN, MREQ_DONE or a
 * negative MREQ_E* code; an error is sticky until mreq_reset. Bytes after r->total belong
 * to the next (pipelined) request. */
int mreq_parse(struct mreq *r, const char *buf, size_t len);

/* Find the first header called name (case-insensitive). Returns 1 and sets value and len
 * (pointing into buf) when present, else 0. */
int mreq_header(const struct mreq *r, const char *buf, const char *name, const char **value,
                size_t *len);

/* Reason phrase for a status code ("Bad Request"); "Unknown" for codes it does not know. */
const char *mreq_reason(int status);

#endif

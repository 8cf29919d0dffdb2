/* OpenAI Chat Completions: response bodies, stream chunks and error bodies.
 * Models and servers vary (vLLM, llama.cpp, Ollama all speak dialects of this), so every
 * field is optional except the ones without which there is no answer. */
#include "llm/openai.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

static int text_append(struct llm_text *t, const char *p, size_t n) {
  if (t->len + n + 1 > t->cap) {
    size_t cap = t->cap ? t->cap : 256;
    while (cap < t->len + n + 1)
      cap *= 2;
    char *d = realloc(t->data, cap);
    if (d == NULL)
      return -1;
    t->data = d;
    t->cap = cap;
  }
  memcpy(t->data + t->len, p, n);
  t->len += n;
  t->data[t->len] = '\0';
  return 0;
}

void llm_response_init(struct llm_response *r, int nchoices_hint, int want_deltas) {
  memset(r, 0, sizeof *r);
  r->want_deltas = want_deltas;
  (void)nchoices_hint;
}

/* The texts of queued deltas live in blocks that never move (a delta's pointer stays
 * valid while more are queued behind it) and are reused once every delta is delivered:
 * no malloc and free per delta, of which a stream has hundreds. */
struct delta_block {
  struct delta_block *next;
  size_t used, cap;
  char data[];
};

#define DELTA_BLOCK_MIN 1024

static void delta_blocks_free(struct delta_block *b) {
  while (b) {
    struct delta_block *next = b->next;
    free(b);
    b = next;
  }
}

static void chunk_memo_free(struct chunk_memo *m);

void llm_response_free(struct llm_response *r) {
  for (int i = 0; i < r->nchoices; i++)
    free(r->choices[i].text.data);
  free(r->choices);
  free(r->deltas);
  delta_blocks_free(r->delta_blocks);
  chunk_memo_free(r->chunk_memo);
  memset(r, 0, sizeof *r);
}

void llm_response_compact_deltas(struct llm_response *r) {
  if (r->delta_head == 0)
    return;
  memmove(r->deltas, r->deltas + r->delta_head,
          (size_t)(r->ndeltas - r->delta_head) * sizeof *r->deltas);
  r->ndeltas -= r->delta_head;
  r->delta_head = 0;
  if (r->ndeltas == 0 && r->delta_blocks) { /* nothing points into the blocks: reuse one */
    delta_blocks_free(r->delta_blocks->next);
    r->delta_blocks->next = NULL;
    r->delta_blocks->used = 0;
  }
}

struct llm_choice *llm_response_choice(struct llm_response *r, int index) {
  if (index < 0 || index > 1024)
    return NULL;
  if (index >= r->nchoices) {
    struct llm_choice *c = realloc(r->choices, (size_t)(index + 1) * sizeof *c);
    if (c == NULL)
      return NULL;
    memset(c + r->nchoices, 0, (size_t)(index + 1 - r->nchoices) * sizeof *c);
    r->choices = c;
    r->nchoices = index + 1;
  }
  return &r->choices[index];
}

int llm_response_append(struct llm_response *r, int index, const char *p, size_t n) {
  struct llm_choice *c = llm_response_choice(r, index);
  return c ? text_append(&c->text, p, n) : -1;
}

static void copy_str(char *dst, size_t dstlen, const cJSON *v) {
  if (cJSON_IsString(v) && v->valuestring)
    snprintf(dst, dstlen, "%s", v->valuestring);
}

static void read_usage(struct llm_response *r, const cJSON *usage) {
  if (!cJSON_IsObject(usage))
    return;
  const cJSON *in = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens");
  const cJSON *out = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens");
  if (cJSON_IsNumber(in))
    r->input_tokens = (long)in->valuedouble;
  if (cJSON_IsNumber(out))
    r->output_tokens = (long)out->valuedouble;
  r->has_usage = cJSON_IsNumber(in) || cJSON_IsNumber(out);
}

void llm_response_json_error(struct llm_response *r, const char *what, const char *text,
                             size_t len) {
  const char *at = cJSON_GetErrorPtr();
  size_t off = at && at >= text && at <= text + len ? (size_t)(at - text) : 0;
  size_t show = len - off < 40 ? len - off : 40;
  char excerpt[48];
  size_t j = 0;
  for (size_t i = 0; i < show && j + 1 < sizeof excerpt; i++) {
    unsigned char c = (unsigned char)text[off + i];
    excerpt[j++] = c >= 32 && c < 127 ? (char)c : '.';
  }
  excerpt[j] = '\0';
  snprintf(r->error, sizeof r->error,
           "%s is not valid JSON (error at byte %zu of %zu, near \"%s\")", what, off, len, excerpt);
}

int openai_parse_body_cjson(struct llm_response *r, const char *body, size_t len) {
  cJSON *root = cJSON_ParseWithLength(body, len);
  if (root == NULL) {
    llm_response_json_error(r, "the response body", body, len);
    return -1;
  }
  int rc = -1;
  const cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
  if (!cJSON_IsArray(choices) || cJSON_GetArraySize(choices) == 0) {
    snprintf(r->error, sizeof r->error, "the response has no \"choices\" array");
    goto done;
  }
  int i = 0;
  const cJSON *ch;
  cJSON_ArrayForEach(ch, choices) {
    const cJSON *idx = cJSON_GetObjectItemCaseSensitive(ch, "index");
    int index = cJSON_IsNumber(idx) ? (int)idx->valuedouble : i;
    struct llm_choice *c = llm_response_choice(r, index);
    if (c == NULL) {
      snprintf(r->error, sizeof r->error, "choice index %d out of range", index);
      goto done;
    }
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(ch, "message");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
    if (cJSON_IsString(content) && content->valuestring)
      text_append(&c->text, content->valuestring, strlen(content->valuestring));
    else if (!cJSON_IsNull(content) && content != NULL) {
      snprintf(r->error, sizeof r->error, "choice %d: message.content is not a string", index);
      goto done;
    }
    if (c->text.data == NULL)
      text_append(&c->text, "", 0);
    copy_str(c->finish_reason, sizeof c->finish_reason,
             cJSON_GetObjectItemCaseSensitive(ch, "finish_reason"));
    i++;
  }
  read_usage(r, cJSON_GetObjectItemCaseSensitive(root, "usage"));
  copy_str(r->model, sizeof r->model, cJSON_GetObjectItemCaseSensitive(root, "model"));
  rc = 0;
done:
  cJSON_Delete(root);
  return rc;
}

int llm_response_queue_delta(struct llm_response *r, int index, const char *s, size_t n) {
  if (r->ndeltas == r->cap_deltas) {
    int cap = r->cap_deltas ? r->cap_deltas * 2 : 16;
    struct llm_delta *d = realloc(r->deltas, (size_t)cap * sizeof *d);
    if (d == NULL)
      return -1;
    r->deltas = d;
    r->cap_deltas = cap;
  }
  struct delta_block *b = r->delta_blocks;
  if (b == NULL || b->cap - b->used < n + 1) {
    size_t cap = n + 1 > DELTA_BLOCK_MIN ? n + 1 : DELTA_BLOCK_MIN;
    b = malloc(sizeof *b + cap);
    if (b == NULL)
      return -1;
    b->next = r->delta_blocks;
    b->used = 0;
    b->cap = cap;
    r->delta_blocks = b;
  }
  char *copy = b->data + b->used;
  b->used += n + 1;
  memcpy(copy, s, n);
  copy[n] = '\0';
  r->deltas[r->ndeltas++] = (struct llm_delta){index, copy, n};
  return 0;
}

int openai_stream_event_cjson(struct llm_response *r, const struct sse_event *ev) {
  if (ev->data_len >= 6 && strncmp(ev->data, "[DONE]", 6) == 0) {
    r->stream_done = 1;
    return 0;
  }
  if (r->stream_done)
    return 0; /* nothing after [DONE] matters */
  cJSON *root = cJSON_ParseWithLength(ev->data, ev->data_len);
  if (root == NULL) {
    llm_response_json_error(r, "a stream event", ev->data, ev->data_len);
    return -1;
  }
  int rc = 0;
  const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
  if (err != NULL) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(err, "message");
    copy_str(r->error_type, sizeof r->error_type, cJSON_GetObjectItemCaseSensitive(err, "type"));
    snprintf(r->error, sizeof r->error, "the server sent an error mid-stream: %s",
             cJSON_IsString(m) && m->valuestring ? m->valuestring : "(no message)");
    rc = -1;
    goto done;
  }
  copy_str(r->model, sizeof r->model, cJSON_GetObjectItemCaseSensitive(root, "model"));
  read_usage(r, cJSON_GetObjectItemCaseSensitive(root, "usage"));
  const cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
  const cJSON *ch;
  int pos = 0;
  cJSON_ArrayForEach(ch, choices) {
    const cJSON *idx = cJSON_GetObjectItemCaseSensitive(ch, "index");
    int index = cJSON_IsNumber(idx) ? (int)idx->valuedouble : pos;
    pos++;
    struct llm_choice *c = llm_response_choice(r, index);
    if (c == NULL) {
      snprintf(r->error, sizeof r->error, "stream choice index %d out of range", index);
      rc = -1;
      goto done;
    }
    if (c->text.data == NULL)
      text_append(&c->text, "", 0);
    const cJSON *delta = cJSON_GetObjectItemCaseSensitive(ch, "delta");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(delta, "content");
    if (cJSON_IsString(content) && content->valuestring && content->valuestring[0]) {
      size_t n = strlen(content->valuestring);
      if (text_append(&c->text, content->valuestring, n) != 0) {
        snprintf(r->error, sizeof r->error, "out of memory");
        rc = -1;
        goto done;
      }
      if (r->want_deltas) {
        if (llm_response_queue_delta(r, index, content->valuestring, n) != 0) {
          snprintf(r->error, sizeof r->error, "out of memory");
          rc = -1;
          goto done;
        }
        rc = 1;
      }
    }
    copy_str(c->finish_reason, sizeof c->finish_reason,
             cJSON_GetObjectItemCaseSensitive(ch, "finish_reason"));
  }
done:
  cJSON_Delete(root);
  return rc;
}

/* ---------------------------------------------------------------------------------- */
/* The fast path.
 *
 * Almost every answer is a well-formed object of a few hundred bytes, and building a
 * cJSON tree for it (a malloc per value, strtod per number, a lookup per field) costs
 * more than everything else llm.chat does with it. So the fields that matter are read
 * straight from the text first. The reader takes a subset of what cJSON takes: standard
 * JSON (raw control bytes in strings allowed, as cJSON allows them), whitespace of
 * space/tab/CR/LF only, keys without escapes, no \u0000 or surrogate escapes, no NUL in
 * the strings it reads, plain integers where it reads a number, at most FAST_DEPTH levels
 * and FAST_CHOICES choices. Within that subset it
 * gives what the cJSON code gives, field for field (the first of duplicate keys wins, as
 * with cJSON_GetObjectItemCaseSensitive; bytes after the top-level value are ignored, as
 * with cJSON_ParseWithLength). Outside it, it touches nothing and says so, and the cJSON
 * code runs: odd input keeps its old result and its old error message.
 * tests/unit/test_openai_fast.c holds the two side by side. */

#define FAST_DEPTH 32
#define FAST_CHOICES 16
#define FAST_MAX_DIGITS 15

enum { J_OK = 0, J_UNSURE = -1 };

struct jcur {
  const char *p, *end;
};

struct jstr {
  const char *s; /* raw bytes between the quotes */
  size_t n;
  int esc; /* holds escapes: decode before use */
  int nul; /* holds a NUL byte */
};

static inline void j_ws(struct jcur *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t'))
    c->p++;
}

static inline int j_peek(const struct jcur *c) {
  return c->p < c->end ? (unsigned char)*c->p : -1;
}

static int hex_digit(char ch) {
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return -1;
}

static unsigned hex4(const char *p) {
  return (unsigned)(hex_digit(p[0]) << 12 | hex_digit(p[1]) << 8 | hex_digit(p[2]) << 4 |
                    hex_digit(p[3]));
}

/* Bytes that stop the scan of a string: the quote, the backslash, NUL. */
static const unsigned char j_stop[256] = {[0] = 1, ['"'] = 1, ['\\'] = 1};

/* The length of the escape at p (a backslash), or 0 when cJSON might not take it as the
 * fast path reads it: unknown escapes, bad hex, \u0000 and surrogates. */
static size_t j_escape(const unsigned char *p, const unsigned char *end) {
  if (end - p < 2)
    return 0;
  switch (p[1]) {
  case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
    return 2;
  case 'u': {
    if (end - p < 6 || hex_digit((char)p[2]) < 0 || hex_digit((char)p[3]) < 0 ||
        hex_digit((char)p[4]) < 0 || hex_digit((char)p[5]) < 0)
      return 0;
    unsigned cp = hex4((const char *)p + 2);
    if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF))
      return 0;
    return 6;
  }
  default:
    return 0;
  }
}

/* Skip the string at c->p (its opening quote), whose bytes are not used: memchr finds the
 * quote and any backslash before it many bytes at a time. */
static int j_skip_string(struct jcur *c) {
  const unsigned char *p = (const unsigned char *)c->p + 1;
  const unsigned char *end = (const unsigned char *)c->end;
  for (;;) {
    const unsigned char *q = memchr(p, '"', (size_t)(end - p));
    if (q == NULL)
      return J_UNSURE;
    const unsigned char *bs = memchr(p, '\\', (size_t)(q - p));
    if (bs == NULL) {
      c->p = (const char *)q + 1;
      return J_OK;
    }
    size_t n = j_escape(bs, end);
    if (n == 0)
      return J_UNSURE;
    p = bs + n;
  }
}

/* The string at c->p (its opening quote). Raw control bytes are accepted, as cJSON
 * accepts them; a NUL is noted (a cJSON string would end there), which matters only for
 * the strings that are used, not skipped (j_used_string). */
static inline int j_string(struct jcur *c, struct jstr *out) {
  const unsigned char *p = (const unsigned char *)c->p + 1;
  const unsigned char *end = (const unsigned char *)c->end;
  out->s = (const char *)p;
  out->esc = 0;
  out->nul = 0;
  for (;;) {
    while (p < end && !j_stop[*p])
      p++;
    if (p >= end)
      return J_UNSURE;
    if (*p == '"') {
      out->n = (size_t)((const char *)p - out->s);
      c->p = (const char *)p + 1;
      return J_OK;
    }
    if (*p == 0) {
      out->nul = 1;
      p++;
      continue;
    }
    size_t n = j_escape(p, end);
    if (n == 0)
      return J_UNSURE;
    out->esc = 1;
    p += n;
  }
}

/* A string whose bytes are used: as j_string, and without NUL bytes. */
static inline int j_used_string(struct jcur *c, struct jstr *out) {
  if (j_string(c, out) != J_OK || out->nul)
    return J_UNSURE;
  return J_OK;
}

/* Decode a string j_string accepted into out, which holds at least s->n bytes (decoding
 * never lengthens). Returns the decoded length. */
static size_t j_decode(const struct jstr *s, char *out) {
  if (!s->esc) {
    memcpy(out, s->s, s->n);
    return s->n;
  }
  const char *p = s->s, *end = s->s + s->n;
  size_t o = 0;
  while (p < end) {
    if (*p != '\\') {
      out[o++] = *p++;
      continue;
    }
    char e = p[1];
    p += 2;
    switch (e) {
    case 'b': out[o++] = '\b'; break;
    case 'f': out[o++] = '\f'; break;
    case 'n': out[o++] = '\n'; break;
    case 'r': out[o++] = '\r'; break;
    case 't': out[o++] = '\t'; break;
    case 'u': {
      unsigned cp = hex4(p);
      p += 4;
      if (cp < 0x80) {
        out[o++] = (char)cp;
      } else if (cp < 0x800) {
        out[o++] = (char)(0xC0 | cp >> 6);
        out[o++] = (char)(0x80 | (cp & 0x3F));
      } else {
        out[o++] = (char)(0xE0 | cp >> 12);
        out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[o++] = (char)(0x80 | (cp & 0x3F));
      }
      break;
    }
    default: out[o++] = e; break; /* " \ / */
    }
  }
  return o;
}

/* Like copy_str: the decoded string, cut to fit dst. */
static void j_copy(const struct jstr *s, char *dst, size_t dstlen) {
  char small[256];
  char *tmp = s->n <= sizeof small ? small : malloc(s->n);
  if (tmp == NULL) { /* cannot decode: keep what fits of the raw bytes */
    size_t n = s->n < dstlen - 1 ? s->n : dstlen - 1;
    memcpy(dst, s->s, n);
    dst[n] = '\0';
    return;
  }
  size_t n = j_decode(s, tmp);
  if (n > dstlen - 1)
    n = dstlen - 1;
  memcpy(dst, tmp, n);
  dst[n] = '\0';
  if (tmp != small)
    free(tmp);
}

/* A number at c->p. J_OK only for a plain integer (-?digits, at most FAST_MAX_DIGITS,
 * no fraction or exponent), with its value in *v. */
static int j_int(struct jcur *c, long long *v) {
  const char *p = c->p;
  int neg = 0;
  if (p < c->end && *p == '-') {
    neg = 1;
    p++;
  }
  const char *d = p;
  long long x = 0;
  while (p < c->end && *p >= '0' && *p <= '9')
    x = x * 10 + (*p++ - '0');
  size_t nd = (size_t)(p - d);
  if (nd == 0 || nd > FAST_MAX_DIGITS || (nd > 1 && *d == '0'))
    return J_UNSURE;
  if (p < c->end && (*p == '.' || *p == 'e' || *p == 'E' || *p == '+' || *p == '-'))
    return J_UNSURE;
  *v = neg ? -x : x;
  c->p = p;
  return J_OK;
}

/* Skip a number by the JSON grammar (and cJSON's: it reads at most 63 bytes of one). */
static int j_skip_number(struct jcur *c) {
  const char *p = c->p, *end = c->end, *start = p;
  if (p < end && *p == '-')
    p++;
  if (p >= end || *p < '0' || *p > '9')
    return J_UNSURE;
  if (*p == '0')
    p++;
  else
    while (p < end && *p >= '0' && *p <= '9')
      p++;
  if (p < end && *p == '.') {
    p++;
    if (p >= end || *p < '0' || *p > '9')
      return J_UNSURE;
    while (p < end && *p >= '0' && *p <= '9')
      p++;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-'))
      p++;
    if (p >= end || *p < '0' || *p > '9')
      return J_UNSURE;
    while (p < end && *p >= '0' && *p <= '9')
      p++;
  }
  if (p - start > 32 || (p < end && (*p == '+' || *p == '-' || *p == '.' || *p == 'e' ||
                                     *p == 'E')))
    return J_UNSURE;
  c->p = p;
  return J_OK;
}

static int j_literal(struct jcur *c, const char *lit, size_t n) {
  if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
    return J_UNSURE;
  c->p += n;
  return J_OK;
}

/* Open an object or array at c->p; *empty tells {} and []. */
static inline int j_open(struct jcur *c, char open, char close, int *empty) {
  if (j_peek(c) != (unsigned char)open)
    return J_UNSURE;
  c->p++;
  j_ws(c);
  *empty = j_peek(c) == (unsigned char)close;
  if (*empty)
    c->p++;
  return J_OK;
}

/* After a member or element: 1 when a comma says another follows, 0 when the closer
 * ended the container, J_UNSURE otherwise. */
static inline int j_more(struct jcur *c, char close) {
  j_ws(c);
  int ch = j_peek(c);
  if (ch < 0)
    return J_UNSURE;
  c->p++;
  if (ch == ',') {
    j_ws(c);
    return 1;
  }
  return ch == (unsigned char)close ? 0 : J_UNSURE;
}

/* A member's key and colon; leaves c at the value. */
static inline int j_key(struct jcur *c, struct jstr *k) {
  if (j_peek(c) != '"' || j_used_string(c, k) != J_OK || k->esc)
    return J_UNSURE;
  j_ws(c);
  if (j_peek(c) != ':')
    return J_UNSURE;
  c->p++;
  j_ws(c);
  return J_OK;
}

static inline int key_is(const struct jstr *k, const char *lit, size_t n) {
  return k->n == n && memcmp(k->s, lit, n) == 0;
}

#define KEY_IS(k, lit) key_is(k, lit, sizeof lit - 1)

static int j_skip(struct jcur *c, int depth) {
  struct jstr s;
  int empty, more;
  if (depth > FAST_DEPTH)
    return J_UNSURE;
  switch (j_peek(c)) {
  case '"':
    return j_skip_string(c);
  case '{':
    if (j_open(c, '{', '}', &empty) != J_OK)
      return J_UNSURE;
    if (empty)
      return J_OK;
    do {
      if (j_key(c, &s) != J_OK || j_skip(c, depth + 1) != J_OK)
        return J_UNSURE;
    } while ((more = j_more(c, '}')) == 1);
    return more;
  case '[':
    if (j_open(c, '[', ']', &empty) != J_OK)
      return J_UNSURE;
    if (empty)
      return J_OK;
    do {
      if (j_skip(c, depth + 1) != J_OK)
        return J_UNSURE;
    } while ((more = j_more(c, ']')) == 1);
    return more;
  case 't':
    return j_literal(c, "true", 4);
  case 'f':
    return j_literal(c, "false", 5);
  case 'n':
    return j_literal(c, "null", 4);
  default:
    return j_skip_number(c);
  }
}

/* What one choice of a body or a stream chunk said. */
struct fast_choice {
  int index; /* its "index", or its position when it has none */
  int has_text;
  struct jstr text; /* message.content (body) or delta.content (chunk) */
  int has_finish;
  struct jstr finish;
};

/* The text object of a choice ("message" or "delta"): its first "content" when that is a
 * string. A body's null content is no text; any other type is for the cJSON code to
 * report. */
static int fast_text_object(struct jcur *c, struct fast_choice *fc, int strict, int depth) {
  int empty, more, seen = 0;
  struct jstr k;
  if (j_open(c, '{', '}', &empty) != J_OK)
    return J_UNSURE;
  if (empty)
    return J_OK;
  do {
    if (j_key(c, &k) != J_OK)
      return J_UNSURE;
    if (!seen && KEY_IS(&k, "content")) {
      seen = 1;
      int ch = j_peek(c);
      if (ch == '"') {
        if (j_used_string(c, &fc->text) != J_OK)
          return J_UNSURE;
        fc->has_text = 1;
        continue;
      }
      if (strict && ch != 'n')
        return J_UNSURE;
    }
    if (j_skip(c, depth + 1) != J_OK)
      return J_UNSURE;
  } while ((more = j_more(c, '}')) == 1);
  return more;
}

/* One element of "choices": an object, or the cJSON code decides. */
static int fast_choice(struct jcur *c, struct fast_choice *fc, int pos, const char *text_key,
                       int strict) {
  int empty, more, seen_index = 0, seen_text = 0, seen_finish = 0;
  struct jstr k;
  memset(fc, 0, sizeof *fc);
  fc->index = pos;
  if (j_open(c, '{', '}', &empty) != J_OK)
    return J_UNSURE;
  if (empty)
    return J_OK;
  do {
    if (j_key(c, &k) != J_OK)
      return J_UNSURE;
    int ch = j_peek(c);
    if (!seen_index && KEY_IS(&k, "index")) {
      seen_index = 1;
      if (ch == '-' || (ch >= '0' && ch <= '9')) {
        long long v;
        if (j_int(c, &v) != J_OK || v < 0 || v > 1024)
          return J_UNSURE; /* out of range: the cJSON code words the error */
        fc->index = (int)v;
        continue;
      }
    } else if (!seen_text && key_is(&k, text_key, strlen(text_key))) {
      seen_text = 1;
      if (ch == '{') {
        if (fast_text_object(c, fc, strict, 3) != J_OK)
          return J_UNSURE;
        continue;
      }
    } else if (!seen_finish && KEY_IS(&k, "finish_reason")) {
      seen_finish = 1;
      if (ch == '"') {
        if (j_used_string(c, &fc->finish) != J_OK)
          return J_UNSURE;
        fc->has_finish = 1;
        continue;
      }
    }
    if (j_skip(c, 3) != J_OK)
      return J_UNSURE;
  } while ((more = j_more(c, '}')) == 1);
  return more;
}

/* What a body or a chunk said at its top level. */
struct fast_doc {
  struct fast_choice choices[FAST_CHOICES];
  int nchoices;
  int choices_seen;   /* a "choices" member (the first one counts) */
  int choices_array;  /* ... that is an array */
  int usage_object;   /* the first "usage" is an object */
  int has_in, has_out;
  long long in, out;
  int has_model;
  struct jstr model;
  int error_seen; /* an "error" member, whatever its value */
};

static int fast_usage(struct jcur *c, struct fast_doc *d) {
  int empty, more, seen_in = 0, seen_out = 0;
  struct jstr k;
  if (j_open(c, '{', '}', &empty) != J_OK)
    return J_UNSURE;
  d->usage_object = 1;
  if (empty)
    return J_OK;
  do {
    if (j_key(c, &k) != J_OK)
      return J_UNSURE;
    int ch = j_peek(c);
    int isnum = ch == '-' || (ch >= '0' && ch <= '9');
    if (!seen_in && KEY_IS(&k, "prompt_tokens")) {
      seen_in = 1;
      if (isnum) {
        if (j_int(c, &d->in) != J_OK)
          return J_UNSURE;
        d->has_in = 1;
        continue;
      }
    } else if (!seen_out && KEY_IS(&k, "completion_tokens")) {
      seen_out = 1;
      if (isnum) {
        if (j_int(c, &d->out) != J_OK)
          return J_UNSURE;
        d->has_out = 1;
        continue;
      }
    }
    if (j_skip(c, 2) != J_OK)
      return J_UNSURE;
  } while ((more = j_more(c, '}')) == 1);
  return more;
}

/* The parse of the start of a stream chunk, up to its "choices" key. A stream repeats the
 * same id, object, created, model and fingerprint in every chunk, so when the next chunk
 * starts with the same bytes its parse up to there is the same, and only the rest is
 * read: the same bytes, the same result, half the work. */
struct chunk_memo {
  size_t len; /* bytes before the "choices" key */
  int seen_model, has_model, model_esc, seen_usage, usage_object, has_in, has_out, error_seen;
  size_t model_off, model_n;
  long long in, out;
  /* The template: the last chunk read whole, around its one text. Most chunks of a stream
   * repeat the previous one's bytes but for the text ({"index":0,"delta":{"content":"
   * before it, "},"finish_reason":null}]} after it); when both sides match byte for byte,
   * the parse is the template's with the new text, and only the text is scanned. */
  struct chunk_tmpl *tmpl;
  char bytes[];
};

struct chunk_tmpl {
  size_t mid_len;  /* from the "choices" key to the text's opening quote, inclusive */
  size_t tail_len; /* from the text's closing quote, inclusive, to the end of the chunk */
  int index, has_finish, finish_esc;
  size_t finish_from_end, finish_n; /* the finish reason lies in the tail */
  int usage_object, has_in, has_out, error_seen;
  long long in, out;
  char bytes[]; /* mid, then tail */
};

static void chunk_memo_free(struct chunk_memo *m) {
  if (m) {
    free(m->tmpl);
    free(m);
  }
}

#define MEMO_MAX 1024

struct doc_state {
  int seen_model, seen_usage;
  int memo_ok; /* the memo holds this text's first bytes (matched, or just made from them) */
};

/* The members of a body's or chunk's top-level object, from c (at a key) to its end. */
static int fast_members(struct jcur *c, struct fast_doc *d, struct doc_state *st,
                        const char *text, const char *text_key, int strict,
                        struct chunk_memo **memo) {
  int more;
  struct jstr k;
  do {
    const char *key_at = c->p;
    if (j_key(c, &k) != J_OK)
      return J_UNSURE;
    int ch = j_peek(c);
    if (!d->choices_seen && KEY_IS(&k, "choices")) {
      size_t n = (size_t)(key_at - text);
      if (memo && !st->memo_ok && n <= MEMO_MAX && *memo != NULL && (*memo)->len == n &&
          memcmp((*memo)->bytes, text, n) == 0) {
        st->memo_ok = 1; /* the memo was made from this start */
      } else if (memo && !st->memo_ok && n <= MEMO_MAX) {
        struct chunk_memo *m = malloc(sizeof *m + n);
        if (m) {
          m->len = n;
          m->seen_model = st->seen_model;
          m->has_model = d->has_model;
          m->model_esc = d->model.esc;
          m->model_off = d->has_model ? (size_t)(d->model.s - text) : 0;
          m->model_n = d->has_model ? d->model.n : 0;
          m->seen_usage = st->seen_usage;
          m->usage_object = d->usage_object;
          m->has_in = d->has_in;
          m->has_out = d->has_out;
          m->in = d->in;
          m->out = d->out;
          m->error_seen = d->error_seen;
          m->tmpl = NULL;
          memcpy(m->bytes, text, n);
          chunk_memo_free(*memo);
          *memo = m;
          st->memo_ok = 1;
        }
      }
      d->choices_seen = 1;
      if (ch == '[') {
        int aempty, amore;
        d->choices_array = 1;
        if (j_open(c, '[', ']', &aempty) != J_OK)
          return J_UNSURE;
        if (aempty)
          continue;
        do {
          if (d->nchoices == FAST_CHOICES ||
              fast_choice(c, &d->choices[d->nchoices], d->nchoices, text_key, strict) != J_OK)
            return J_UNSURE;
          d->nchoices++;
        } while ((amore = j_more(c, ']')) == 1);
        if (amore != 0)
          return J_UNSURE;
        continue;
      }
      if (ch == '{')
        return J_UNSURE; /* cJSON would walk an object's members as choices */
    } else if (!st->seen_model && KEY_IS(&k, "model")) {
      st->seen_model = 1;
      if (ch == '"') {
        if (j_used_string(c, &d->model) != J_OK)
          return J_UNSURE;
        d->has_model = 1;
        continue;
      }
    } else if (!st->seen_usage && KEY_IS(&k, "usage")) {
      st->seen_usage = 1;
      if (ch == '{') {
        if (fast_usage(c, d) != J_OK)
          return J_UNSURE;
        continue;
      }
    } else if (KEY_IS(&k, "error")) {
      d->error_seen = 1;
    }
    if (j_skip(c, 1) != J_OK)
      return J_UNSURE;
  } while ((more = j_more(c, '}')) == 1);
  return more;
}

/* Keep a chunk just read whole (text[0..len), its parse in d) as the template, when it is
 * one choice with a text, its start is the memo's and everything its parse took from
 * after the text lies in the tail (a "model" after "choices" does not). */
static void tmpl_record(struct chunk_memo *m, const struct doc_state *st,
                        const struct fast_doc *d, const char *text, size_t len) {
  if (m == NULL || !st->memo_ok || d->nchoices != 1 || !d->choices_array ||
      !d->choices[0].has_text)
    return;
  const struct fast_choice *fc = &d->choices[0];
  const char *open = fc->text.s - 1, *close = fc->text.s + fc->text.n;
  if (m->len >= len || open < text + m->len)
    return;
  if (d->has_model && d->model.s + d->model.n > text + m->len)
    return;
  if (fc->has_finish && fc->finish.s < close)
    return;
  size_t mid = (size_t)(open + 1 - (text + m->len)), tail = (size_t)(text + len - close);
  struct chunk_tmpl *t = m->tmpl;
  if (t == NULL || t->mid_len + t->tail_len < mid + tail) {
    free(m->tmpl);
    m->tmpl = t = malloc(sizeof *t + mid + tail);
    if (t == NULL)
      return;
  }
  t->mid_len = mid;
  t->tail_len = tail;
  memcpy(t->bytes, text + m->len, mid);
  memcpy(t->bytes + mid, close, tail);
  t->index = fc->index;
  t->has_finish = fc->has_finish;
  t->finish_esc = fc->has_finish ? fc->finish.esc : 0;
  t->finish_from_end = fc->has_finish ? (size_t)(text + len - fc->finish.s) : 0;
  t->finish_n = fc->has_finish ? fc->finish.n : 0;
  t->usage_object = d->usage_object;
  t->has_in = d->has_in;
  t->has_out = d->has_out;
  t->in = d->in;
  t->out = d->out;
  t->error_seen = d->error_seen;
}

/* A chunk whose start matched the memo: when the bytes around its text are the
 * template's, fill d as the whole parse would and say so (1); else 0, d untouched past
 * what the memo set. */
static int tmpl_apply(const struct chunk_memo *m, struct fast_doc *d, const char *text,
                      size_t len) {
  const struct chunk_tmpl *t = m->tmpl;
  if (len < m->len + t->mid_len + t->tail_len ||
      memcmp(text + m->len, t->bytes, t->mid_len) != 0)
    return 0;
  struct jcur c = {text + m->len + t->mid_len - 1, text + len};
  struct jstr s;
  if (j_used_string(&c, &s) != J_OK)
    return 0;
  const char *close = c.p - 1;
  if ((size_t)(text + len - close) != t->tail_len ||
      memcmp(close, t->bytes + t->mid_len, t->tail_len) != 0)
    return 0;
  struct fast_choice *fc = &d->choices[0];
  memset(fc, 0, sizeof *fc);
  fc->index = t->index;
  fc->has_text = 1;
  fc->text = s;
  if (t->has_finish) {
    fc->has_finish = 1;
    fc->finish.s = text + len - t->finish_from_end;
    fc->finish.n = t->finish_n;
    fc->finish.esc = t->finish_esc;
  }
  d->nchoices = 1;
  d->choices_seen = d->choices_array = 1;
  d->usage_object = t->usage_object;
  d->has_in = t->has_in;
  d->has_out = t->has_out;
  d->in = t->in;
  d->out = t->out;
  d->error_seen = t->error_seen;
  return 1;
}

/* Read a body (text_key "message", strict, no memo) or a chunk (text_key "delta", with
 * the stream's memo). */
static int fast_doc(struct fast_doc *d, const char *text, size_t len, const char *text_key,
                    int strict, struct chunk_memo **memo) {
  struct jcur c = {text, text + len};
  struct doc_state st = {0, 0, 0};
  int empty;
  d->nchoices = d->choices_seen = d->choices_array = d->usage_object = 0;
  d->has_in = d->has_out = d->has_model = d->error_seen = 0;
  d->in = d->out = 0;
  const struct chunk_memo *m = memo ? *memo : NULL;
  if (m && len > m->len && memcmp(text, m->bytes, m->len) == 0) {
    st.seen_model = m->seen_model;
    st.seen_usage = m->seen_usage;
    d->has_model = m->has_model;
    d->model.s = text + m->model_off;
    d->model.n = m->model_n;
    d->model.esc = m->model_esc;
    d->model.nul = 0;
    d->usage_object = m->usage_object;
    d->has_in = m->has_in;
    d->has_out = m->has_out;
    d->in = m->in;
    d->out = m->out;
    d->error_seen = m->error_seen;
    if (m->tmpl && tmpl_apply(m, d, text, len))
      return J_OK;
    st.memo_ok = 1;
    c.p = text + m->len;
    if (fast_members(&c, d, &st, text, text_key, strict, memo) != J_OK)
      return J_UNSURE;
    tmpl_record(*memo, &st, d, text, len);
    return J_OK;
  }
  j_ws(&c);
  if (j_open(&c, '{', '}', &empty) != J_OK)
    return J_UNSURE;
  if (empty)
    return J_OK;
  if (fast_members(&c, d, &st, text, text_key, strict, memo) != J_OK)
    return J_UNSURE;
  if (memo)
    tmpl_record(*memo, &st, d, text, len);
  return J_OK;
}

/* Append a decoded string to a choice's text. */
static int text_append_jstr(struct llm_text *t, const struct jstr *s) {
  if (!s->esc)
    return text_append(t, s->s, s->n);
  if (text_append(t, s->s, s->n) != 0) /* room for the raw bytes, then decode over them */
    return -1;
  t->len -= s->n;
  t->len += j_decode(s, t->data + t->len);
  t->data[t->len] = '\0';
  return 0;
}

/* 1 when the fast path read the body into r, 0 when the cJSON code must (r untouched). */
static int fast_parse_body(struct llm_response *r, const char *body, size_t len, int *rc) {
  struct fast_doc d;
  if (fast_doc(&d, body, len, "message", 1, NULL) != J_OK || !d.choices_array ||
      d.nchoices == 0)
    return 0;
  for (int i = 0; i < d.nchoices; i++) {
    struct fast_choice *fc = &d.choices[i];
    struct llm_choice *c = llm_response_choice(r, fc->index);
    if (c == NULL) {
      snprintf(r->error, sizeof r->error, "choice index %d out of range", fc->index);
      *rc = -1;
      return 1;
    }
    if (fc->has_text)
      text_append_jstr(&c->text, &fc->text);
    if (c->text.data == NULL)
      text_append(&c->text, "", 0);
    if (fc->has_finish)
      j_copy(&fc->finish, c->finish_reason, sizeof c->finish_reason);
  }
  if (d.usage_object) {
    if (d.has_in)
      r->input_tokens = (long)d.in;
    if (d.has_out)
      r->output_tokens = (long)d.out;
    r->has_usage = d.has_in || d.has_out;
  }
  if (d.has_model)
    j_copy(&d.model, r->model, sizeof r->model);
  *rc = 0;
  return 1;
}

/* The same for one stream chunk: 1 when handled (*rc as openai_stream_event returns). */
static int fast_stream_event(struct llm_response *r, const char *data, size_t len, int *rc) {
  struct fast_doc d;
  if (fast_doc(&d, data, len, "delta", 0, &r->chunk_memo) != J_OK || d.error_seen)
    return 0;
  if (d.has_model)
    j_copy(&d.model, r->model, sizeof r->model);
  if (d.usage_object) {
    if (d.has_in)
      r->input_tokens = (long)d.in;
    if (d.has_out)
      r->output_tokens = (long)d.out;
    r->has_usage = d.has_in || d.has_out;
  }
  *rc = 0;
  for (int i = 0; i < d.nchoices; i++) {
    struct fast_choice *fc = &d.choices[i];
    struct llm_choice *c = llm_response_choice(r, fc->index);
    if (c == NULL) {
      snprintf(r->error, sizeof r->error, "stream choice index %d out of range", fc->index);
      *rc = -1;
      return 1;
    }
    if (c->text.data == NULL)
      text_append(&c->text, "", 0);
    if (fc->has_text && fc->text.n > 0) {
      size_t before = c->text.len;
      if (text_append_jstr(&c->text, &fc->text) != 0) {
        snprintf(r->error, sizeof r->error, "out of memory");
        *rc = -1;
        return 1;
      }
      if (r->want_deltas) {
        if (llm_response_queue_delta(r, fc->index, c->text.data + before,
                                     c->text.len - before) != 0) {
          snprintf(r->error, sizeof r->error, "out of memory");
          *rc = -1;
          return 1;
        }
        *rc = 1;
      }
    }
    if (fc->has_finish)
      j_copy(&fc->finish, c->finish_reason, sizeof c->finish_reason);
  }
  return 1;
}

int openai_parse_body(struct llm_response *r, const char *body, size_t len) {
  int rc;
  if (fast_parse_body(r, body, len, &rc))
    return rc;
  return openai_parse_body_cjson(r, body, len);
}

int openai_stream_event(struct llm_response *r, const struct sse_event *ev) {
  if (ev->data_len >= 6 && strncmp(ev->data, "[DONE]", 6) == 0) {
    r->stream_done = 1;
    return 0;
  }
  if (r->stream_done)
    return 0; /* nothing after [DONE] matters */
  int rc;
  if (fast_stream_event(r, ev->data, ev->data_len, &rc))
    return rc;
  return openai_stream_event_cjson(r, ev);
}

void openai_error_message(const char *body, size_t len, char *out, size_t outlen) {
  out[0] = '\0';
  if (body == NULL || len == 0) {
    snprintf(out, outlen, "(empty response body)");
    return;
  }
  cJSON *root = cJSON_ParseWithLength(body, len);
  if (root) {
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
    const cJSON *m = cJSON_IsObject(err) ? cJSON_GetObjectItemCaseSensitive(err, "message") : err;
    if (cJSON_IsString(m) && m->valuestring)
      snprintf(out, outlen, "%s", m->valuestring);
    cJSON_Delete(root);
    if (out[0])
      return;
  }
  size_t j = 0;
  for (size_t i = 0; i < len && j + 4 < outlen && i < 200; i++) {
    unsigned char c = (unsigned char)body[i];
    out[j++] = c >= 32 && c < 127 ? (char)c : ' ';
  }
  out[j] = '\0';
}

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

void llm_response_free(struct llm_response *r) {
  for (int i = 0; i < r->nchoices; i++)
    free(r->choices[i].text.data);
  free(r->choices);
  for (int i = r->delta_head; i < r->ndeltas; i++)
    free(r->deltas[i].text);
  free(r->deltas);
  memset(r, 0, sizeof *r);
}

void llm_response_compact_deltas(struct llm_response *r) {
  if (r->delta_head == 0)
    return;
  memmove(r->deltas, r->deltas + r->delta_head,
          (size_t)(r->ndeltas - r->delta_head) * sizeof *r->deltas);
  r->ndeltas -= r->delta_head;
  r->delta_head = 0;
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

int openai_parse_body(struct llm_response *r, const char *body, size_t len) {
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
  char *copy = malloc(n + 1);
  if (copy == NULL)
    return -1;
  memcpy(copy, s, n);
  copy[n] = '\0';
  r->deltas[r->ndeltas++] = (struct llm_delta){index, copy, n};
  return 0;
}

int openai_stream_event(struct llm_response *r, const struct sse_event *ev) {
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

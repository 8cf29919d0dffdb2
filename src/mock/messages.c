/* The mock server speaking the Anthropic Messages API (POST /v1/messages): the same answer
 * function, latency and faults as chat completions, with Anthropic's headers, body, event
 * stream and error shapes, so moonloop's Anthropic client can be tested offline. */
#include "mock/server.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

/* ---- Rendering ------------------------------------------------------------------------ */

static int render_error(struct mock_buf *b, const char *type, const char *message) {
  int rc = mock_buf_adds(b, "{\"type\":\"error\",\"error\":{\"type\":");
  rc = rc ? rc : mock_buf_json_str(b, type, strlen(type));
  rc = rc ? rc : mock_buf_adds(b, ",\"message\":");
  rc = rc ? rc : mock_buf_json_str(b, message, strlen(message));
  return rc ? rc : mock_buf_adds(b, "}}");
}

int mock_put_anthropic_error(struct mock_conn *c, int status, const char *type, const char *msg,
                             const char *extra) {
  struct mock_buf *b = &c->srv->body;
  b->len = 0;
  int rc = render_error(b, type, msg);
  return rc ? rc : mock_put_json(c, status, b->data, b->len, extra);
}

/* The answer function speaks OpenAI finish reasons; a Messages client expects these. */
static int stop_reason_json(struct mock_buf *b, const struct mock_choice *ch) {
  static const char *const map[][2] = {
      {"stop", "end_turn"}, {"length", "max_tokens"}, {"tool_calls", "tool_use"}};
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
    if (ch->finish_len == strlen(map[i][0]) &&
        memcmp(ch->finish_reason, map[i][0], ch->finish_len) == 0)
      return mock_buf_json_str(b, map[i][1], strlen(map[i][1]));
  }
  return mock_buf_json_str(b, ch->finish_reason, ch->finish_len);
}

/* The fields a message object starts with, up to and including "model". */
static int message_head(struct mock_buf *b, const struct mock_chat *c) {
  int rc =
      mock_buf_printf(b,
                      "{\"id\":\"msg_mock%016llx\",\"type\":\"message\",\"role\":\"assistant\","
                      "\"model\":",
                      (unsigned long long)c->body_hash);
  return rc ? rc : mock_buf_json_str(b, c->model, c->model_len);
}

int mock_render_message(struct mock_buf *b, const struct mock_chat *c) {
  const struct mock_choice *ch = &c->choices[0];
  int rc = message_head(b, c);
  rc = rc ? rc : mock_buf_adds(b, ",\"content\":[{\"type\":\"text\",\"text\":");
  rc = rc ? rc : mock_buf_json_str(b, ch->text, ch->text_len);
  rc = rc ? rc : mock_buf_adds(b, "}],\"stop_reason\":");
  rc = rc ? rc : stop_reason_json(b, ch);
  rc = rc ? rc
          : mock_buf_printf(b,
                            ",\"stop_sequence\":null,\"usage\":{\"input_tokens\":%lld,"
                            "\"output_tokens\":%lld}}",
                            ch->input_tokens, ch->output_tokens);
  return rc;
}

/* Start an event in s: "event: NAME\ndata: ". */
static int event_start(struct mock_buf *s, const char *name) {
  s->len = 0;
  return mock_buf_printf(s, "event: %s\ndata: ", name);
}

/* Finish the event in s (tail closes its JSON) and hand it over. */
static int event_end(struct mock_buf *s, const char *tail, mock_event_fn fn, void *ud) {
  int rc = mock_buf_adds(s, tail);
  rc = rc ? rc : mock_buf_adds(s, "\n\n");
  return rc ? rc : fn(ud, s->data, s->len);
}

/* A fixed event: name and its whole JSON. */
static int event_fixed(struct mock_buf *s, const char *name, const char *json, mock_event_fn fn,
                       void *ud) {
  int rc = event_start(s, name);
  return rc ? rc : event_end(s, json, fn, ud);
}

int mock_render_message_stream(struct mock_buf *s, const struct mock_chat *c, int bad_event,
                               mock_event_fn fn, void *ud) {
  const struct mock_choice *ch = &c->choices[0];
  int rc = event_start(s, "message_start");
  rc = rc ? rc : mock_buf_adds(s, "{\"type\":\"message_start\",\"message\":");
  rc = rc ? rc : message_head(s, c);
  rc = rc ? rc
          : mock_buf_printf(s,
                            ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,"
                            "\"usage\":{\"input_tokens\":%lld,\"output_tokens\":1}}",
                            ch->input_tokens);
  rc = rc ? rc : event_end(s, "}", fn, ud);
  rc = rc ? rc
          : event_fixed(s, "content_block_start",
                        "{\"type\":\"content_block_start\",\"index\":0,"
                        "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}",
                        fn, ud);
  if (bad_event && rc == 0) {
    /* A data line cut off inside a string: the framing is fine, the JSON is not. */
    rc = event_start(s, "content_block_delta");
    rc = rc ? rc
            : event_end(s,
                        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
                        "\"text_delta\",\"text\":\"unterminated",
                        fn, ud);
  }
  int k = c->stream_chunks > 0 ? c->stream_chunks : 1;
  for (int j = 0; j < k && rc == 0; j++) {
    size_t b = mock_piece_start(ch, j, k), e = mock_piece_start(ch, j + 1, k);
    if (e > b) {
      rc = event_start(s, "content_block_delta");
      rc = rc ? rc
              : mock_buf_adds(s, "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{"
                                 "\"type\":\"text_delta\",\"text\":");
      rc = rc ? rc : mock_buf_json_str(s, ch->text + b, e - b);
      rc = rc ? rc : event_end(s, "}}", fn, ud);
    }
    /* Real streams carry keep-alive pings anywhere; clients must skip them. */
    if (j == (k - 1) / 2 && rc == 0)
      rc = event_fixed(s, "ping", "{\"type\": \"ping\"}", fn, ud);
  }
  rc = rc ? rc
          : event_fixed(s, "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}",
                        fn, ud);
  rc = rc ? rc : event_start(s, "message_delta");
  rc = rc ? rc : mock_buf_adds(s, "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":");
  rc = rc ? rc : stop_reason_json(s, ch);
  rc = rc ? rc
          : mock_buf_printf(s, ",\"stop_sequence\":null},\"usage\":{\"output_tokens\":%lld}",
                            ch->output_tokens);
  rc = rc ? rc : event_end(s, "}", fn, ud);
  rc = rc ? rc : event_fixed(s, "message_stop", "{\"type\":\"message_stop\"}", fn, ud);
  return rc;
}

int mock_render_message_error_event(struct mock_buf *s, mock_event_fn fn, void *ud) {
  int rc = event_start(s, "error");
  rc = rc ? rc : render_error(s, "overloaded_error", "Overloaded (mock fault)");
  return rc ? rc : event_end(s, "", fn, ud);
}

/* ---- Requests ------------------------------------------------------------------------- */

/* The text of a Messages "system" field: a string, or the text of a list of text blocks.
 * Returns a new cJSON string, or NULL when the field has another shape. */
static cJSON *system_text(const cJSON *system) {
  if (cJSON_IsString(system))
    return cJSON_CreateString(system->valuestring);
  if (!cJSON_IsArray(system))
    return NULL;
  size_t total = 1;
  const cJSON *b;
  cJSON_ArrayForEach(b, system) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(b, "text");
    if (!cJSON_IsString(t))
      return NULL;
    total += strlen(t->valuestring) + 1;
  }
  char *joined = malloc(total);
  if (joined == NULL)
    return NULL;
  size_t n = 0;
  cJSON_ArrayForEach(b, system) {
    const char *t = cJSON_GetObjectItemCaseSensitive(b, "text")->valuestring;
    size_t len = strlen(t);
    if (n > 0)
      joined[n++] = '\n';
    memcpy(joined + n, t, len);
    n += len;
  }
  joined[n] = '\0';
  cJSON *s = cJSON_CreateString(joined);
  free(joined);
  return s;
}

/* The OpenAI-style request table the answer function expects, built from a Messages
 * body: system becomes the first message, stop_sequences becomes stop. Returns NULL with
 * the 400 message in bad when the body is not a valid Messages request. */
static cJSON *as_chat_request(const cJSON *j, const char **bad) {
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
  const cJSON *messages = cJSON_GetObjectItemCaseSensitive(j, "messages");
  const cJSON *max_tokens = cJSON_GetObjectItemCaseSensitive(j, "max_tokens");
  const cJSON *system = cJSON_GetObjectItemCaseSensitive(j, "system");
  const cJSON *stop = cJSON_GetObjectItemCaseSensitive(j, "stop_sequences");
  const cJSON *stream = cJSON_GetObjectItemCaseSensitive(j, "stream");
  if (!cJSON_IsString(model)) {
    *bad = "model: Field required (a string)";
    return NULL;
  }
  if (!cJSON_IsArray(messages)) {
    *bad = "messages: Field required (a list)";
    return NULL;
  }
  if (max_tokens == NULL) {
    *bad = "max_tokens: Field required";
    return NULL;
  }
  double mt = cJSON_IsNumber(max_tokens) ? max_tokens->valuedouble : 0;
  if (!(mt >= 1 && mt <= 1e9) || mt != (double)(long)mt) {
    *bad = "max_tokens: Input should be a valid integer greater than 0";
    return NULL;
  }
  if (stream && !cJSON_IsBool(stream)) {
    *bad = "stream: Input should be a valid boolean";
    return NULL;
  }
  if (stop && !cJSON_IsArray(stop)) {
    *bad = "stop_sequences: Input should be a valid list";
    return NULL;
  }
  cJSON *sys = NULL;
  if (system && (sys = system_text(system)) == NULL) {
    *bad = "system: Input should be a valid string or a list of text blocks";
    return NULL;
  }
  cJSON *req = cJSON_CreateObject();
  cJSON_AddStringToObject(req, "model", model->valuestring);
  cJSON *msgs = cJSON_AddArrayToObject(req, "messages");
  if (sys) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "system");
    cJSON_AddItemToObject(m, "content", sys);
    cJSON_AddItemToArray(msgs, m);
  }
  const cJSON *m;
  cJSON_ArrayForEach(m, messages) {
    cJSON_AddItemToArray(msgs, cJSON_Duplicate(m, 1));
  }
  cJSON_AddNumberToObject(req, "max_tokens", mt);
  if (stop)
    cJSON_AddItemToObject(req, "stop", cJSON_Duplicate(stop, 1));
  static const char *const copied[] = {"temperature", "top_p", "top_k", "stream", "metadata"};
  for (size_t i = 0; i < sizeof copied / sizeof copied[0]; i++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, copied[i]);
    if (v)
      cJSON_AddItemToObject(req, copied[i], cJSON_Duplicate(v, 1));
  }
  return req;
}

static int build_message(struct mock_conn *c, const char *body, size_t len, const char *role,
                         size_t role_len, enum mock_fault fault) {
  struct mock_server *srv = c->srv;
  const char *bad = NULL;
  char err[1024];
  cJSON *req = NULL, *j = cJSON_ParseWithLength(body, len);
  if (!cJSON_IsObject(j))
    bad = "The request body is not valid JSON (an object is expected).";
  else
    req = as_chat_request(j, &bad);
  if (req == NULL) {
    cJSON_Delete(j);
    c->fault = MOCK_FAULT_NONE;
    c->stream = 0;
    return mock_put_anthropic_error(c, 400, "invalid_request_error", bad ? bad : "out of memory",
                                    NULL);
  }
  c->stream = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "stream"));
  const char *model = cJSON_GetObjectItemCaseSensitive(j, "model")->valuestring;
  struct mock_chat chat = {
      .body_hash = c->body_hash,
      .model = model,
      .model_len = strlen(model),
      .choices = srv->choices,
      .n = 1,
      .stream_chunks = srv->cfg.stream_chunks,
  };
  int rc;
  if (mock_answer_chat(&srv->ans, req, 1, role, role_len, srv->choices, err, sizeof err) != 0) {
    if (srv->ans.errors_reported++ < 10)
      fprintf(stderr, "mock-server: %s: %s\n", srv->ans.path, err);
    c->fault = MOCK_FAULT_NONE;
    c->stream = 0;
    rc = mock_put_anthropic_error(c, 500, "api_error", err, NULL);
  } else {
    rc = mock_put_answer(c, &chat, MOCK_API_ANTHROPIC, fault);
    mock_answer_release(&srv->ans);
  }
  cJSON_Delete(req);
  cJSON_Delete(j);
  return rc;
}

int mock_handle_messages(struct mock_conn *c, const char *base, uint64_t *latency) {
  struct mock_server *srv = c->srv;
  const struct mreq *r = &c->req;
  const char *v;
  size_t vn;
  char msg[256], extra[128];
  /* A client that forgets these would be turned away by the real API too. */
  static const char *const required[] = {"x-api-key", "anthropic-version"};
  for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
    if (!mreq_header(r, base, required[i], &v, &vn) || vn == 0) {
      snprintf(msg, sizeof msg, "%s: header is required", required[i]);
      return mock_put_anthropic_error(c, 400, "invalid_request_error", msg, NULL);
    }
  }
  int rc = mock_rl_admit(c, base, MOCK_API_ANTHROPIC);
  if (rc == MOCK_RL_THROTTLED)
    return 0; /* the 429 is rendered, and answered at once */
  if (rc)
    return rc;
  enum mock_fault fault;
  if (mock_draw_fault(c, base, latency, &fault, msg, sizeof msg) != 0)
    return mock_put_anthropic_error(c, 400, "invalid_request_error", msg, NULL);
  switch (fault) {
  case MOCK_FAULT_429:
    snprintf(extra, sizeof extra, "retry-after: %d\r\n", srv->cfg.retry_after);
    return mock_put_anthropic_error(c, 429, "rate_limit_error",
                                    "Number of requests has exceeded your rate limit (mock "
                                    "fault). Please try again later.",
                                    extra);
  case MOCK_FAULT_500:
    return mock_put_anthropic_error(c, 500, "api_error", "Internal server error (mock fault)",
                                    NULL);
  case MOCK_FAULT_503:
  case MOCK_FAULT_529:
    return mock_put_anthropic_error(c, fault == MOCK_FAULT_503 ? 503 : 529, "overloaded_error",
                                    "Overloaded (mock fault)", NULL);
  case MOCK_FAULT_RESET:
    c->out.len = c->limit = 0;
    c->after = AFTER_RESET;
    return 0;
  default:
    if (!mreq_header(r, base, "x-moonloop-role", &v, &vn)) {
      v = NULL;
      vn = 0;
    }
    return build_message(c, base + r->body.off, r->body.len, v, vn, fault);
  }
}

/* Anthropic Messages API: the request body, message bodies, event streams and error
 * bodies. Responses land in the same struct llm_response as OpenAI ones (one choice, the
 * text blocks joined), so the code above the wire format treats both providers alike.
 * Event order and names follow runtime-anchors.md section 6.3. */
#include "llm/anthropic.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The sentences that stand in for response_format, which the Messages API lacks. */
static const char ASK_JSON_OBJECT[] =
    "Reply with exactly one JSON object and nothing else: no prose, no code fences.";
static const char ASK_JSON_SCHEMA[] =
    "Reply with exactly one JSON object that conforms to the following JSON Schema, and "
    "nothing else: no prose, no code fences.\n";

/* Keys anthropic_body reads itself; every other key is passed through. */
/* clang-format off */
static const char *const CONVERTED_KEYS[] = {
    "model", "messages", "system", "max_tokens", "max_completion_tokens", "temperature",
    "top_p", "top_k", "stop", "stream", "seed", "stream_options", "n", "response_format", NULL};
/* clang-format on */

static const char *str_of(const cJSON *v) {
  return cJSON_IsString(v) && v->valuestring ? v->valuestring : NULL;
}

static const cJSON *field(const cJSON *obj, const char *name) {
  return cJSON_GetObjectItemCaseSensitive(obj, name);
}

/* Absent and null both mean "not given" in an OpenAI body. */
static int given(const cJSON *v) {
  return v != NULL && !cJSON_IsNull(v);
}

/* ---- Requests ------------------------------------------------------------------------ */

static int errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int errf(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return -1;
}

/* Add the text of a system message's content to parts (as references into the request,
 * which outlives parts). Returns 0, or -1 when the content holds anything but text. */
static int add_system_text(cJSON *parts, const cJSON *content) {
  if (str_of(content)) {
    cJSON_AddItemToArray(parts, cJSON_CreateStringReference(content->valuestring));
    return 0;
  }
  if (!cJSON_IsArray(content))
    return -1;
  const cJSON *part;
  cJSON_ArrayForEach(part, content) {
    const char *type = str_of(field(part, "type"));
    const char *text = str_of(field(part, "text"));
    if (text == NULL || (type && strcmp(type, "text") != 0))
      return -1;
    cJSON_AddItemToArray(parts, cJSON_CreateStringReference(text));
  }
  return 0;
}

/* The strings of parts joined by blank lines, malloc'd; NULL when out of memory. */
static char *join_parts(const cJSON *parts) {
  size_t total = 1;
  const cJSON *p;
  cJSON_ArrayForEach(p, parts) {
    total += strlen(p->valuestring) + 2;
  }
  char *s = malloc(total);
  if (s == NULL)
    return NULL;
  size_t n = 0;
  cJSON_ArrayForEach(p, parts) {
    size_t k = strlen(p->valuestring);
    if (n > 0) {
      memcpy(s + n, "\n\n", 2);
      n += 2;
    }
    memcpy(s + n, p->valuestring, k);
    n += k;
  }
  s[n] = '\0';
  return s;
}

/* Content as a list of blocks, for merging two messages: a string becomes a text block,
 * a list is copied. */
static cJSON *as_blocks(const cJSON *content) {
  if (cJSON_IsArray(content))
    return cJSON_Duplicate(content, 1);
  cJSON *blocks = cJSON_CreateArray();
  cJSON *b = cJSON_CreateObject();
  cJSON_AddStringToObject(b, "type", "text");
  cJSON_AddStringToObject(b, "text", content->valuestring);
  cJSON_AddItemToArray(blocks, b);
  return blocks;
}

/* Append a user or assistant message to out, merged into the last one when the role
 * repeats (the Messages API wants the roles to alternate). */
static void add_turn(cJSON *out, const char *role, const cJSON *content) {
  cJSON *last = cJSON_GetArrayItem(out, cJSON_GetArraySize(out) - 1);
  if (last && strcmp(str_of(field(last, "role")), role) == 0) {
    cJSON *prev = cJSON_GetObjectItemCaseSensitive(last, "content");
    if (!cJSON_IsArray(prev)) {
      cJSON *blocks = as_blocks(prev);
      cJSON_ReplaceItemInObjectCaseSensitive(last, "content", blocks);
      prev = blocks;
    }
    cJSON *more = as_blocks(content);
    while (more && more->child)
      cJSON_AddItemToArray(prev, cJSON_DetachItemViaPointer(more, more->child));
    cJSON_Delete(more);
    return;
  }
  cJSON *m = cJSON_CreateObject();
  cJSON_AddStringToObject(m, "role", role);
  cJSON_AddItemToObject(m, "content", cJSON_Duplicate(content, 1));
  cJSON_AddItemToArray(out, m);
}

/* Copy an optional number field; null drops it. Returns -1 for another type. */
static int copy_number(cJSON *out, const cJSON *in, const char *name) {
  const cJSON *v = field(in, name);
  if (!given(v))
    return 0;
  if (!cJSON_IsNumber(v))
    return -1;
  cJSON_AddItemToObject(out, name, cJSON_Duplicate(v, 0));
  return 0;
}

/* Everything anthropic_body checks and writes; out receives the fields in the order a
 * person reading the body expects, parts collects the system prompt's paragraphs. */
static int convert(const cJSON *in, cJSON *out, cJSON *parts, char *err, size_t errlen) {
  if (!cJSON_IsObject(in))
    return errf(err, errlen, "the request body is not a JSON object");
  const char *model = str_of(field(in, "model"));
  if (model == NULL)
    return errf(err, errlen, "the request has no \"model\" string");
  cJSON_AddStringToObject(out, "model", model);

  const cJSON *system = field(in, "system");
  if (given(system)) {
    if (!str_of(system))
      return errf(err, errlen, "\"system\" must be a string");
    cJSON_AddItemToArray(parts, cJSON_CreateStringReference(system->valuestring));
  }

  const cJSON *messages = field(in, "messages");
  if (!cJSON_IsArray(messages))
    return errf(err, errlen, "the request has no \"messages\" list");
  cJSON *turns = cJSON_AddArrayToObject(out, "messages");
  if (turns == NULL)
    return errf(err, errlen, "out of memory");
  int i = 0;
  const cJSON *m;
  cJSON_ArrayForEach(m, messages) {
    const char *role = str_of(field(m, "role"));
    const cJSON *content = field(m, "content");
    if (!cJSON_IsObject(m) || role == NULL)
      return errf(err, errlen, "messages[%d] is not a {role=, content=} object", i);
    if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
      if (add_system_text(parts, content) != 0)
        return errf(err, errlen, "messages[%d]: a %s message must be text (a string or text parts)",
                    i, role);
    } else if (strcmp(role, "user") == 0 || strcmp(role, "assistant") == 0) {
      if (!str_of(content) && !cJSON_IsArray(content))
        return errf(err, errlen,
                    "messages[%d]: content must be a string or a list of content parts", i);
      if (cJSON_GetArraySize(turns) == 0 && strcmp(role, "user") != 0)
        return errf(err, errlen,
                    "messages[%d]: the first non-system message must be from the user; the "
                    "Messages API does not accept a conversation that starts with '%s'",
                    i, role);
      add_turn(turns, role, content);
    } else {
      return errf(err, errlen,
                  "messages[%d]: role '%s' is not supported by the Messages API (use system, "
                  "user or assistant)",
                  i, role);
    }
    i++;
  }
  if (cJSON_GetArraySize(turns) == 0)
    return errf(err, errlen, "the request has no user message; the Messages API needs one");

  const cJSON *n = field(in, "n");
  if (given(n) && cJSON_IsNumber(n) && n->valuedouble > 1)
    return errf(err, errlen, "n > 1 is not supported by the Messages API");
  if (given(n) && (!cJSON_IsNumber(n) || n->valuedouble != 1))
    return errf(err, errlen, "n must be 1 (or absent) for the Messages API");

  const cJSON *rf = field(in, "response_format");
  if (given(rf)) {
    const char *type = str_of(field(rf, "type"));
    if (!cJSON_IsObject(rf) || type == NULL)
      return errf(err, errlen, "response_format must be an object with a \"type\"");
    if (strcmp(type, "json_object") == 0) {
      cJSON_AddItemToArray(parts, cJSON_CreateStringReference(ASK_JSON_OBJECT));
    } else if (strcmp(type, "json_schema") == 0) {
      const cJSON *schema = field(field(rf, "json_schema"), "schema");
      if (!cJSON_IsObject(schema))
        return errf(err, errlen, "response_format.json_schema.schema must be an object");
      char *printed = cJSON_PrintUnformatted(schema);
      size_t len = printed ? sizeof ASK_JSON_SCHEMA + strlen(printed) : 0;
      char *ask = printed ? malloc(len) : NULL;
      if (ask)
        snprintf(ask, len, "%s%s", ASK_JSON_SCHEMA, printed);
      free(printed);
      if (ask == NULL)
        return errf(err, errlen, "out of memory");
      cJSON_AddItemToArray(parts, cJSON_CreateString(ask));
      free(ask);
    } else if (strcmp(type, "text") != 0) {
      return errf(err, errlen,
                  "response_format type '%s' is not supported by the Messages API (use "
                  "json_object or json_schema)",
                  type);
    }
  }
  if (cJSON_GetArraySize(parts) > 0) {
    char *joined = join_parts(parts);
    if (joined == NULL)
      return errf(err, errlen, "out of memory");
    cJSON_AddStringToObject(out, "system", joined);
    free(joined);
  }

  const cJSON *mt = field(in, "max_tokens");
  if (!given(mt))
    mt = field(in, "max_completion_tokens");
  double max_tokens = ANTHROPIC_DEFAULT_MAX_TOKENS;
  if (given(mt)) {
    max_tokens = cJSON_IsNumber(mt) ? mt->valuedouble : -1;
    if (!(max_tokens >= 1 && max_tokens <= INT_MAX) || max_tokens != (double)(long)max_tokens)
      return errf(err, errlen, "max_tokens must be a positive integer");
  }
  cJSON_AddNumberToObject(out, "max_tokens", max_tokens);

  const cJSON *stop = field(in, "stop");
  if (str_of(stop)) {
    cJSON *seqs = cJSON_AddArrayToObject(out, "stop_sequences");
    cJSON_AddItemToArray(seqs, cJSON_CreateString(stop->valuestring));
  } else if (cJSON_IsArray(stop)) {
    const cJSON *s;
    cJSON_ArrayForEach(s, stop) {
      if (!str_of(s))
        return errf(err, errlen, "stop must be a string or a list of strings");
    }
    if (cJSON_GetArraySize(stop) > 0)
      cJSON_AddItemToObject(out, "stop_sequences", cJSON_Duplicate(stop, 1));
  } else if (given(stop)) {
    return errf(err, errlen, "stop must be a string or a list of strings");
  }

  static const char *const numbers[] = {"temperature", "top_p", "top_k"};
  for (size_t k = 0; k < sizeof numbers / sizeof numbers[0]; k++) {
    if (copy_number(out, in, numbers[k]) != 0)
      return errf(err, errlen, "%s must be a number", numbers[k]);
  }
  const cJSON *stream = field(in, "stream");
  if (cJSON_IsBool(stream))
    cJSON_AddBoolToObject(out, "stream", cJSON_IsTrue(stream));
  else if (given(stream))
    return errf(err, errlen, "stream must be true or false");

  const cJSON *item;
  cJSON_ArrayForEach(item, in) {
    int converted = 0;
    for (int k = 0; CONVERTED_KEYS[k] && !converted; k++)
      converted = strcmp(item->string, CONVERTED_KEYS[k]) == 0;
    if (!converted && !cJSON_HasObjectItem(out, item->string))
      cJSON_AddItemToObject(out, item->string, cJSON_Duplicate(item, 1));
  }
  /* cJSON reports allocation failures only through NULL returns, which the Add calls
   * swallow; one look at the essential fields catches a body that lost a piece. */
  if (!str_of(field(out, "model")) || !cJSON_IsNumber(field(out, "max_tokens")))
    return errf(err, errlen, "out of memory");
  return 0;
}

cJSON *anthropic_body(const cJSON *in, char *err, size_t errlen) {
  cJSON *out = cJSON_CreateObject(), *parts = cJSON_CreateArray();
  int rc = out && parts ? convert(in, out, parts, err, errlen) : errf(err, errlen, "out of memory");
  cJSON_Delete(parts);
  if (rc != 0) {
    cJSON_Delete(out);
    return NULL;
  }
  return out;
}

/* ---- Responses ----------------------------------------------------------------------- */

static void set_finish(struct llm_response *r, const char *stop_reason) {
  struct llm_choice *c = llm_response_choice(r, 0);
  if (c == NULL || stop_reason == NULL)
    return;
  const char *f = stop_reason;
  if (strcmp(f, "end_turn") == 0 || strcmp(f, "stop_sequence") == 0)
    f = "stop";
  else if (strcmp(f, "max_tokens") == 0)
    f = "length";
  else if (strcmp(f, "tool_use") == 0)
    f = "tool_calls";
  snprintf(c->finish_reason, sizeof c->finish_reason, "%s", f);
}

/* Store a token count; wrong types, negatives and absurd values leave *out alone (a
 * double beyond the range of long would make the conversion undefined). */
static int read_count(const cJSON *v, long *out) {
  if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 1e15) ||
      v->valuedouble >= (double)LONG_MAX)
    return 0;
  *out = (long)v->valuedouble;
  return 1;
}

/* message_start carries input_tokens (and a first output count); message_delta carries
 * the cumulative output_tokens, so the last one seen is the total. */
static void read_usage(struct llm_response *r, const cJSON *usage) {
  if (!cJSON_IsObject(usage))
    return;
  if (read_count(field(usage, "input_tokens"), &r->input_tokens))
    r->has_usage = 1;
  if (read_count(field(usage, "output_tokens"), &r->output_tokens))
    r->has_usage = 1;
}

static void read_model(struct llm_response *r, const cJSON *v) {
  if (str_of(v))
    snprintf(r->model, sizeof r->model, "%s", v->valuestring);
}

/* r->error and r->error_type from an {"type":"error","error":{...}} object. */
static void read_error(struct llm_response *r, const cJSON *root, const char *prefix) {
  const cJSON *e = field(root, "error");
  const char *type = str_of(field(e, "type"));
  const char *msg = str_of(field(e, "message"));
  snprintf(r->error_type, sizeof r->error_type, "%s", type ? type : "");
  snprintf(r->error, sizeof r->error, "%s: %s: %s", prefix, type ? type : "error",
           msg ? msg : "(no message)");
}

int anthropic_parse_body(struct llm_response *r, const char *body, size_t len) {
  cJSON *root = cJSON_ParseWithLength(body, len);
  if (root == NULL) {
    llm_response_json_error(r, "the response body", body, len);
    return -1;
  }
  int rc = -1;
  const char *type = str_of(field(root, "type"));
  if (type && strcmp(type, "error") == 0) {
    read_error(r, root, "the server answered with an error");
    goto done;
  }
  const cJSON *content = field(root, "content");
  if (!cJSON_IsArray(content)) {
    snprintf(r->error, sizeof r->error, "the response has no \"content\" array");
    goto done;
  }
  if (llm_response_append(r, 0, "", 0) != 0)
    goto oom;
  int i = 0;
  const cJSON *block;
  cJSON_ArrayForEach(block, content) {
    const char *btype = str_of(field(block, "type"));
    if (btype == NULL) {
      snprintf(r->error, sizeof r->error, "content[%d] is not a block with a \"type\"", i);
      goto done;
    }
    if (strcmp(btype, "text") == 0) {
      const char *text = str_of(field(block, "text"));
      if (text == NULL) {
        snprintf(r->error, sizeof r->error, "content[%d]: a text block without a text string", i);
        goto done;
      }
      if (llm_response_append(r, 0, text, strlen(text)) != 0)
        goto oom;
    }
    /* thinking, redacted_thinking, tool_use, ...: not text for the script */
    i++;
  }
  set_finish(r, str_of(field(root, "stop_reason")));
  read_usage(r, field(root, "usage"));
  read_model(r, field(root, "model"));
  rc = 0;
  goto done;
oom:
  snprintf(r->error, sizeof r->error, "out of memory");
done:
  cJSON_Delete(root);
  return rc;
}

/* Text that arrived in a stream: kept, and queued for the stream callback. Returns 1 when
 * a delta was queued, 0 when not, -1 when out of memory. */
static int stream_text(struct llm_response *r, const char *text) {
  size_t n = strlen(text);
  if (n == 0)
    return 0;
  if (llm_response_append(r, 0, text, n) != 0)
    return -1;
  if (!r->want_deltas)
    return 0;
  return llm_response_queue_delta(r, 0, text, n) != 0 ? -1 : 1;
}

int anthropic_stream_event(struct llm_response *r, const struct sse_event *ev) {
  if (r->stream_done)
    return 0; /* nothing after message_stop matters */
  cJSON *root = cJSON_ParseWithLength(ev->data, ev->data_len);
  if (root == NULL) {
    llm_response_json_error(r, "a stream event", ev->data, ev->data_len);
    return -1;
  }
  /* The event: line names the event; "message" is what the SSE parser reports when
   * there was none, and then the JSON type has to do. */
  const char *name = ev->event;
  if (name == NULL || strcmp(name, "message") == 0)
    name = str_of(field(root, "type"));
  if (name == NULL)
    name = "";
  int rc = 0;
  if (strcmp(name, "message_start") == 0) {
    const cJSON *msg = field(root, "message");
    read_model(r, field(msg, "model"));
    read_usage(r, field(msg, "usage"));
    rc = llm_response_append(r, 0, "", 0);
  } else if (strcmp(name, "content_block_start") == 0) {
    const cJSON *block = field(root, "content_block");
    const char *text = str_of(field(block, "text"));
    const char *btype = str_of(field(block, "type"));
    rc = llm_response_append(r, 0, "", 0);
    if (rc == 0 && text && btype && strcmp(btype, "text") == 0)
      rc = stream_text(r, text);
  } else if (strcmp(name, "content_block_delta") == 0) {
    const cJSON *delta = field(root, "delta");
    const char *dtype = str_of(field(delta, "type"));
    /* input_json_delta, thinking_delta, signature_delta, citations_delta: not text */
    if (dtype && strcmp(dtype, "text_delta") == 0) {
      const char *text = str_of(field(delta, "text"));
      if (text == NULL) {
        snprintf(r->error, sizeof r->error,
                 "a content_block_delta event has a text_delta without a text string");
        cJSON_Delete(root);
        return -1;
      }
      rc = stream_text(r, text);
    }
  } else if (strcmp(name, "message_delta") == 0) {
    set_finish(r, str_of(field(field(root, "delta"), "stop_reason")));
    read_usage(r, field(root, "usage"));
  } else if (strcmp(name, "message_stop") == 0) {
    r->stream_done = 1;
  } else if (strcmp(name, "error") == 0) {
    read_error(r, root, "the server sent an error mid-stream");
    cJSON_Delete(root);
    return -1;
  }
  /* ping, content_block_stop and event types added after this was written: nothing */
  cJSON_Delete(root);
  if (rc < 0)
    snprintf(r->error, sizeof r->error, "out of memory");
  return rc;
}

void anthropic_error_message(const char *body, size_t len, char *out, size_t outlen) {
  if (outlen == 0)
    return;
  out[0] = '\0';
  cJSON *root = body && len ? cJSON_ParseWithLength(body, len) : NULL;
  const cJSON *e = field(root, "error");
  const char *type = str_of(field(e, "type"));
  const char *msg = str_of(field(e, "message"));
  if (type && msg)
    snprintf(out, outlen, "%s: %s", type, msg);
  else if (type || msg)
    snprintf(out, outlen, "%s", type ? type : msg);
  cJSON_Delete(root);
  if (out[0] == '\0')
    openai_error_message(body, len, out, outlen);
}

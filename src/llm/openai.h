/* The OpenAI Chat Completions wire format: reading a response body or an event stream
 * into provider-neutral choices, usage and errors. Pure C on cJSON; no Lua.
 * struct llm_response and its llm_response_* helpers are shared with anthropic.h. */
#ifndef ML_LLM_OPENAI_H
#define ML_LLM_OPENAI_H

#include <stddef.h>

#include "http/sse.h"

struct llm_text {
  char *data;
  size_t len, cap;
};

struct llm_choice {
  struct llm_text text;
  char finish_reason[32];
};

/* A queued stream delta, for the script's stream callback. The text belongs to the
 * response (valid until the deltas are compacted away or the response is freed). */
struct llm_delta {
  int index;
  char *text;
  size_t len;
};

struct llm_response {
  struct llm_choice *choices;
  int nchoices;
  long input_tokens, output_tokens;
  int has_usage;
  char model[128];
  char error[512];      /* a parse or stream error; empty when fine */
  char error_type[64];  /* the server's error type for mid-stream errors */
  int stream_done;      /* [DONE] (OpenAI) or message_stop (Anthropic) seen */
  /* Deltas not yet given to the script (only collected when want_deltas). */
  int want_deltas;
  struct llm_delta *deltas;
  int ndeltas, cap_deltas, delta_head;
  struct delta_block *delta_blocks; /* where the deltas' texts live */
  struct chunk_memo *chunk_memo; /* openai.c's: the parse of the start its chunks repeat */
};

void llm_response_init(struct llm_response *r, int nchoices_hint, int want_deltas);
void llm_response_free(struct llm_response *r);
/* Drop deltas the script has consumed. */
void llm_response_compact_deltas(struct llm_response *r);

/* Building blocks shared by the wire formats (openai.c, anthropic.c). */

/* The choice at index, created zeroed (with the ones before it) when missing. NULL when
 * index is outside 0..1024 or memory runs out. */
struct llm_choice *llm_response_choice(struct llm_response *r, int index);
/* Append n bytes to the text of choice index, creating the choice. The text stays
 * NUL-terminated, and is "" rather than NULL after appending nothing. Returns 0 or -1. */
int llm_response_append(struct llm_response *r, int index, const char *p, size_t n);
/* Queue a copy of s[0..n) as a delta of choice index for the stream callback. 0 or -1. */
int llm_response_queue_delta(struct llm_response *r, int index, const char *s, size_t n);
/* Set r->error to say that `what` ("the response body", "a stream event") is not valid
 * JSON, with the byte where cJSON gave up and a printable excerpt from there. Call right
 * after the failed cJSON parse of text[0..len). */
void llm_response_json_error(struct llm_response *r, const char *what, const char *text,
                             size_t len);

/* Parse a complete non-streaming body. Returns 0, or -1 with r->error set. */
int openai_parse_body(struct llm_response *r, const char *body, size_t len);

/* Handle one SSE event of a streaming response. Returns 0 to go on, 1 when a delta was
 * queued (the waiting task should be woken), -1 on a malformed event or an error event
 * (r->error set). */
int openai_stream_event(struct llm_response *r, const struct sse_event *ev);

/* The same two, always through a cJSON tree. The functions above read well-formed input
 * straight from the text and fall back to these for anything unusual; they are exported
 * so that tests can hold the two paths side by side. */
int openai_parse_body_cjson(struct llm_response *r, const char *body, size_t len);
int openai_stream_event_cjson(struct llm_response *r, const struct sse_event *ev);

/* Extract the human-readable message of an error body ({"error":{"message":...}}); falls
 * back to a short excerpt of the raw body. */
void openai_error_message(const char *body, size_t len, char *out, size_t outlen);

#endif

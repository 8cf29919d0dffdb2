/* The Anthropic Messages API wire format: the request body moonloop sends, and the
 * message bodies, event streams and error bodies it reads back into the provider-neutral
 * struct llm_response of openai.h. Pure C on cJSON; no Lua. */
#ifndef ML_LLM_ANTHROPIC_H
#define ML_LLM_ANTHROPIC_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "http/sse.h"
#include "llm/openai.h"

/* The Messages API requires max_tokens; an OpenAI-style body may leave it out. */
#define ANTHROPIC_DEFAULT_MAX_TOKENS 4096

/* Convert the OpenAI-style chat body moonloop builds into a Messages API body.
 * - Every system (or developer) message, wherever it stands, joins the top-level
 *   "system" string, in order, separated by blank lines; a response_format adds a last
 *   paragraph asking for one JSON object (json_object) or for one that fits the schema
 *   (json_schema), since the Messages API has no such field.
 * - user/assistant messages keep their order; consecutive ones of the same role are
 *   merged into one message whose content is the list of their blocks. The first one must
 *   be a user message. Content is a string or a list of content parts, passed as is
 *   (OpenAI text parts and Anthropic text blocks have the same shape).
 * - max_tokens (or max_completion_tokens) defaults to ANTHROPIC_DEFAULT_MAX_TOKENS;
 *   stop (string or list) becomes stop_sequences; temperature, top_p, top_k and stream
 *   are copied; seed and stream_options are dropped; n must be 1 or absent.
 * - Any other key is passed through unchanged: it came from the script's `extra` table,
 *   which is provider-specific by design.
 * Returns a new object (the caller deletes it), or NULL with a message naming the field
 * in err. */
cJSON *anthropic_body(const cJSON *openai_body, char *err, size_t errlen);

/* Parse a complete non-streaming message body into choice 0: the text blocks joined,
 * other blocks (thinking, tool_use, ...) skipped; stop_reason mapped to an OpenAI
 * finish_reason (end_turn and stop_sequence: "stop", max_tokens: "length", tool_use:
 * "tool_calls", anything else verbatim); usage and model. Returns 0, or -1 with r->error
 * set (and r->error_type for an error body). */
int anthropic_parse_body(struct llm_response *r, const char *body, size_t len);

/* Handle one SSE event of a streaming message; the event name decides, or the JSON
 * "type" when the event has none. Returns 0 to go on, 1 when a text delta was queued
 * (r->want_deltas), -1 on invalid JSON, a wrongly typed text delta, or an error event
 * (r->error and r->error_type set). message_stop sets r->stream_done; events after it,
 * ping and event types this code does not know are ignored. */
int anthropic_stream_event(struct llm_response *r, const struct sse_event *ev);

/* The human-readable form of an error body ({"type":"error","error":{"type":..,
 * "message":..}}): "TYPE: MESSAGE". Anything else is read like openai_error_message
 * (its message, or a short printable excerpt of the raw body). */
void anthropic_error_message(const char *body, size_t len, char *out, size_t outlen);

#endif

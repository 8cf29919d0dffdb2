/* The JSON body of a chat request, built from an llm.chat spec table: as a cJSON tree
 * (every spec, every provider; the cache key and the Anthropic and simulator paths need
 * the tree) or, for the common shapes sent to an OpenAI-style server, written straight
 * into a string with the same bytes cJSON would print. */
#ifndef ML_LLM_BODY_H
#define ML_LLM_BODY_H

#include <cjson/cJSON.h>
#include <lua.h>

/* The options llm.chat takes, as bits of a mask of the keys a spec holds. */
enum spec_key {
  SK_MODEL, SK_MESSAGES, SK_PROMPT, SK_SYSTEM, SK_TEMPERATURE, SK_MAX_TOKENS, SK_STOP, SK_JSON,
  SK_SCHEMA, SK_N, SK_STREAM, SK_TIMEOUT_MS, SK_CACHE, SK_TAGS, SK_EXTRA, SK_SEED, SK_TOP_P,
  SK_ATTEMPTS, SK_COUNT
};
#define SPEC_ALL_KEYS ((1u << SK_COUNT) - 1)

/* The spec_key named s[0..n), or -1 when it is not an option. */
int spec_key_id(const char *s, size_t n);

/* What the body depends on besides the spec table. */
struct body_opts {
  const char *model; /* the resolved model id */
  int n;             /* choices asked for */
  int stream;
  int stream_usage; /* the provider wants stream_options.include_usage */
  int json;         /* json = true: ask for a JSON object (response_format) */
  unsigned present; /* bits of the keys the spec holds (SPEC_ALL_KEYS: look each one up) */
};

/* The body as a tree. Raises a Lua error naming the option for a spec it cannot send.
 * *want_json starts as o->json and is set when a schema asks for JSON. */
cJSON *body_tree(lua_State *L, int spec, const struct body_opts *o, int *want_json);

/* The body as text, when the spec has a common shape: prompt or a list of messages with
 * string fields, system, numbers, a string stop, json = true, stream; no schema or extra.
 * The text is exactly cJSON_PrintUnformatted(body_tree(...)). Returns a malloc'd string,
 * or NULL when the spec needs body_tree (which then also reports what is wrong with it).
 * Never raises. */
char *body_text(lua_State *L, int spec, const struct body_opts *o);

#endif

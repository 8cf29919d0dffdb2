/* The Anthropic Messages wire format: converting moonloop's OpenAI-style request body, and
 * reading message bodies, event streams (recorded ones, cut at every byte) and error
 * bodies, including what a broken or hostile server sends. */
#include <stdlib.h>

#include "http/sse.h"
#include "llm/anthropic.h"
#include "ml_test.h"

/* ---- helpers --------------------------------------------------------------------- */

static struct sse_event named(const char *event, const char *data) {
  struct sse_event e = {event, strlen(event), data, strlen(data), ""};
  return e;
}

static int feed(struct llm_response *r, const char *event, const char *data) {
  struct sse_event e = named(event, data);
  return anthropic_stream_event(r, &e);
}

static int parse(struct llm_response *r, const char *body) {
  llm_response_init(r, 1, 0);
  return anthropic_parse_body(r, body, strlen(body));
}

/* Convert a body given as JSON text; NULL (with err) when the conversion fails. */
static cJSON *convert(const char *json, char *err, size_t errlen) {
  cJSON *in = cJSON_Parse(json);
  if (in == NULL) {
    snprintf(err, errlen, "test bug: input is not JSON");
    return NULL;
  }
  err[0] = '\0';
  cJSON *out = anthropic_body(in, err, errlen);
  cJSON_Delete(in);
  return out;
}

static const char *str_at(const cJSON *obj, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num_at(const cJSON *obj, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
  return cJSON_IsNumber(v) ? v->valuedouble : -12345;
}

/* The conversion must fail, with an error that contains want. */
static void check_rejected(const char *json, const char *want) {
  char err[512];
  cJSON *out = convert(json, err, sizeof err);
  ML_CHECK(out == NULL);
  if (strstr(err, want) == NULL)
    fprintf(stderr, "  for %s\n  error \"%s\" lacks \"%s\"\n", json, err, want);
  ML_CHECK(strstr(err, want) != NULL);
  cJSON_Delete(out);
}

static char *read_fixture(const char *name, size_t *len) {
  const char *env = getenv("ML_TEST_DATA");
  const char *file = __FILE__, *slash = strrchr(file, '/');
  char dirs[2][512];
  snprintf(dirs[0], sizeof dirs[0], "%s", env && env[0] ? env : "tests/data");
  snprintf(dirs[1], sizeof dirs[1], "%.*s/../data", slash ? (int)(slash - file) : 1,
           slash ? file : ".");
  for (int i = 0; i < 2; i++) {
    char path[1100];
    snprintf(path, sizeof path, "%s/sse/%s", dirs[i], name);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
      continue;
    size_t cap = 1 << 16;
    char *buf = malloc(cap);
    *len = buf ? fread(buf, 1, cap, f) : 0;
    fclose(f);
    return buf;
  }
  fprintf(stderr, "  fixture sse/%s not found; set ML_TEST_DATA to tests/data\n", name);
  return NULL;
}

/* ---- request bodies ------------------------------------------------------------------ */

static void request_system_messages_become_one_system_string(void) {
  char err[256];
  cJSON *b =
      convert("{\"model\":\"claude-x\",\"messages\":["
              "{\"role\":\"system\",\"content\":\"Be terse.\"},"
              "{\"role\":\"user\",\"content\":\"hi\"},"
              "{\"role\":\"system\",\"content\":[{\"type\":\"text\",\"text\":\"No lists.\"}]},"
              "{\"role\":\"assistant\",\"content\":\"ok\"}]}",
              err, sizeof err);
  ML_CHECK(b != NULL);
  ML_CHECK_STR(str_at(b, "model"), "claude-x");
  ML_CHECK_STR(str_at(b, "system"), "Be terse.\n\nNo lists.");
  const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(b, "messages");
  ML_CHECK_INT(cJSON_GetArraySize(msgs), 2);
  ML_CHECK_STR(str_at(cJSON_GetArrayItem(msgs, 0), "role"), "user");
  ML_CHECK_STR(str_at(cJSON_GetArrayItem(msgs, 0), "content"), "hi");
  ML_CHECK_STR(str_at(cJSON_GetArrayItem(msgs, 1), "role"), "assistant");
  cJSON_Delete(b);
}

static void request_without_system_message_has_no_system_field(void) {
  char err[256];
  cJSON *b = convert("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", err,
                     sizeof err);
  ML_CHECK(b != NULL);
  ML_CHECK(!cJSON_HasObjectItem(b, "system"));
  cJSON_Delete(b);
}

static void request_consecutive_same_role_messages_are_merged_into_blocks(void) {
  char err[256];
  cJSON *b = convert("{\"model\":\"m\",\"messages\":["
                     "{\"role\":\"user\",\"content\":\"one\"},"
                     "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"two\"}]},"
                     "{\"role\":\"system\",\"content\":\"sys\"},"
                     "{\"role\":\"user\",\"content\":\"three\"},"
                     "{\"role\":\"assistant\",\"content\":\"a\"},"
                     "{\"role\":\"assistant\",\"content\":\"b\"}]}",
                     err, sizeof err);
  ML_CHECK(b != NULL);
  const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(b, "messages");
  ML_CHECK_INT(cJSON_GetArraySize(msgs), 2);
  const cJSON *user = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(msgs, 0), "content");
  ML_CHECK(cJSON_IsArray(user));
  ML_CHECK_INT(cJSON_GetArraySize(user), 3);
  ML_CHECK_STR(str_at(cJSON_GetArrayItem(user, 0), "type"), "text");
  ML_CHECK_STR(str_at(cJSON_GetArrayItem(user, 0), "text"), "one");
  ML_CHECK_STR(str_at(cJSON_GetArrayItem(user, 1), "text"), "two");
  ML_CHECK_STR(str_at(cJSON_GetArrayItem(user, 2), "text"), "three");
  const cJSON *asst = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(msgs, 1), "content");
  ML_CHECK_INT(cJSON_GetArraySize(asst), 2);
  ML_CHECK_STR(str_at(cJSON_GetArrayItem(asst, 1), "text"), "b");
  ML_CHECK_STR(str_at(b, "system"), "sys");
  cJSON_Delete(b);
}

static void request_content_parts_pass_through_unchanged(void) {
  char err[256];
  cJSON *b =
      convert("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":["
              "{\"type\":\"text\",\"text\":\"look\",\"cache_control\":{\"type\":\"ephemeral\"}}"
              "]}]}",
              err, sizeof err);
  ML_CHECK(b != NULL);
  const cJSON *part = cJSON_GetArrayItem(
      cJSON_GetObjectItemCaseSensitive(
          cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(b, "messages"), 0), "content"),
      0);
  ML_CHECK_STR(str_at(part, "text"), "look");
  ML_CHECK(cJSON_HasObjectItem(part, "cache_control"));
  cJSON_Delete(b);
}

static void request_must_start_with_a_user_message(void) {
  check_rejected("{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"s\"},"
                 "{\"role\":\"assistant\",\"content\":\"hi\"}]}",
                 "messages[1]: the first non-system message must be from the user");
  check_rejected("{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"s\"}]}",
                 "no user message");
  check_rejected("{\"model\":\"m\",\"messages\":[]}", "no user message");
}

static void request_with_broken_messages_is_rejected_naming_the_message(void) {
  check_rejected("{\"model\":\"m\"}", "no \"messages\" list");
  check_rejected("{\"model\":\"m\",\"messages\":{}}", "no \"messages\" list");
  check_rejected("{\"model\":\"m\",\"messages\":[\"hi\"]}", "messages[0] is not");
  check_rejected("{\"model\":\"m\",\"messages\":[{\"content\":\"hi\"}]}", "messages[0] is not");
  check_rejected("{\"model\":\"m\",\"messages\":[{\"role\":7,\"content\":\"hi\"}]}",
                 "messages[0] is not");
  check_rejected("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
                 "{\"role\":\"tool\",\"content\":\"x\"}]}",
                 "messages[1]: role 'tool' is not supported");
  check_rejected("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":42}]}",
                 "messages[0]: content must be");
  check_rejected("{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}]}",
                 "messages[0]: content must be");
  check_rejected("{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":[{\"type\":"
                 "\"image_url\",\"image_url\":{\"url\":\"x\"}}]},{\"role\":\"user\",\"content\":"
                 "\"a\"}]}",
                 "messages[0]: a system message must be text");
  check_rejected("{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":null},"
                 "{\"role\":\"user\",\"content\":\"a\"}]}",
                 "messages[0]: a system message must be text");
}

static void request_needs_an_object_with_a_model(void) {
  check_rejected("[1]", "not a JSON object");
  check_rejected("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}", "no \"model\"");
  check_rejected("{\"model\":5,\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}",
                 "no \"model\"");
  char err[64] = "untouched";
  ML_CHECK(anthropic_body(NULL, err, sizeof err) == NULL);
  ML_CHECK(strstr(err, "not a JSON object") != NULL);
}

#define USER "\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]"

static void request_max_tokens_defaults_to_4096(void) {
  char err[256];
  cJSON *b = convert("{\"model\":\"m\"," USER "}", err, sizeof err);
  ML_CHECK(num_at(b, "max_tokens") == ANTHROPIC_DEFAULT_MAX_TOKENS);
  cJSON_Delete(b);
  b = convert("{\"model\":\"m\"," USER ",\"max_tokens\":null}", err, sizeof err);
  ML_CHECK(num_at(b, "max_tokens") == 4096);
  cJSON_Delete(b);
}

static void request_max_tokens_is_copied_or_taken_from_max_completion_tokens(void) {
  char err[256];
  cJSON *b = convert("{\"model\":\"m\"," USER ",\"max_tokens\":77}", err, sizeof err);
  ML_CHECK(num_at(b, "max_tokens") == 77);
  cJSON_Delete(b);
  b = convert("{\"model\":\"m\"," USER ",\"max_completion_tokens\":99}", err, sizeof err);
  ML_CHECK(num_at(b, "max_tokens") == 99);
  ML_CHECK(!cJSON_HasObjectItem(b, "max_completion_tokens"));
  cJSON_Delete(b);
}

static void request_max_tokens_must_be_a_positive_integer(void) {
  static const char *bad[] = {"0", "-5", "1.5", "\"100\"", "true", "1e300", "[]"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char json[256];
    snprintf(json, sizeof json, "{\"model\":\"m\"," USER ",\"max_tokens\":%s}", bad[i]);
    check_rejected(json, "max_tokens must be a positive integer");
  }
}

static void request_stop_becomes_stop_sequences(void) {
  char err[256];
  cJSON *b = convert("{\"model\":\"m\"," USER ",\"stop\":\"END\"}", err, sizeof err);
  const cJSON *s = cJSON_GetObjectItemCaseSensitive(b, "stop_sequences");
  ML_CHECK_INT(cJSON_GetArraySize(s), 1);
  ML_CHECK_STR(cJSON_GetArrayItem(s, 0)->valuestring, "END");
  ML_CHECK(!cJSON_HasObjectItem(b, "stop"));
  cJSON_Delete(b);
  b = convert("{\"model\":\"m\"," USER ",\"stop\":[\"a\",\"\\n\\n\"]}", err, sizeof err);
  s = cJSON_GetObjectItemCaseSensitive(b, "stop_sequences");
  ML_CHECK_INT(cJSON_GetArraySize(s), 2);
  ML_CHECK_STR(cJSON_GetArrayItem(s, 1)->valuestring, "\n\n");
  cJSON_Delete(b);
  b = convert("{\"model\":\"m\"," USER ",\"stop\":null}", err, sizeof err);
  ML_CHECK(b != NULL && !cJSON_HasObjectItem(b, "stop_sequences"));
  cJSON_Delete(b);
  b = convert("{\"model\":\"m\"," USER ",\"stop\":[]}", err, sizeof err);
  ML_CHECK(b != NULL && !cJSON_HasObjectItem(b, "stop_sequences"));
  cJSON_Delete(b);
}

static void request_stop_of_the_wrong_type_is_rejected(void) {
  check_rejected("{\"model\":\"m\"," USER ",\"stop\":5}", "stop must be a string or a list");
  check_rejected("{\"model\":\"m\"," USER ",\"stop\":[\"a\",1]}", "stop must be a string or");
}

static void request_sampling_fields_and_stream_are_copied(void) {
  char err[256];
  cJSON *b = convert("{\"model\":\"m\"," USER ",\"temperature\":0.3,\"top_p\":0.9,"
                     "\"stream\":true,\"top_k\":40}",
                     err, sizeof err);
  ML_CHECK(num_at(b, "temperature") == 0.3);
  ML_CHECK(num_at(b, "top_p") == 0.9);
  ML_CHECK(num_at(b, "top_k") == 40);
  ML_CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(b, "stream")));
  cJSON_Delete(b);
  check_rejected("{\"model\":\"m\"," USER ",\"temperature\":\"hot\"}",
                 "temperature must be a number");
  check_rejected("{\"model\":\"m\"," USER ",\"stream\":\"yes\"}", "stream must be true or false");
}

static void request_seed_and_stream_options_are_dropped(void) {
  char err[256];
  cJSON *b = convert("{\"model\":\"m\"," USER ",\"seed\":7,\"stream\":true,"
                     "\"stream_options\":{\"include_usage\":true}}",
                     err, sizeof err);
  ML_CHECK(b != NULL);
  ML_CHECK(!cJSON_HasObjectItem(b, "seed"));
  ML_CHECK(!cJSON_HasObjectItem(b, "stream_options"));
  cJSON_Delete(b);
}

static void request_n_above_one_is_rejected(void) {
  char err[256];
  cJSON *b = convert("{\"model\":\"m\"," USER ",\"n\":1}", err, sizeof err);
  ML_CHECK(b != NULL && !cJSON_HasObjectItem(b, "n"));
  cJSON_Delete(b);
  check_rejected("{\"model\":\"m\"," USER ",\"n\":2}",
                 "n > 1 is not supported by the Messages API");
  check_rejected("{\"model\":\"m\"," USER ",\"n\":1e300}", "n > 1 is not supported");
  check_rejected("{\"model\":\"m\"," USER ",\"n\":0}", "n must be 1");
  check_rejected("{\"model\":\"m\"," USER ",\"n\":\"2\"}", "n must be 1");
}

static void request_json_object_format_asks_for_json_in_the_system_prompt(void) {
  char err[256];
  cJSON *b = convert("{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"S\"},"
                     "{\"role\":\"user\",\"content\":\"a\"}],"
                     "\"response_format\":{\"type\":\"json_object\"}}",
                     err, sizeof err);
  const char *sys = str_at(b, "system");
  ML_CHECK(sys != NULL && strncmp(sys, "S\n\n", 3) == 0);
  ML_CHECK(sys != NULL && strstr(sys, "one JSON object") != NULL);
  ML_CHECK(!cJSON_HasObjectItem(b, "response_format"));
  cJSON_Delete(b);
}

static void request_json_schema_format_puts_the_schema_in_the_system_prompt(void) {
  char err[256];
  cJSON *b = convert("{\"model\":\"m\"," USER ",\"response_format\":{\"type\":\"json_schema\","
                     "\"json_schema\":{\"name\":\"o\",\"schema\":{\"type\":\"object\","
                     "\"properties\":{\"score\":{\"type\":\"integer\"}}}}}}",
                     err, sizeof err);
  const char *sys = str_at(b, "system");
  ML_CHECK(sys != NULL && strstr(sys, "JSON Schema") != NULL);
  ML_CHECK(sys != NULL && strstr(sys, "{\"type\":\"object\",\"properties\":{\"score\":") != NULL);
  cJSON_Delete(b);
  b = convert("{\"model\":\"m\"," USER ",\"response_format\":{\"type\":\"text\"}}", err,
              sizeof err);
  ML_CHECK(b != NULL && !cJSON_HasObjectItem(b, "system"));
  cJSON_Delete(b);
}

static void request_unusable_response_format_is_rejected(void) {
  check_rejected("{\"model\":\"m\"," USER ",\"response_format\":{\"type\":\"json_schema\"}}",
                 "response_format.json_schema.schema must be an object");
  check_rejected("{\"model\":\"m\"," USER ",\"response_format\":{\"type\":\"xml\"}}",
                 "response_format type 'xml' is not supported");
  check_rejected("{\"model\":\"m\"," USER ",\"response_format\":\"json\"}",
                 "response_format must be an object");
}

static void request_other_keys_pass_through_as_provider_extras(void) {
  char err[256];
  cJSON *b = convert("{\"model\":\"m\"," USER ",\"metadata\":{\"user_id\":\"u1\"},"
                     "\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":1024}}",
                     err, sizeof err);
  ML_CHECK_STR(str_at(cJSON_GetObjectItemCaseSensitive(b, "metadata"), "user_id"), "u1");
  ML_CHECK(num_at(cJSON_GetObjectItemCaseSensitive(b, "thinking"), "budget_tokens") == 1024);
  cJSON_Delete(b);
}

/* ---- response bodies ----------------------------------------------------------------- */

static void body_text_blocks_are_joined_and_other_blocks_skipped(void) {
  struct llm_response r;
  ML_CHECK_INT(parse(&r, "{\"type\":\"message\",\"model\":\"claude-x\",\"content\":["
                         "{\"type\":\"thinking\",\"thinking\":\"hmm\",\"signature\":\"s\"},"
                         "{\"type\":\"text\",\"text\":\"Hello, \"},"
                         "{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{}},"
                         "{\"type\":\"text\",\"text\":\"w\\u00f6rld\"}],"
                         "\"stop_reason\":\"end_turn\","
                         "\"usage\":{\"input_tokens\":21,\"output_tokens\":9}}"),
               0);
  ML_CHECK_INT(r.nchoices, 1);
  ML_CHECK_STR(r.choices[0].text.data, "Hello, w\xc3\xb6rld");
  ML_CHECK_STR(r.choices[0].finish_reason, "stop");
  ML_CHECK_STR(r.model, "claude-x");
  ML_CHECK_INT(r.input_tokens, 21);
  ML_CHECK_INT(r.output_tokens, 9);
  ML_CHECK_INT(r.has_usage, 1);
  llm_response_free(&r);
}

static void body_stop_reasons_map_to_finish_reasons(void) {
  static const char *const map[][2] = {
      {"end_turn", "stop"},       {"stop_sequence", "stop"}, {"max_tokens", "length"},
      {"tool_use", "tool_calls"}, {"refusal", "refusal"},    {"pause_turn", "pause_turn"},
  };
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
    char body[256];
    snprintf(body, sizeof body, "{\"content\":[],\"stop_reason\":\"%s\"}", map[i][0]);
    struct llm_response r;
    ML_CHECK_INT(parse(&r, body), 0);
    ML_CHECK_STR(r.choices[0].finish_reason, map[i][1]);
    llm_response_free(&r);
  }
}

static void body_with_empty_content_is_an_empty_answer(void) {
  struct llm_response r;
  ML_CHECK_INT(parse(&r, "{\"content\":[],\"stop_reason\":null}"), 0);
  ML_CHECK_STR(r.choices[0].text.data, "");
  ML_CHECK_STR(r.choices[0].finish_reason, "");
  ML_CHECK_INT(r.has_usage, 0);
  llm_response_free(&r);
}

static void body_without_a_content_array_is_rejected(void) {
  static const char *bad[] = {
      "{\"type\":\"message\",\"stop_reason\":\"end_turn\"}",
      "{\"content\":\"hello\"}",
      "{\"content\":null}",
      "{\"content\":{\"type\":\"text\",\"text\":\"x\"}}",
      "[]",
      "\"content\"",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct llm_response r;
    ML_CHECK_INT(parse(&r, bad[i]), -1);
    ML_CHECK(strstr(r.error, "no \"content\" array") != NULL);
    llm_response_free(&r);
  }
}

static void body_with_broken_blocks_is_rejected_naming_the_block(void) {
  static const char *const bad[][2] = {
      {"{\"content\":[\"just text\"]}", "content[0]"},
      {"{\"content\":[{\"text\":\"no type\"}]}", "content[0]"},
      {"{\"content\":[{\"type\":\"text\",\"text\":\"ok\"},{\"type\":\"text\",\"text\":42}]}",
       "content[1]: a text block without a text string"},
      {"{\"content\":[{\"type\":\"text\"}]}", "content[0]: a text block"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct llm_response r;
    ML_CHECK_INT(parse(&r, bad[i][0]), -1);
    ML_CHECK(strstr(r.error, bad[i][1]) != NULL);
    llm_response_free(&r);
  }
}

static void body_that_is_an_error_object_is_reported(void) {
  struct llm_response r;
  ML_CHECK_INT(parse(&r, "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
                         "\"message\":\"Overloaded\"}}"),
               -1);
  ML_CHECK_STR(r.error_type, "overloaded_error");
  ML_CHECK(strstr(r.error, "overloaded_error: Overloaded") != NULL);
  llm_response_free(&r);
}

static void body_that_is_not_json_says_where(void) {
  struct llm_response r;
  ML_CHECK_INT(parse(&r, "{\"content\":[{\"type\":\"text\",\"text\":\"abc"), -1);
  ML_CHECK(strstr(r.error, "the response body is not valid JSON") != NULL);
  ML_CHECK(strstr(r.error, "byte") != NULL);
  llm_response_free(&r);
  ML_CHECK_INT(parse(&r, ""), -1);
  ML_CHECK(strstr(r.error, "not valid JSON") != NULL);
  llm_response_free(&r);
}

static void body_token_counts_out_of_range_or_mistyped_are_ignored(void) {
  struct llm_response r;
  ML_CHECK_INT(parse(&r, "{\"content\":[],\"usage\":{\"input_tokens\":1e300,"
                         "\"output_tokens\":-4}}"),
               0);
  ML_CHECK_INT(r.input_tokens, 0);
  ML_CHECK_INT(r.output_tokens, 0);
  ML_CHECK_INT(r.has_usage, 0);
  llm_response_free(&r);
  ML_CHECK_INT(parse(&r, "{\"content\":[],\"usage\":{\"input_tokens\":\"12\","
                         "\"output_tokens\":3},\"model\":7}"),
               0);
  ML_CHECK_INT(r.input_tokens, 0);
  ML_CHECK_INT(r.output_tokens, 3);
  ML_CHECK_STR(r.model, "");
  llm_response_free(&r);
  ML_CHECK_INT(parse(&r, "{\"content\":[],\"usage\":[1,2]}"), 0);
  ML_CHECK_INT(r.has_usage, 0);
  llm_response_free(&r);
}

/* ---- streams ------------------------------------------------------------------------- */

#define MSG_START                                                                                  \
  "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\","                \
  "\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],\"stop_reason\":null,"             \
  "\"usage\":{\"input_tokens\":30,\"output_tokens\":1}}}"
#define BLOCK_START                                                                                \
  "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\","            \
  "\"text\":\"\"}}"
#define TEXT(t)                                                                                    \
  "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","              \
  "\"text\":\"" t "\"}}"
#define MSG_DELTA(reason, out)                                                                     \
  "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"" reason "\"},"                        \
  "\"usage\":{\"output_tokens\":" #out "}}"

static void stream_gives_text_usage_model_and_stop_reason(void) {
  struct llm_response r;
  llm_response_init(&r, 1, 0);
  ML_CHECK_INT(feed(&r, "message_start", MSG_START), 0);
  ML_CHECK_STR(r.model, "claude-x");
  ML_CHECK_INT(r.input_tokens, 30);
  ML_CHECK_INT(feed(&r, "content_block_start", BLOCK_START), 0);
  ML_CHECK_INT(feed(&r, "content_block_delta", TEXT("Hel")), 0);
  ML_CHECK_INT(feed(&r, "content_block_delta", TEXT("lo")), 0);
  ML_CHECK_INT(feed(&r, "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}"), 0);
  ML_CHECK_INT(feed(&r, "message_delta", MSG_DELTA("max_tokens", 2)), 0);
  ML_CHECK_INT(r.stream_done, 0);
  ML_CHECK_INT(feed(&r, "message_stop", "{\"type\":\"message_stop\"}"), 0);
  ML_CHECK_INT(r.stream_done, 1);
  ML_CHECK_STR(r.choices[0].text.data, "Hello");
  ML_CHECK_STR(r.choices[0].finish_reason, "length");
  ML_CHECK_INT(r.output_tokens, 2);
  ML_CHECK_INT(r.ndeltas, 0);
  llm_response_free(&r);
}

static void stream_text_deltas_are_queued_when_wanted(void) {
  struct llm_response r;
  llm_response_init(&r, 1, 1);
  ML_CHECK_INT(feed(&r, "message_start", MSG_START), 0);
  ML_CHECK_INT(feed(&r, "content_block_delta", TEXT("a")), 1);
  ML_CHECK_INT(feed(&r, "content_block_delta", TEXT("")), 0);
  ML_CHECK_INT(feed(&r, "content_block_delta", TEXT("b\\n")), 1);
  ML_CHECK_INT(r.ndeltas, 2);
  ML_CHECK_INT(r.deltas[0].index, 0);
  ML_CHECK_STR(r.deltas[1].text, "b\n");
  ML_CHECK_INT((long long)r.deltas[1].len, 2);
  llm_response_free(&r);
}

static void stream_output_tokens_are_cumulative(void) {
  struct llm_response r;
  llm_response_init(&r, 1, 0);
  ML_CHECK_INT(feed(&r, "message_start", MSG_START), 0);
  ML_CHECK_INT(r.output_tokens, 1);
  ML_CHECK_INT(feed(&r, "message_delta", MSG_DELTA("end_turn", 10)), 0);
  ML_CHECK_INT(feed(&r, "message_delta", MSG_DELTA("end_turn", 25)), 0);
  ML_CHECK_INT(r.output_tokens, 25);
  ML_CHECK_INT(r.input_tokens, 30);
  llm_response_free(&r);
}

static void stream_tool_thinking_and_signature_deltas_are_not_text(void) {
  struct llm_response r;
  llm_response_init(&r, 1, 1);
  ML_CHECK_INT(feed(&r, "content_block_start",
                    "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
                    "{\"type\":\"thinking\",\"thinking\":\"pre\"}}"),
               0);
  ML_CHECK_INT(feed(&r, "content_block_delta",
                    "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
                    "{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}"),
               0);
  ML_CHECK_INT(feed(&r, "content_block_delta",
                    "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
                    "{\"type\":\"signature_delta\",\"signature\":\"abc\"}}"),
               0);
  ML_CHECK_INT(feed(&r, "content_block_delta",
                    "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":"
                    "{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\"}}"),
               0);
  ML_CHECK_INT(feed(&r, "content_block_delta",
                    "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{}}"),
               0);
  ML_CHECK_INT(feed(&r, "content_block_delta", "{\"type\":\"content_block_delta\"}"), 0);
  ML_CHECK_INT(r.ndeltas, 0);
  ML_CHECK_STR(r.choices[0].text.data, "");
  llm_response_free(&r);
}

static void stream_text_in_content_block_start_counts(void) {
  struct llm_response r;
  llm_response_init(&r, 1, 1);
  ML_CHECK_INT(feed(&r, "content_block_start",
                    "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
                    "{\"type\":\"text\",\"text\":\"Pre\"}}"),
               1);
  ML_CHECK_INT(feed(&r, "content_block_delta", TEXT("fix")), 1);
  ML_CHECK_STR(r.choices[0].text.data, "Prefix");
  llm_response_free(&r);
}

static void stream_ping_and_unknown_events_are_ignored(void) {
  struct llm_response r;
  llm_response_init(&r, 1, 1);
  ML_CHECK_INT(feed(&r, "ping", "{\"type\": \"ping\"}"), 0);
  ML_CHECK_INT(feed(&r, "content_block_delta", TEXT("x")), 1);
  ML_CHECK_INT(feed(&r, "future_event", "{\"type\":\"future_event\",\"stuff\":[1,2]}"), 0);
  ML_CHECK_INT(feed(&r, "ping", "{}"), 0);
  ML_CHECK_INT(feed(&r, "message", "{\"no\":\"type\"}"), 0);
  ML_CHECK_INT(feed(&r, "message", "[1,2,3]"), 0);
  ML_CHECK_INT(feed(&r, "message", "42"), 0);
  ML_CHECK_STR(r.choices[0].text.data, "x");
  ML_CHECK_INT(r.stream_done, 0);
  ML_CHECK_STR(r.error, "");
  llm_response_free(&r);
}

static void stream_event_name_wins_and_json_type_is_the_fallback(void) {
  struct llm_response r;
  llm_response_init(&r, 1, 0);
  /* No event: line (the parser reports "message"): the JSON type decides. */
  ML_CHECK_INT(feed(&r, "message", TEXT("a")), 0);
  ML_CHECK_STR(r.choices[0].text.data, "a");
  /* The event: line names a ping, so the text in the data is not used. */
  ML_CHECK_INT(feed(&r, "ping", TEXT("b")), 0);
  ML_CHECK_STR(r.choices[0].text.data, "a");
  ML_CHECK_INT(feed(&r, "message", "{\"type\":\"message_stop\"}"), 0);
  ML_CHECK_INT(r.stream_done, 1);
  llm_response_free(&r);
}

static void stream_error_event_mid_stream_is_reported(void) {
  struct llm_response r;
  llm_response_init(&r, 1, 1);
  ML_CHECK_INT(feed(&r, "message_start", MSG_START), 0);
  ML_CHECK_INT(feed(&r, "content_block_delta", TEXT("partial")), 1);
  ML_CHECK_INT(feed(&r, "error",
                    "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
                    "\"message\":\"Overloaded\"}}"),
               -1);
  ML_CHECK_STR(r.error_type, "overloaded_error");
  ML_CHECK(strstr(r.error, "overloaded_error: Overloaded") != NULL);
  ML_CHECK(strstr(r.error, "mid-stream") != NULL);
  ML_CHECK_INT(r.stream_done, 0);
  ML_CHECK_STR(r.choices[0].text.data, "partial");
  llm_response_free(&r);
}

static void stream_error_event_without_details_still_fails(void) {
  struct llm_response r;
  llm_response_init(&r, 1, 0);
  ML_CHECK_INT(feed(&r, "error", "{}"), -1);
  ML_CHECK(strstr(r.error, "(no message)") != NULL);
  ML_CHECK_STR(r.error_type, "");
  llm_response_free(&r);
  llm_response_init(&r, 1, 0);
  ML_CHECK_INT(feed(&r, "message", "{\"type\":\"error\",\"error\":\"boom\"}"), -1);
  llm_response_free(&r);
}

static void stream_cut_before_message_stop_is_not_done(void) {
  struct llm_response r;
  llm_response_init(&r, 1, 0);
  ML_CHECK_INT(feed(&r, "message_start", MSG_START), 0);
  ML_CHECK_INT(feed(&r, "content_block_delta", TEXT("all of it")), 0);
  ML_CHECK_INT(feed(&r, "message_delta", MSG_DELTA("end_turn", 3)), 0);
  ML_CHECK_INT(r.stream_done, 0);
  ML_CHECK_STR(r.choices[0].finish_reason, "stop");
  llm_response_free(&r);
}

static void stream_events_after_message_stop_are_ignored(void) {
  struct llm_response r;
  llm_response_init(&r, 1, 0);
  ML_CHECK_INT(feed(&r, "content_block_delta", TEXT("a")), 0);
  ML_CHECK_INT(feed(&r, "message_stop", "{\"type\":\"message_stop\"}"), 0);
  ML_CHECK_INT(feed(&r, "content_block_delta", TEXT("b")), 0);
  ML_CHECK_INT(feed(&r, "error", "{\"type\":\"error\"}"), 0);
  ML_CHECK_INT(feed(&r, "ping", "not json"), 0);
  ML_CHECK_STR(r.choices[0].text.data, "a");
  ML_CHECK_STR(r.error, "");
  llm_response_free(&r);
}

static void stream_event_that_is_not_json_is_a_parse_error(void) {
  struct llm_response r;
  llm_response_init(&r, 1, 0);
  ML_CHECK_INT(feed(&r, "content_block_delta", "{\"type\":\"content_block_delta\",\"delta\":{"),
               -1);
  ML_CHECK(strstr(r.error, "a stream event is not valid JSON") != NULL);
  llm_response_free(&r);
  llm_response_init(&r, 1, 0);
  ML_CHECK_INT(feed(&r, "ping", ""), -1);
  llm_response_free(&r);
}

static void stream_text_delta_with_wrong_types_is_an_error(void) {
  static const char *bad[] = {
      "{\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":7}}",
      "{\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\"}}",
      "{\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":null}}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct llm_response r;
    llm_response_init(&r, 1, 0);
    ML_CHECK_INT(feed(&r, "content_block_delta", bad[i]), -1);
    ML_CHECK(strstr(r.error, "text_delta without a text string") != NULL);
    llm_response_free(&r);
  }
}

static void stream_mistyped_fields_elsewhere_are_ignored(void) {
  struct llm_response r;
  llm_response_init(&r, 1, 0);
  ML_CHECK_INT(feed(&r, "message_start",
                    "{\"message\":{\"model\":[],\"usage\":{"
                    "\"input_tokens\":1e30}}}"),
               0);
  ML_CHECK_INT(feed(&r, "message_start", "{\"message\":\"x\"}"), 0);
  ML_CHECK_INT(feed(&r, "message_delta", "{\"delta\":{\"stop_reason\":5},\"usage\":7}"), 0);
  ML_CHECK_INT(feed(&r, "content_block_start",
                    "{\"content_block\":{\"type\":\"text\","
                    "\"text\":9}}"),
               0);
  ML_CHECK_STR(r.model, "");
  ML_CHECK_INT(r.input_tokens, 0);
  ML_CHECK_STR(r.choices[0].finish_reason, "");
  ML_CHECK_STR(r.choices[0].text.data, "");
  llm_response_free(&r);
}

/* ---- recorded streams through the SSE parser ----------------------------------------- */

struct replay {
  struct llm_response res;
  int rc;    /* first non-zero anthropic_stream_event result that is -1 */
  int woken; /* how many events returned 1 */
};

static int on_event(void *ud, const struct sse_event *ev) {
  struct replay *p = ud;
  int rc = anthropic_stream_event(&p->res, ev);
  if (rc > 0)
    p->woken++;
  if (rc < 0) {
    p->rc = rc;
    return 1;
  }
  return 0;
}

/* Feed s in two pieces cut at `cut` (or byte by byte when cut is (size_t)-1). */
static void replay(struct replay *p, const char *s, size_t len, size_t cut) {
  struct sse_parser sp;
  memset(p, 0, sizeof *p);
  llm_response_init(&p->res, 1, 1);
  sse_init(&sp, on_event, p);
  if (cut == (size_t)-1) {
    for (size_t i = 0; i < len; i++)
      sse_feed(&sp, s + i, 1);
  } else {
    sse_feed(&sp, s, cut);
    sse_feed(&sp, s + cut, len - cut);
  }
  ML_CHECK_INT(sse_pending(&sp), 0);
  sse_free(&sp);
}

struct expected {
  const char *text, *finish, *model;
  long in, out;
  int deltas;
};

static int replay_matches(const struct replay *p, const struct expected *e) {
  const struct llm_response *r = &p->res;
  return p->rc == 0 && r->stream_done == 1 && r->nchoices == 1 &&
         strcmp(r->choices[0].text.data, e->text) == 0 &&
         strcmp(r->choices[0].finish_reason, e->finish) == 0 && strcmp(r->model, e->model) == 0 &&
         r->input_tokens == e->in && r->output_tokens == e->out && r->ndeltas == e->deltas &&
         p->woken == e->deltas;
}

static void check_recording(const char *name, const struct expected *e) {
  size_t len = 0;
  char *s = read_fixture(name, &len);
  ML_CHECK(s != NULL);
  if (s == NULL)
    return;
  struct replay p;
  size_t bad = 0;
  for (size_t cut = 0; cut <= len; cut++) {
    replay(&p, s, len, cut);
    if (!replay_matches(&p, e)) {
      if (bad++ == 0)
        fprintf(stderr, "  %s cut at %zu: text \"%s\" finish \"%s\" in %ld out %ld rc %d %s\n",
                name, cut, p.res.choices ? p.res.choices[0].text.data : "(none)",
                p.res.choices ? p.res.choices[0].finish_reason : "", p.res.input_tokens,
                p.res.output_tokens, p.rc, p.res.error);
    }
    llm_response_free(&p.res);
  }
  ML_CHECK_INT(bad, 0);
  replay(&p, s, len, (size_t)-1);
  ML_CHECK(replay_matches(&p, e));
  llm_response_free(&p.res);
  /* Without the final message_stop event the stream is not done. */
  const char *last = strstr(s, "event: message_stop");
  ML_CHECK(last != NULL);
  if (last) {
    replay(&p, s, (size_t)(last - s), (size_t)(last - s) / 2);
    ML_CHECK_INT(p.res.stream_done, 0);
    ML_CHECK_STR(p.res.choices[0].text.data, e->text);
    llm_response_free(&p.res);
  }
  free(s);
}

static void recorded_tool_use_stream_reads_the_same_at_every_split(void) {
  struct expected e = {"Let me look that up \xe2\x80\x94 the \"Z\xc3\xbcrich\" forecast\nfirst.",
                       "tool_calls",
                       "claude-sonnet-4-20250514",
                       412,
                       58,
                       2};
  check_recording("anthropic_messages.txt", &e);
}

static void recorded_thinking_stream_reads_the_same_at_every_split(void) {
  struct expected e = {
      "2, 3 and 5 \xe2\x80\x94 primes \xe2\x9c\x93", "stop", "claude-opus-4-20250514", 87, 41, 2};
  check_recording("anthropic_thinking.txt", &e);
}

static void recorded_stream_with_an_error_event_stops_there(void) {
  static const char s[] =
      "event: message_start\ndata: " MSG_START "\n\n"
      "event: content_block_delta\ndata: " TEXT(
          "one ") "\n\n"
                  "event: content_block_delta\ndata: " TEXT(
                      "two") "\n\n"
                             "event: error\ndata: "
                             "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
                             "\"message\":\"Overloaded\"}}\n\n"
                             "event: content_block_delta\ndata: " TEXT("never") "\n\n";
  struct replay p;
  replay(&p, s, sizeof s - 1, 17);
  ML_CHECK_INT(p.rc, -1);
  ML_CHECK_STR(p.res.error_type, "overloaded_error");
  ML_CHECK_STR(p.res.choices[0].text.data, "one two");
  ML_CHECK_INT(p.res.stream_done, 0);
  llm_response_free(&p.res);
}

/* ---- error bodies -------------------------------------------------------------------- */

static void error_body_gives_type_and_message(void) {
  char out[256];
  const char *b = "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
                  "\"message\":\"Overloaded\"},\"request_id\":\"req_1\"}";
  anthropic_error_message(b, strlen(b), out, sizeof out);
  ML_CHECK_STR(out, "overloaded_error: Overloaded");
  b = "{\"type\":\"error\",\"error\":{\"type\":\"api_error\"}}";
  anthropic_error_message(b, strlen(b), out, sizeof out);
  ML_CHECK_STR(out, "api_error");
}

static void error_body_in_other_shapes_falls_back_like_openai(void) {
  char out[256];
  const char *b = "{\"error\":{\"message\":\"Rate limited\"}}";
  anthropic_error_message(b, strlen(b), out, sizeof out);
  ML_CHECK_STR(out, "Rate limited");
  anthropic_error_message("<html>502 Bad Gateway</html>", 28, out, sizeof out);
  ML_CHECK_STR(out, "<html>502 Bad Gateway</html>");
  anthropic_error_message("", 0, out, sizeof out);
  ML_CHECK_STR(out, "(empty response body)");
  anthropic_error_message(NULL, 0, out, sizeof out);
  ML_CHECK_STR(out, "(empty response body)");
  b = "{\"error\":{\"type\":7,\"message\":[]}}";
  anthropic_error_message(b, strlen(b), out, sizeof out);
  ML_CHECK_STR(out, b);
}

static void error_message_fits_a_small_buffer(void) {
  char out[8];
  const char *b = "{\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}";
  anthropic_error_message(b, strlen(b), out, sizeof out);
  ML_CHECK_STR(out, "overloa");
}

ML_TEST_MAIN(ML_CASE(request_system_messages_become_one_system_string),
             ML_CASE(request_without_system_message_has_no_system_field),
             ML_CASE(request_consecutive_same_role_messages_are_merged_into_blocks),
             ML_CASE(request_content_parts_pass_through_unchanged),
             ML_CASE(request_must_start_with_a_user_message),
             ML_CASE(request_with_broken_messages_is_rejected_naming_the_message),
             ML_CASE(request_needs_an_object_with_a_model),
             ML_CASE(request_max_tokens_defaults_to_4096),
             ML_CASE(request_max_tokens_is_copied_or_taken_from_max_completion_tokens),
             ML_CASE(request_max_tokens_must_be_a_positive_integer),
             ML_CASE(request_stop_becomes_stop_sequences),
             ML_CASE(request_stop_of_the_wrong_type_is_rejected),
             ML_CASE(request_sampling_fields_and_stream_are_copied),
             ML_CASE(request_seed_and_stream_options_are_dropped),
             ML_CASE(request_n_above_one_is_rejected),
             ML_CASE(request_json_object_format_asks_for_json_in_the_system_prompt),
             ML_CASE(request_json_schema_format_puts_the_schema_in_the_system_prompt),
             ML_CASE(request_unusable_response_format_is_rejected),
             ML_CASE(request_other_keys_pass_through_as_provider_extras),
             ML_CASE(body_text_blocks_are_joined_and_other_blocks_skipped),
             ML_CASE(body_stop_reasons_map_to_finish_reasons),
             ML_CASE(body_with_empty_content_is_an_empty_answer),
             ML_CASE(body_without_a_content_array_is_rejected),
             ML_CASE(body_with_broken_blocks_is_rejected_naming_the_block),
             ML_CASE(body_that_is_an_error_object_is_reported),
             ML_CASE(body_that_is_not_json_says_where),
             ML_CASE(body_token_counts_out_of_range_or_mistyped_are_ignored),
             ML_CASE(stream_gives_text_usage_model_and_stop_reason),
             ML_CASE(stream_text_deltas_are_queued_when_wanted),
             ML_CASE(stream_output_tokens_are_cumulative),
             ML_CASE(stream_tool_thinking_and_signature_deltas_are_not_text),
             ML_CASE(stream_text_in_content_block_start_counts),
             ML_CASE(stream_ping_and_unknown_events_are_ignored),
             ML_CASE(stream_event_name_wins_and_json_type_is_the_fallback),
             ML_CASE(stream_error_event_mid_stream_is_reported),
             ML_CASE(stream_error_event_without_details_still_fails),
             ML_CASE(stream_cut_before_message_stop_is_not_done),
             ML_CASE(stream_events_after_message_stop_are_ignored),
             ML_CASE(stream_event_that_is_not_json_is_a_parse_error),
             ML_CASE(stream_text_delta_with_wrong_types_is_an_error),
             ML_CASE(stream_mistyped_fields_elsewhere_are_ignored),
             ML_CASE(recorded_tool_use_stream_reads_the_same_at_every_split),
             ML_CASE(recorded_thinking_stream_reads_the_same_at_every_split),
             ML_CASE(recorded_stream_with_an_error_event_stops_there),
             ML_CASE(error_body_gives_type_and_message),
             ML_CASE(error_body_in_other_shapes_falls_back_like_openai),
             ML_CASE(error_message_fits_a_small_buffer))

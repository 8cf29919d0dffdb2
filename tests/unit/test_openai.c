/* The OpenAI wire format: response bodies, stream events and error bodies, including
 * what broken servers send. */
#include <stdlib.h>

#include "llm/openai.h"
#include "ml_test.h"

static struct sse_event ev(const char *data) {
  struct sse_event e = {"message", 7, data, strlen(data), ""};
  return e;
}

static void body_with_two_choices_and_usage(void) {
  const char *b = "{\"id\":\"x\",\"model\":\"m-1\",\"choices\":["
                  "{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"hi \\u00e9\"},"
                  "\"finish_reason\":\"stop\"},"
                  "{\"index\":1,\"message\":{\"role\":\"assistant\",\"content\":\"yo\"},"
                  "\"finish_reason\":\"length\"}],"
                  "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":5}}";
  struct llm_response r;
  llm_response_init(&r, 2, 0);
  ML_CHECK_INT(openai_parse_body(&r, b, strlen(b)), 0);
  ML_CHECK_INT(r.nchoices, 2);
  ML_CHECK_STR(r.choices[0].text.data, "hi \xc3\xa9");
  ML_CHECK_STR(r.choices[1].finish_reason, "length");
  ML_CHECK_INT(r.input_tokens, 12);
  ML_CHECK_INT(r.output_tokens, 5);
  ML_CHECK_STR(r.model, "m-1");
  llm_response_free(&r);
}

static void null_content_is_an_empty_answer(void) {
  const char *b = "{\"choices\":[{\"message\":{\"content\":null},\"finish_reason\":\"stop\"}]}";
  struct llm_response r;
  llm_response_init(&r, 1, 0);
  ML_CHECK_INT(openai_parse_body(&r, b, strlen(b)), 0);
  ML_CHECK_STR(r.choices[0].text.data, "");
  ML_CHECK_INT(r.has_usage, 0);
  llm_response_free(&r);
}

static void broken_bodies_are_rejected_with_a_reason(void) {
  static const char *bad[] = {
      "", "{", "not json", "{\"choices\":[]}", "{\"choices\":{}}", "[1,2]",
      "{\"choices\":[{\"message\":{\"content\":42}}]}",
      "{\"choices\":[{\"index\":99999,\"message\":{\"content\":\"x\"}}]}",
      "{\"choices\":[{\"index\":-3,\"message\":{\"content\":\"x\"}}]}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct llm_response r;
    llm_response_init(&r, 1, 0);
    ML_CHECK_INT(openai_parse_body(&r, bad[i], strlen(bad[i])), -1);
    ML_CHECK(r.error[0] != '\0');
    llm_response_free(&r);
  }
}

static void truncated_json_error_says_where(void) {
  const char *b = "{\"choices\":[{\"message\":{\"content\":\"abc";
  struct llm_response r;
  llm_response_init(&r, 1, 0);
  ML_CHECK_INT(openai_parse_body(&r, b, strlen(b)), -1);
  ML_CHECK(strstr(r.error, "not valid JSON") != NULL);
  ML_CHECK(strstr(r.error, "byte") != NULL);
  llm_response_free(&r);
}

static void stream_accumulates_deltas_and_usage(void) {
  struct llm_response r;
  llm_response_init(&r, 1, 1);
  struct sse_event e1 = ev("{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}");
  struct sse_event e2 = ev("{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}");
  struct sse_event e3 = ev("{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},"
                           "\"finish_reason\":\"stop\"}]}");
  struct sse_event e4 = ev("{\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}");
  struct sse_event e5 = ev("[DONE]");
  ML_CHECK_INT(openai_stream_event(&r, &e1), 0);
  ML_CHECK_INT(openai_stream_event(&r, &e2), 1);
  ML_CHECK_INT(openai_stream_event(&r, &e3), 1);
  ML_CHECK_INT(openai_stream_event(&r, &e4), 0);
  ML_CHECK_INT(r.stream_done, 0);
  ML_CHECK_INT(openai_stream_event(&r, &e5), 0);
  ML_CHECK_INT(r.stream_done, 1);
  ML_CHECK_STR(r.choices[0].text.data, "Hello");
  ML_CHECK_STR(r.choices[0].finish_reason, "stop");
  ML_CHECK_INT(r.ndeltas, 2);
  ML_CHECK_STR(r.deltas[0].text, "Hel");
  ML_CHECK_INT(r.output_tokens, 2);
  llm_response_free(&r);
}

static void stream_without_delta_queue_queues_nothing(void) {
  struct llm_response r;
  llm_response_init(&r, 1, 0);
  struct sse_event e = ev("{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}");
  ML_CHECK_INT(openai_stream_event(&r, &e), 0);
  ML_CHECK_INT(r.ndeltas, 0);
  ML_CHECK_STR(r.choices[0].text.data, "x");
  llm_response_free(&r);
}

static void stream_error_event_is_reported(void) {
  struct llm_response r;
  llm_response_init(&r, 1, 0);
  struct sse_event e = ev("{\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}");
  ML_CHECK_INT(openai_stream_event(&r, &e), -1);
  ML_CHECK(strstr(r.error, "overloaded") != NULL);
  ML_CHECK_STR(r.error_type, "server_error");
  llm_response_free(&r);
}

static void stream_garbage_event_is_a_parse_error(void) {
  struct llm_response r;
  llm_response_init(&r, 1, 0);
  struct sse_event e = ev("{not json at all");
  ML_CHECK_INT(openai_stream_event(&r, &e), -1);
  ML_CHECK(strstr(r.error, "stream event is not valid JSON") != NULL);
  llm_response_free(&r);
}

static void error_body_message_is_extracted(void) {
  char out[256];
  const char *b = "{\"error\":{\"message\":\"Rate limit reached\",\"type\":\"requests\"}}";
  openai_error_message(b, strlen(b), out, sizeof out);
  ML_CHECK_STR(out, "Rate limit reached");
  openai_error_message("<html>502 Bad Gateway</html>", 28, out, sizeof out);
  ML_CHECK_STR(out, "<html>502 Bad Gateway</html>");
  openai_error_message("", 0, out, sizeof out);
  ML_CHECK_STR(out, "(empty response body)");
  const char binary[] = {'a', 0, '\x01', 'b'};
  openai_error_message(binary, sizeof binary, out, sizeof out);
  ML_CHECK_STR(out, "a  b");
}

ML_TEST_MAIN(ML_CASE(body_with_two_choices_and_usage), ML_CASE(null_content_is_an_empty_answer),
             ML_CASE(broken_bodies_are_rejected_with_a_reason),
             ML_CASE(truncated_json_error_says_where), ML_CASE(stream_accumulates_deltas_and_usage),
             ML_CASE(stream_without_delta_queue_queues_nothing),
             ML_CASE(stream_error_event_is_reported), ML_CASE(stream_garbage_event_is_a_parse_error),
             ML_CASE(error_body_message_is_extracted))

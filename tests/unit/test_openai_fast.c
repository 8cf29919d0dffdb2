/* The OpenAI reader's fast path against its cJSON path: for every input, well-formed or
 * not, openai_parse_body and openai_stream_event must leave the same response (choices,
 * text, finish reasons, usage, model, deltas, error) and return the same code as
 * openai_parse_body_cjson and openai_stream_event_cjson. */
#include <stdint.h>
#include <stdlib.h>

#include "llm/openai.h"
#include "ml_test.h"

static int same_response(const struct llm_response *a, const struct llm_response *b) {
  if (a->nchoices != b->nchoices || a->input_tokens != b->input_tokens ||
      a->output_tokens != b->output_tokens || a->has_usage != b->has_usage ||
      strcmp(a->model, b->model) != 0 || strcmp(a->error, b->error) != 0 ||
      strcmp(a->error_type, b->error_type) != 0 || a->stream_done != b->stream_done ||
      a->ndeltas != b->ndeltas)
    return 0;
  for (int i = 0; i < a->nchoices; i++) {
    const struct llm_choice *x = &a->choices[i], *y = &b->choices[i];
    if ((x->text.data == NULL) != (y->text.data == NULL) || x->text.len != y->text.len ||
        (x->text.data && memcmp(x->text.data, y->text.data, x->text.len) != 0) ||
        strcmp(x->finish_reason, y->finish_reason) != 0)
      return 0;
  }
  for (int i = 0; i < a->ndeltas; i++)
    if (a->deltas[i].index != b->deltas[i].index || a->deltas[i].len != b->deltas[i].len ||
        memcmp(a->deltas[i].text, b->deltas[i].text, a->deltas[i].len) != 0)
      return 0;
  return 1;
}

/* Both paths on one body; returns 1 when they agree. */
static int body_agrees(const char *b, size_t len) {
  struct llm_response fast, slow;
  llm_response_init(&fast, 1, 0);
  llm_response_init(&slow, 1, 0);
  int rf = openai_parse_body(&fast, b, len);
  int rs = openai_parse_body_cjson(&slow, b, len);
  int ok = rf == rs && same_response(&fast, &slow);
  if (!ok)
    fprintf(stderr, "  body disagrees (fast %d, cJSON %d): %.*s\n", rf, rs, (int)len, b);
  llm_response_free(&fast);
  llm_response_free(&slow);
  return ok;
}

/* Both paths on a sequence of stream events, fed to one response each. */
static int stream_agrees(const char *const *events, int n, int want_deltas) {
  struct llm_response fast, slow;
  llm_response_init(&fast, 1, want_deltas);
  llm_response_init(&slow, 1, want_deltas);
  int ok = 1;
  for (int i = 0; i < n && ok; i++) {
    struct sse_event e = {"message", 7, events[i], strlen(events[i]), ""};
    int rf = openai_stream_event(&fast, &e);
    int rs = openai_stream_event_cjson(&slow, &e);
    ok = rf == rs && same_response(&fast, &slow);
    if (!ok)
      fprintf(stderr, "  event %d disagrees (fast %d, cJSON %d): %s\n", i, rf, rs, events[i]);
  }
  llm_response_free(&fast);
  llm_response_free(&slow);
  return ok;
}

static const char *const bodies[] = {
    /* what servers send */
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1700000000,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hello.\"},"
    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":7,"
    "\"total_tokens\":16}}",
    "{\n  \"model\" : \"m\",\n  \"choices\" : [ {\n \"message\" : { \"content\" : \"a\\nb\" } } ]\n}",
    "{\"choices\":[{\"index\":1,\"message\":{\"content\":\"one\"}},{\"index\":0,\"message\":"
    "{\"content\":\"zero\"},\"finish_reason\":\"length\"}]}",
    "{\"choices\":[{\"message\":{\"content\":\"x\",\"tool_calls\":[{\"id\":\"t\",\"function\":"
    "{\"name\":\"f\",\"arguments\":\"{}\"}}]},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}],"
    "\"system_fingerprint\":\"fp\",\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,"
    "\"prompt_tokens_details\":{\"cached_tokens\":0}},\"x\":[1,-2.5e3,true,false,null,{}]}",
    /* escapes and UTF-8 */
    "{\"choices\":[{\"message\":{\"content\":\"\\u00e9\\u4e2d\\\"\\\\\\/\\b\\f\\r\\t caf\xc3\xa9\"},"
    "\"finish_reason\":\"st\\u006fp\"}],\"model\":\"\\u006d\"}",
    "{\"choices\":[{\"message\":{\"content\":\"\\ud83d\\ude00\"}}]}",
    "{\"choices\":[{\"message\":{\"content\":\"a\\u0000b\"}}]}",
    "{\"choices\":[{\"message\":{\"content\":\"raw\ttab\"}}]}",
    "{\"choices\":[{\"message\":{\"content\":\"bad \\q escape\"}}]}",
    "{\"choices\":[{\"message\":{\"content\":\"bad \\u12 hex\"}}]}",
    /* keys: duplicates (the first counts), escaped keys */
    "{\"choices\":[{\"message\":{\"content\":\"first\"}}],\"choices\":[{\"message\":{\"content\":"
    "\"second\"}}]}",
    "{\"choices\":[{\"message\":{\"content\":\"a\",\"content\":\"b\"},\"message\":{\"content\":"
    "\"c\"},\"index\":0,\"index\":5,\"finish_reason\":\"x\",\"finish_reason\":\"y\"}]}",
    "{\"choi\\u0063es\":[{\"message\":{\"content\":\"escaped key\"}}]}",
    "{\"model\":5,\"model\":\"late\",\"choices\":[{\"message\":{\"content\":\"m\"}}]}",
    "{\"usage\":null,\"usage\":{\"prompt_tokens\":3},\"choices\":[{\"message\":{\"content\":\"u\"}}]}",
    /* types */
    "{\"choices\":[{\"message\":{\"content\":null}}]}",
    "{\"choices\":[{\"message\":{\"content\":42}}]}",
    "{\"choices\":[{\"message\":{\"content\":[\"a\"]}}]}",
    "{\"choices\":[{\"message\":\"text\"}]}",
    "{\"choices\":[{\"message\":null,\"finish_reason\":7}]}",
    "{\"choices\":[\"x\"]}",
    "{\"choices\":[{\"index\":\"1\",\"message\":{\"content\":\"s\"}}]}",
    "{\"choices\":[{\"index\":1.0,\"message\":{\"content\":\"s\"}}]}",
    "{\"choices\":[{\"index\":1e0,\"message\":{\"content\":\"s\"}}]}",
    "{\"choices\":[{\"index\":-1,\"message\":{\"content\":\"s\"}}]}",
    "{\"choices\":[{\"index\":1025,\"message\":{\"content\":\"s\"}}]}",
    "{\"choices\":[{\"index\":1024,\"message\":{\"content\":\"s\"}}]}",
    "{\"choices\":[{\"message\":{\"content\":\"u\"}}],\"usage\":{\"prompt_tokens\":\"9\","
    "\"completion_tokens\":2.5}}",
    "{\"choices\":[{\"message\":{\"content\":\"u\"}}],\"usage\":{\"prompt_tokens\":-0}}",
    "{\"choices\":[{\"message\":{\"content\":\"u\"}}],\"usage\":[1]}",
    "{\"choices\":[{\"message\":{\"content\":\"u\"}}],\"usage\":{}}",
    "{\"choices\":{\"a\":{\"message\":{\"content\":\"obj\"}}}}",
    "{\"choices\":null}",
    "{\"choices\":[]}",
    "{}",
    "[]",
    "[{\"choices\":[]}]",
    "\"choices\"",
    "",
    "   ",
    /* framing */
    "  {\"choices\":[{\"message\":{\"content\":\"ws\"}}]}  ",
    "{\"choices\":[{\"message\":{\"content\":\"trailing\"}}]} garbage",
    "\xef\xbb\xbf{\"choices\":[{\"message\":{\"content\":\"bom\"}}]}",
    "\x0b{\"choices\":[{\"message\":{\"content\":\"vt\"}}]}",
    "{\"choices\":[{\"message\":{\"content\":\"cut",
    "{\"choices\":[{\"message\":{\"content\":\"x\"}}],",
    "{\"choices\":[{\"message\":{\"content\":\"x\"}},]}",
    "{\"choices\":[{\"message\":{\"content\":\"x\"}}] \"k\":1}",
    "{\"choices\":[{\"message\":{\"content\":\"x\"}}],\"n\":01}",
    "{\"choices\":[{\"message\":{\"content\":\"x\"}}],\"n\":1.}",
    "{\"choices\":[{\"message\":{\"content\":\"x\"}}],\"n\":-}",
    "{\"choices\":[{\"message\":{\"content\":\"x\"}}],\"n\":+1}",
    "{\"choices\":[{\"message\":{\"content\":\"x\"}}],\"n\":tru}",
    "{\"choices\":[{\"message\":{\"content\":\"x\"}}],\"n\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
    "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
};

static void bodies_read_the_same_both_ways(void) {
  for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
    ML_CHECK(body_agrees(bodies[i], strlen(bodies[i])));
}

/* NUL bytes inside the text: in a skipped value, in the answer, in a key. */
static void nul_bytes_read_the_same_both_ways(void) {
  static const char b1[] = "{\"x\":\"a\0b\",\"choices\":[{\"message\":{\"content\":\"ok\"}}]}";
  static const char b2[] = "{\"choices\":[{\"message\":{\"content\":\"a\0b\"}}]}";
  static const char b3[] = "{\"choices\0x\":[{\"message\":{\"content\":\"k\"}}]}";
  static const char b4[] = "{\"choices\":[{\"message\":{\"content\":\"c\x01\x1f\"}}],\"model\":\"m\0\"}";
  static const char b5[] = "{\"choices\":[{\"message\":{\"content\":\"z\"}}]}\0trailing";
  ML_CHECK(body_agrees(b1, sizeof b1 - 1));
  ML_CHECK(body_agrees(b2, sizeof b2 - 1));
  ML_CHECK(body_agrees(b3, sizeof b3 - 1));
  ML_CHECK(body_agrees(b4, sizeof b4 - 1));
  ML_CHECK(body_agrees(b5, sizeof b5 - 1));
}

static void many_choices_read_the_same_both_ways(void) {
  char b[8192];
  size_t n = (size_t)snprintf(b, sizeof b, "{\"choices\":[");
  for (int i = 0; i < 40; i++)
    n += (size_t)snprintf(b + n, sizeof b - n, "%s{\"index\":%d,\"message\":{\"content\":\"c%d\"}}",
                          i ? "," : "", 39 - i, i);
  snprintf(b + n, sizeof b - n, "]}");
  ML_CHECK(body_agrees(b, strlen(b)));
}

/* Seeded mutations of valid bodies and chunks: flipped, dropped and inserted bytes. */
static uint64_t rng_next(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static void mutate(char *buf, size_t *len, size_t cap, uint64_t *rng) {
  static const char alphabet[] = "{}[]\":,\\u0123456789.eE+- \ntrufalsn\x01\x7f\xc3\xa9";
  int edits = 1 + (int)(rng_next(rng) % 3);
  for (int e = 0; e < edits && *len > 0; e++) {
    size_t at = (size_t)(rng_next(rng) % *len);
    uint64_t pick = rng_next(rng) % (sizeof alphabet);
    char ch = pick == sizeof alphabet - 1 ? '\0' : alphabet[pick]; /* now and then a NUL */
    switch (rng_next(rng) % 3) {
    case 0:
      buf[at] = ch;
      break;
    case 1:
      memmove(buf + at, buf + at + 1, *len - at - 1);
      (*len)--;
      break;
    default:
      if (*len + 1 < cap) {
        memmove(buf + at + 1, buf + at, *len - at);
        buf[at] = ch;
        (*len)++;
      }
      break;
    }
  }
}

static void mutated_bodies_read_the_same_both_ways(void) {
  uint64_t rng = 0x9e3779b97f4a7c15ULL;
  int disagreements = 0;
  for (int round = 0; round < 20000 && disagreements < 5; round++) {
    const char *seed = bodies[rng_next(&rng) % 6];
    char buf[1024];
    size_t len = strlen(seed);
    memcpy(buf, seed, len);
    mutate(buf, &len, sizeof buf, &rng);
    if (!body_agrees(buf, len))
      disagreements++;
  }
  ML_CHECK_INT(disagreements, 0);
}

static const char *const chunks[] = {
    "{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}",
    "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}",
    "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo \\u00e9\\n\"}}]}",
    "{\"choices\":[{\"index\":1,\"delta\":{\"content\":\"second\"}}]}",
    "{\"choices\":[{\"delta\":{\"content\":\"no index\"}},{\"delta\":{\"content\":\"pos 1\"}}]}",
    "{\"choices\":[{\"index\":0,\"delta\":{\"content\":null}}]}",
    "{\"choices\":[{\"index\":0,\"delta\":{\"content\":7}}]}",
    "{\"choices\":[{\"index\":0,\"delta\":\"text\"}]}",
    "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}",
    "{\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}",
    "{\"choices\":null,\"usage\":null}",
    "{\"choices\":\"x\",\"usage\":{}}",
    "{\"choices\":{\"a\":{\"delta\":{\"content\":\"obj\"}}}}",
    "{\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}",
    "{\"choices\":[],\"error\":null}",
    "{\"choices\":[{\"index\":2000,\"delta\":{\"content\":\"far\"}}]}",
    "{not json",
    "",
    "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\\u0000b\"}}]}",
    "[DONE]",
    "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"after done\"}}]}",
};

static void chunks_read_the_same_both_ways(void) {
  int n = (int)(sizeof chunks / sizeof chunks[0]);
  ML_CHECK(stream_agrees(chunks, n, 1));
  ML_CHECK(stream_agrees(chunks, n, 0));
  for (int i = 0; i < n; i++) /* each on a fresh response too */
    ML_CHECK(stream_agrees(&chunks[i], 1, 1));
}

/* A stream repeats the start of its chunks; the fast path reuses its parse of that start
 * (a memo), so these share one and differ after it, or differ inside it. */
#define PFX "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\"," \
            "\"system_fingerprint\":\"fp\",\"choices\":"
static const char *const stream_chunks[] = {
    PFX "[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}",
    PFX "[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}",
    PFX "[{\"index\":0,\"delta\":{\"content\":\"b\\u00e9\"},\"finish_reason\":null}]}",
    PFX "[{\"index\":1,\"delta\":{\"content\":\"second choice\"}}],\"model\":\"late\"}",
    PFX "[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}",
    PFX "[{\"delta\":{\"content\":\"y\"}}],\"error\":{\"message\":\"boom\"}}",
    PFX "{\"x\":1}}",
    PFX "null}",
    "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":2,\"model\":\"m\","
    "\"system_fingerprint\":\"fp\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"c\"}}]}",
    "{\"id\":\"c1\",\"usage\":{\"prompt_tokens\":1},\"model\":\"n\",\"choices\":"
    "[{\"index\":0,\"delta\":{\"content\":\"d\"}}]}",
    "{\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":6},\"model\":\"zz\"}", /* no choices: memo kept */
    "{\"id\":\"c1\",\"usage\":{\"prompt_tokens\":1},\"model\":\"n\",\"choices\":"
    "[{\"index\":0,\"delta\":{\"content\":\"e\"}}],\"usage\":{\"prompt_tokens\":9}}",
    PFX "[{\"index\":0,\"delta\":{\"content\":\"f\"},\"finish_reason\":\"stop\"}]}",
    PFX "[{\"index\":0,\"delta\":{\"content\":\"cut",
    "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",",
    PFX "[{\"index\":0,\"delta\":{\"content\":\"g\"}}]}",
};

static void stream_chunks_sharing_a_start_read_the_same_both_ways(void) {
  int n = (int)(sizeof stream_chunks / sizeof stream_chunks[0]);
  ML_CHECK(stream_agrees(stream_chunks, n, 1));
  ML_CHECK(stream_agrees(stream_chunks, n, 0));
}

/* Streams of 4 events from seeds (one seed for all, or one drawn per event), every event
 * from mutate_from on mutated and, with some, a quarter of the earlier ones too; 5,000
 * rounds. Returns how many streams the two paths read differently (it stops at 5). */
static int mutated_streams_disagree(const char *const *seeds, int nseeds, int one_seed,
                                    int mutate_from, int some, uint64_t rng) {
  int disagreements = 0;
  for (int round = 0; round < 5000 && disagreements < 5; round++) {
    char bufs[4][512];
    const char *events[4];
    const char *seed = seeds[rng_next(&rng) % (uint64_t)nseeds];
    for (int e = 0; e < 4; e++) {
      if (!one_seed)
        seed = seeds[rng_next(&rng) % (uint64_t)nseeds];
      size_t len = strlen(seed);
      memcpy(bufs[e], seed, len);
      if (e >= mutate_from || (some && rng_next(&rng) % 4 == 0))
        mutate(bufs[e], &len, sizeof bufs[e] - 1, &rng);
      bufs[e][len] = '\0';
      events[e] = bufs[e];
    }
    if (!stream_agrees(events, 4, 1))
      disagreements++;
  }
  return disagreements;
}

static void mutated_chunks_after_a_shared_start_read_the_same_both_ways(void) {
  ML_CHECK_INT(mutated_streams_disagree(stream_chunks, 5, 0, 3, 1, 0x6a09e667f3bcc909ULL), 0);
}

/* Chunks that repeat the bytes around their text: the fast path reads only the text of
 * such a chunk and takes the rest from the last chunk it read whole (a template). Each
 * pair below forms a template, then meets a chunk that matches it or misses it by a byte. */
#define TPL_PFX PFX "[{\"index\":0,\"delta\":{\"content\":\""
#define TPL_SFX "\"},\"logprobs\":null,\"finish_reason\":null}]}"
#define TPL_STOP "\"},\"logprobs\":null,\"finish_reason\":\"st\\u006fp\"}]"
static const char *const template_chunks[] = {
    TPL_PFX "a" TPL_SFX,
    TPL_PFX "bc" TPL_SFX,
    TPL_PFX "" TPL_SFX,
    TPL_PFX "esc \\\" \\u00e9 \\n \\ud83d\\ude00" TPL_SFX,
    TPL_PFX "\\u0000 nul" TPL_SFX,
    TPL_PFX "bad \\q" TPL_SFX,
    TPL_PFX "raw\ttab" TPL_SFX,
    TPL_PFX "d" TPL_STOP "}",
    TPL_PFX "e" TPL_STOP "}",
    TPL_PFX "f" TPL_STOP ",\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":5}}",
    TPL_PFX "g" TPL_STOP ",\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":5}}",
    TPL_PFX "h" TPL_STOP ",\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":6}}",
    PFX "[{\"index\":2,\"delta\":{\"content\":\"i\"}}],\"model\":\"late\"}",
    PFX "[{\"index\":2,\"delta\":{\"content\":\"j\"}}],\"model\":\"later\"}",
    TPL_PFX "k" TPL_SFX,
    TPL_PFX "l\"" TPL_SFX,
    TPL_PFX "m" TPL_SFX " ",
    TPL_PFX "n" TPL_SFX,
    TPL_PFX "o\"},{\"index\":1,\"delta\":{\"content\":\"p\"}}]}",
    TPL_PFX "q\"},{\"index\":1,\"delta\":{\"content\":\"r\"}}]}",
    TPL_PFX "s\",\"content\":\"second\"}}],\"error\":1}",
    TPL_PFX "t\",\"content\":\"second\"}}],\"error\":1}",
    PFX "[{\"index\":0,\"delta\":{\"content\":7}}]}",
    TPL_PFX "u" TPL_SFX,
    TPL_PFX "cut",
    TPL_PFX "v" TPL_SFX "}",
    TPL_PFX "w" TPL_SFX,
};

static void template_chunks_read_the_same_both_ways(void) {
  int n = (int)(sizeof template_chunks / sizeof template_chunks[0]);
  ML_CHECK(stream_agrees(template_chunks, n, 1));
  ML_CHECK(stream_agrees(template_chunks, n, 0));
  for (int i = 0; i + 1 < n; i++) /* every chunk after every other as its template */
    for (int j = 0; j < n; j++) {
      const char *two[] = {template_chunks[i], template_chunks[j]};
      ML_CHECK(stream_agrees(two, 2, 1));
    }
}

/* A template, then chunks mutated anywhere: in the text, around it, in the start. */
static void mutated_chunks_after_a_template_read_the_same_both_ways(void) {
  ML_CHECK_INT(mutated_streams_disagree(template_chunks, 12, 1, 2, 0, 0xbb67ae8584caa73bULL), 0);
}

static void mutated_chunks_read_the_same_both_ways(void) {
  uint64_t rng = 0x2545f4914f6cdd1dULL;
  int disagreements = 0;
  for (int round = 0; round < 20000 && disagreements < 5; round++) {
    const char *seed = chunks[rng_next(&rng) % 10];
    char buf[512];
    size_t len = strlen(seed);
    memcpy(buf, seed, len);
    mutate(buf, &len, sizeof buf - 1, &rng);
    buf[len] = '\0'; /* events are NUL-terminated; a NUL inside ends it early, like strlen */
    const char *one[] = {buf};
    if (!stream_agrees(one, 1, 1))
      disagreements++;
  }
  ML_CHECK_INT(disagreements, 0);
}

ML_TEST_MAIN(ML_CASE(bodies_read_the_same_both_ways), ML_CASE(nul_bytes_read_the_same_both_ways),
             ML_CASE(many_choices_read_the_same_both_ways),
             ML_CASE(mutated_bodies_read_the_same_both_ways),
             ML_CASE(chunks_read_the_same_both_ways),
             ML_CASE(mutated_chunks_read_the_same_both_ways),
             ML_CASE(stream_chunks_sharing_a_start_read_the_same_both_ways),
             ML_CASE(mutated_chunks_after_a_shared_start_read_the_same_both_ways),
             ML_CASE(template_chunks_read_the_same_both_ways),
             ML_CASE(mutated_chunks_after_a_template_read_the_same_both_ways))

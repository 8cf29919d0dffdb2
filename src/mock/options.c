/* Command-line flags of `moonloop mock-server`: parsing, validation and --help.
 * Every rejected flag is named in the message together with what it expects, and the
 * caller exits with status 2. */
#include "mock/server.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/paths.h"

static const char HELP[] =
    "usage: moonloop mock-server [options]\n"
    "\n"
    "An OpenAI- and Anthropic-compatible HTTP/1.1 server on loopback for tests and\n"
    "benchmarks. Answers come from a Lua function (deterministic by default); latency and\n"
    "faults are injected on request.\n"
    "\n"
    "Endpoints:\n"
    "  POST /v1/chat/completions   chat.completion JSON, or SSE with \"stream\": true\n"
    "  POST /v1/messages           Anthropic Messages API: a message, or its event stream\n"
    "                              with \"stream\": true (see Anthropic below)\n"
    "  GET  /v1/models             a small model list\n"
    "  GET  /health                200 \"ok\"\n"
    "  GET  /stats                 JSON counters for benchmarks (see Rate limits below)\n"
    "\n"
    "Options:\n"
    "  --host ADDR            address to bind (default 127.0.0.1); non-loopback addresses\n"
    "                         need --allow-remote\n"
    "  --allow-remote         allow binding a non-loopback address\n"
    "  --port N               port (default 8089; 0 picks a free one)\n"
    "  --port-file FILE       write the bound port to FILE once listening (atomic rename)\n"
    "  --log FILE             one JSON line per finished request: seq, conn, t_ms (when it\n"
    "                         arrived, ms after the server began listening), method, path,\n"
    "                         status, fault, stream, latency_ms, duration_ms, completed,\n"
    "                         bytes, body_hash\n"
    "  --answer FILE.lua      answer function (default: lua/moonloop/mock/answer.lua, whose\n"
    "                         header documents the contract)\n"
    "  --sim                  answer from the simulator: short for --answer\n"
    "                         lua/moonloop/sim/answer.lua; the role each request plays\n"
    "                         comes from its X-Moonloop-Role header (llm.chat sends\n"
    "                         tags.role there)\n"
    "  --latency SPEC         delay before answering a chat request, in ms:\n"
    "                           MS                fixed, e.g. 250\n"
    "                           uniform:MIN:MAX   e.g. uniform:100:900\n"
    "                           exp:MEAN          exponential, e.g. exp:300\n"
    "                           normal:MEAN:SD    clamped at 0, e.g. normal:500:100\n"
    "  --stream-interval MS   pause between SSE events (default 0)\n"
    "  --stream-chunks N      content pieces per streamed choice (default 8)\n"
    "  --fault KIND=PROB      inject a fault with probability PROB in [0,1]; repeatable.\n"
    "                         KIND: 429 500 503 529 reset stall truncate badjson badsse\n"
    "                         sse_error\n"
    "                           429       rate-limit error with Retry-After\n"
    "                           500, 503  server error (in the endpoint's error shape)\n"
    "                           529       status 529, Anthropic's \"overloaded\"\n"
    "                           reset     read the request, then reset the connection\n"
    "                           stall     send headers and part of the body, then nothing\n"
    "                           truncate  send about half the body (streams: no [DONE]),\n"
    "                                     then close\n"
    "                           badjson   200 with a well-framed body that is not JSON\n"
    "                           badsse    a stream with one data: line that is not JSON\n"
    "                           sse_error a stream that sends about half its events, then\n"
    "                                     an error event, and ends (not streamed: 503, or\n"
    "                                     529 on /v1/messages)\n"
    "  --retry-after S        Retry-After seconds on 429 (default 1)\n"
    "  --slots N              answer GET /props with {\"total_slots\": N}, as llama.cpp's\n"
    "                         server does (moonloop reads it to cap requests in flight)\n"
    "  --rpm N                requests per minute allowed per API key (default 0: no limit)\n"
    "  --tpm N                estimated tokens per minute allowed per API key (default 0:\n"
    "                         no limit); see Rate limits below\n"
    "  --seed N               seed of the fault and latency PRNG (default 1); the same seed\n"
    "                         and request order give the same faults and delays\n"
    "  --max-connections N    connections served at once (default 20000); more are closed\n"
    "  --max-body BYTES       largest request body (default 8388608); larger gets 413\n"
    "  -h, --help             this text\n"
    "\n"
    "Per-request overrides (request headers), for tests that need one exact outcome:\n"
    "  X-Mock-Fault: KIND     force a fault (or \"none\") for this request\n"
    "  X-Mock-Latency: MS     use this delay for this request\n"
    "  X-Moonloop-Role: ROLE  passed to the answer function as meta.role\n"
    "\n"
    "Faults and latency apply to chat completions and messages only. SIGINT or SIGTERM\n"
    "stops the server (exit 0).\n"
    "\n"
    "Anthropic (POST /v1/messages, also /messages):\n"
    "  Requests need the x-api-key and anthropic-version headers (else 400\n"
    "  invalid_request_error naming the header) and a body with model, messages and\n"
    "  max_tokens. The answer function gets it as an OpenAI-style request: system first as a\n"
    "  system message, then the messages, max_tokens, and stop_sequences as stop; its\n"
    "  finish_reason comes back as stop_reason (stop: end_turn, length: max_tokens). A\n"
    "  stream is message_start, content_block_start, --stream-chunks content_block_delta\n"
    "  events with a ping among them, content_block_stop, message_delta (stop_reason,\n"
    "  usage), message_stop. Errors are {\"type\":\"error\",\"error\":{\"type\",\"message\"}}:\n"
    "  429 rate_limit_error (with retry-after), 500 api_error, 503 and 529\n"
    "  overloaded_error; sse_error sends an overloaded_error event; truncate leaves out\n"
    "  message_stop.\n"
    "\n"
    "Rate limits (--rpm, --tpm), enforced as a hosted API does:\n"
    "  Each API key (the Authorization: Bearer token, else x-api-key; requests with neither\n"
    "  share one key) has a request bucket and a token bucket. A full bucket holds one\n"
    "  minute's limit; both refill continuously (limit/60 per second) and start full. A chat\n"
    "  request is charged on arrival: 1 request, and tokens = text bytes of its messages\n"
    "  (and system) / 4 + max_tokens (or max_completion_tokens; 256 when absent). A request\n"
    "  that does not fit is not charged and gets an immediate 429 (OpenAI error body,\n"
    "  code rate_limit_exceeded) with Retry-After (whole seconds, rounded up) and\n"
    "  retry-after-ms; one costing more than --tpm gets a 429 \"Request too large\" without\n"
    "  Retry-After, since waiting cannot help. Every chat response, 200 or 429, carries\n"
    "  the headers of the limits that are on:\n"
    "    x-ratelimit-limit-requests  x-ratelimit-remaining-requests  x-ratelimit-reset-requests\n"
    "    x-ratelimit-limit-tokens    x-ratelimit-remaining-tokens    x-ratelimit-reset-tokens\n"
    "  where reset is the time until the bucket is full again, written as OpenAI does\n"
    "  (\"250ms\", \"1.5s\", \"6m0s\"). Anthropic routes (/v1/messages) use\n"
    "  anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset} instead, with RFC 3339\n"
    "  reset times, and a rate_limit_error body. The --log line of such a 429 has status 429\n"
    "  and fault \"ratelimit\".\n"
    "\n"
    "GET /stats: chat requests since start, as JSON: requests, admitted, throttled (429s\n"
    "  from the limits), too_large, ok (200s), errors (other statuses), tokens_admitted,\n"
    "  rpm, tpm, keys, uptime_s, and per_second = {start_s, now_s, admitted = [...],\n"
    "  tokens = [...]}: requests and tokens admitted in each second start_s..now_s (seconds\n"
    "  since start, the last 120 at most). Counted with or without limits.\n"
    "\n"
    "Examples:\n"
    "  moonloop mock-server --port 0 --port-file /tmp/port\n"
    "  moonloop mock-server --latency exp:800 --fault 429=0.05 --fault reset=0.01 --seed 7\n"
    "  moonloop mock-server --latency 1000 --stream-interval 20 --log requests.jsonl\n"
    "  moonloop mock-server --sim --latency exp:300\n"
    "  moonloop mock-server --rpm 600 --tpm 200000 --latency 800   # then: curl .../stats\n"
    "  curl -s localhost:8089/v1/chat/completions -H 'X-Mock-Fault: 503' \\\n"
    "       -d '{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'\n";

static int errf(char *err, size_t errlen, const char *flag, const char *what, const char *got) {
  snprintf(err, errlen, "mock-server: %s expects %s (got \"%s\")", flag, what, got);
  return -1;
}

/* A whole-string integer in [lo, hi]. */
static int parse_int(const char *s, long long lo, long long hi, long long *out) {
  char *end = NULL;
  errno = 0;
  if (s[0] == '\0' || s[0] == ' ')
    return -1;
  long long v = strtoll(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

/* A whole-string finite number; end may point at the next ':' (stop_at_colon). */
static int parse_num(const char *s, int stop_at_colon, double *out, const char **rest) {
  char *end = NULL;
  errno = 0;
  if (s[0] == '\0' || s[0] == ' ')
    return -1;
  double v = strtod(s, &end);
  if (errno != 0 || end == s || !isfinite(v))
    return -1;
  if (*end != '\0' && !(stop_at_colon && *end == ':'))
    return -1;
  *out = v;
  if (rest)
    *rest = end;
  return 0;
}

int mock_parse_latency(const char *s, struct mock_latency *out) {
  struct mock_latency l = {MOCK_LAT_FIXED, 0, 0};
  const char *rest = NULL;
  if (strncmp(s, "uniform:", 8) == 0) {
    l.dist = MOCK_LAT_UNIFORM;
    if (parse_num(s + 8, 1, &l.a, &rest) || *rest != ':' || parse_num(rest + 1, 0, &l.b, NULL))
      return -1;
    if (l.a < 0 || l.b < l.a)
      return -1;
  } else if (strncmp(s, "exp:", 4) == 0) {
    l.dist = MOCK_LAT_EXP;
    if (parse_num(s + 4, 0, &l.a, NULL) || l.a < 0)
      return -1;
  } else if (strncmp(s, "normal:", 7) == 0) {
    l.dist = MOCK_LAT_NORMAL;
    if (parse_num(s + 7, 1, &l.a, &rest) || *rest != ':' || parse_num(rest + 1, 0, &l.b, NULL))
      return -1;
    if (l.b < 0)
      return -1;
  } else {
    if (parse_num(s, 0, &l.a, NULL) || l.a < 0)
      return -1;
  }
  /* An hour is far beyond any client timeout worth testing. */
  if (l.a > 3600e3 || l.b > 3600e3)
    return -1;
  *out = l;
  return 0;
}

static int parse_fault(struct mock_config *cfg, const char *s, char *err, size_t errlen) {
  const char *eq = strchr(s, '=');
  if (eq == NULL)
    return errf(err, errlen, "--fault", "KIND=PROB, e.g. 429=0.1", s);
  int kind = mock_fault_parse(s, (size_t)(eq - s));
  if (kind <= 0)
    return errf(err, errlen, "--fault",
                "a KIND of 429, 500, 503, 529, reset, stall, truncate, badjson, badsse or "
                "sse_error",
                s);
  double p = 0;
  if (parse_num(eq + 1, 0, &p, NULL) || p < 0 || p > 1)
    return errf(err, errlen, "--fault", "a probability between 0 and 1 after '='", s);
  cfg->fault_prob[kind] = p;
  return 0;
}

/* --sim: the simulator's answer file in the runtime's Lua library. */
static int set_sim_answer(struct mock_config *cfg, char *err, size_t errlen) {
  static char path[4096];
  if (cfg->answer_path) {
    snprintf(err, errlen, "mock-server: give one of --answer and --sim, once");
    return -1;
  }
  const char *dir = ml_lua_dir();
  int n = snprintf(path, sizeof path, "%s/moonloop/sim/answer.lua", dir);
  if (n < 0 || (size_t)n >= sizeof path) {
    snprintf(err, errlen, "mock-server: --sim: Lua library path too long: %s", dir);
    return -1;
  }
  cfg->answer_path = path;
  return 0;
}

static void set_defaults(struct mock_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->host = "127.0.0.1";
  cfg->port = 8089;
  cfg->stream_chunks = 8;
  cfg->retry_after = 1;
  cfg->seed = 1;
  cfg->max_connections = 20000;
  cfg->max_body = MREQ_DEFAULT_MAX_BODY;
}

int mock_parse_args(struct mock_config *cfg, int argc, char **argv, char *err, size_t errlen) {
  set_defaults(cfg);
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
      fputs(HELP, stdout);
      return 1;
    }
    if (strcmp(arg, "--allow-remote") == 0) {
      cfg->allow_remote = 1;
      continue;
    }
    if (strcmp(arg, "--sim") == 0) {
      if (set_sim_answer(cfg, err, errlen))
        return -1;
      continue;
    }
    if (strncmp(arg, "--", 2) != 0) {
      snprintf(err, errlen, "mock-server: unexpected argument \"%s\" (see --help)", arg);
      return -1;
    }
    /* Every other flag takes a value: "--flag VALUE" or "--flag=VALUE". */
    char flag[64];
    const char *val = NULL;
    const char *eq = strchr(arg, '=');
    size_t flen = eq ? (size_t)(eq - arg) : strlen(arg);
    if (flen >= sizeof flag) {
      snprintf(err, errlen, "mock-server: unknown option \"%s\" (see --help)", arg);
      return -1;
    }
    memcpy(flag, arg, flen);
    flag[flen] = '\0';
    static const char *known[] = {"--host",
                                  "--port",
                                  "--port-file",
                                  "--log",
                                  "--answer",
                                  "--latency",
                                  "--stream-interval",
                                  "--stream-chunks",
                                  "--fault",
                                  "--retry-after",
                                  "--seed",
                                  "--max-connections",
                                  "--max-body",
                                  "--rpm",
                                  "--tpm",
                                  "--slots",
                                  NULL};
    int is_known = 0;
    for (int k = 0; known[k]; k++)
      is_known |= strcmp(flag, known[k]) == 0;
    if (!is_known) {
      snprintf(err, errlen, "mock-server: unknown option \"%s\" (see --help)", flag);
      return -1;
    }
    if (eq) {
      val = eq + 1;
    } else if (i + 1 < argc) {
      val = argv[++i];
    } else {
      snprintf(err, errlen, "mock-server: %s needs a value (see --help)", flag);
      return -1;
    }

    long long v = 0;
    if (strcmp(flag, "--host") == 0) {
      cfg->host = val;
    } else if (strcmp(flag, "--port") == 0) {
      if (parse_int(val, 0, 65535, &v))
        return errf(err, errlen, flag, "a port number from 0 to 65535", val);
      cfg->port = (int)v;
    } else if (strcmp(flag, "--port-file") == 0) {
      cfg->port_file = val;
    } else if (strcmp(flag, "--log") == 0) {
      cfg->log_path = val;
    } else if (strcmp(flag, "--answer") == 0) {
      if (cfg->answer_path) {
        snprintf(err, errlen, "mock-server: give one of --answer and --sim, once");
        return -1;
      }
      cfg->answer_path = val;
    } else if (strcmp(flag, "--latency") == 0) {
      if (mock_parse_latency(val, &cfg->latency))
        return errf(err, errlen, flag,
                    "MS, uniform:MIN:MAX, exp:MEAN or normal:MEAN:SD in milliseconds "
                    "(0 to 3600000, MIN <= MAX)",
                    val);
    } else if (strcmp(flag, "--stream-interval") == 0) {
      if (parse_int(val, 0, 3600000, &v))
        return errf(err, errlen, flag, "milliseconds from 0 to 3600000", val);
      cfg->stream_interval_ms = (uint64_t)v;
    } else if (strcmp(flag, "--stream-chunks") == 0) {
      if (parse_int(val, 1, 100000, &v))
        return errf(err, errlen, flag, "a count from 1 to 100000", val);
      cfg->stream_chunks = (int)v;
    } else if (strcmp(flag, "--fault") == 0) {
      if (parse_fault(cfg, val, err, errlen))
        return -1;
    } else if (strcmp(flag, "--slots") == 0) {
      if (parse_int(val, 1, 100000, &v))
        return errf(err, errlen, flag, "a count from 1 to 100000", val);
      cfg->slots = (int)v;
    } else if (strcmp(flag, "--retry-after") == 0) {
      if (parse_int(val, 0, 86400, &v))
        return errf(err, errlen, flag, "seconds from 0 to 86400", val);
      cfg->retry_after = (int)v;
    } else if (strcmp(flag, "--seed") == 0) {
      char *end = NULL;
      errno = 0;
      unsigned long long s = strtoull(val, &end, 10);
      if (val[0] < '0' || val[0] > '9' || errno != 0 || *end != '\0')
        return errf(err, errlen, flag, "a non-negative integer", val);
      cfg->seed = s;
    } else if (strcmp(flag, "--max-connections") == 0) {
      if (parse_int(val, 1, 10000000, &v))
        return errf(err, errlen, flag, "a count from 1 to 10000000", val);
      cfg->max_connections = (int)v;
    } else if (strcmp(flag, "--max-body") == 0) {
      if (parse_int(val, 1, 1LL << 30, &v))
        return errf(err, errlen, flag, "a byte count from 1 to 1073741824", val);
      cfg->max_body = (size_t)v;
    } else if (strcmp(flag, "--rpm") == 0 || strcmp(flag, "--tpm") == 0) {
      if (parse_int(val, 0, 1000000000, &v))
        return errf(err, errlen, flag, "a per-minute limit from 0 (off) to 1000000000", val);
      *(flag[2] == 'r' ? &cfg->rpm : &cfg->tpm) = v;
    }
  }
  return 0;
}

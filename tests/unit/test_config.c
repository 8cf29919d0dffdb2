/* Config loading: valid files, zero config, and every mistake reported with the file
 * and the key's path. */
#include <stdlib.h>
#include <unistd.h>

#include "llm/config.h"
#include "ml_test.h"

static char path[] = "/tmp/ml_config_test_XXXXXX";

static int load_text(struct llm_config *cfg, const char *text, char *err, size_t errlen) {
  int fd = mkstemp(path);
  if (fd < 0)
    return -2;
  if (write(fd, text, strlen(text)) < 0) {
    close(fd);
    return -2;
  }
  close(fd);
  int rc = llm_config_load(cfg, path, err, errlen);
  unlink(path);
  memcpy(path + strlen(path) - 6, "XXXXXX", 6);
  return rc;
}

static void providers_and_aliases_resolve(void) {
  struct llm_config cfg;
  char err[512];
  ML_CHECK_INT(load_text(&cfg,
                         "return { providers = {\n"
                         "  openai = { kind = 'openai', api_key_env = 'OPENAI_API_KEY' },\n"
                         "  vllm = { kind = 'openai', base_url = 'http://127.0.0.1:8000/v1/' } },\n"
                         "  models = { strong = { provider = 'openai', model = 'gpt-x',\n"
                         "                        price = { input = 3, output = 15 } },\n"
                         "             weak = 'vllm/qwen-small' } }",
                         err, sizeof err),
               0);
  const struct llm_provider *p;
  const char *model;
  const struct llm_model *alias;
  ML_CHECK_INT(llm_config_resolve(&cfg, "strong", &p, &model, &alias, err, sizeof err), 0);
  ML_CHECK_STR(p->name, "openai");
  ML_CHECK_STR(model, "gpt-x");
  ML_CHECK(alias != NULL && alias->has_price && alias->price_out == 15);
  ML_CHECK_INT(llm_config_resolve(&cfg, "weak", &p, &model, &alias, err, sizeof err), 0);
  ML_CHECK_STR(p->base_url, "http://127.0.0.1:8000/v1");
  ML_CHECK_STR(model, "qwen-small");
  ML_CHECK_INT(llm_config_resolve(&cfg, "vllm/other", &p, &model, &alias, err, sizeof err), 0);
  ML_CHECK_STR(model, "other");
  ML_CHECK(alias == NULL);
  /* Two providers and no default: an unknown name must be an error that says what to do. */
  ML_CHECK_INT(llm_config_resolve(&cfg, "judge", &p, &model, &alias, err, sizeof err), -1);
  ML_CHECK(strstr(err, "default_provider") != NULL);
  llm_config_free(&cfg);
}

static void single_provider_is_the_default_for_roles(void) {
  struct llm_config cfg;
  char err[512];
  ML_CHECK_INT(load_text(&cfg, "return { providers = { p = { kind = 'openai', model = 'm0' } } }",
                         err, sizeof err),
               0);
  const struct llm_provider *p;
  const char *model;
  const struct llm_model *alias;
  ML_CHECK_INT(llm_config_resolve(&cfg, "judge", &p, &model, &alias, err, sizeof err), 0);
  ML_CHECK_STR(model, "m0");
  ML_CHECK_INT(llm_config_resolve(&cfg, "gpt-4.1", &p, &model, &alias, err, sizeof err), 0);
  ML_CHECK_STR(model, "gpt-4.1");
  llm_config_free(&cfg);
}

static void expect_error(const char *text, const char *fragment) {
  struct llm_config cfg;
  char err[512] = "";
  int rc = load_text(&cfg, text, err, sizeof err);
  ML_CHECK_INT(rc, -1);
  if (strstr(err, fragment) == NULL) {
    fprintf(stderr, "  error \"%s\" lacks \"%s\"\n", err, fragment);
    ml_test_failed_checks++;
  }
  ML_CHECK(strstr(err, "/tmp/ml_config_test_") != NULL || strstr(err, "ml_config_test") != NULL);
}

static void mistakes_name_the_file_and_key(void) {
  expect_error("return {", "unexpected symbol"); /* syntax error with file:line */
  expect_error("return 42", "must return a table");
  expect_error("return {}", "providers: is required");
  expect_error("return { providers = {} }", "is empty");
  expect_error("return { providers = { p = { kind = 'opneai' } } }", "providers.p: kind \"opneai\"");
  expect_error("return { providers = { p = { kind = 'openai', base_url = 'ftp://x' } } }",
               "must start with http");
  /* Found by fuzz_config: "https:///" passed, and lost its slashes to "https:". */
  expect_error("return { providers = { p = { kind = 'openai', base_url = 'https:///' } } }",
               "and name a host");
  expect_error("return { providers = { p = { kind = 'openai', base_url = 'http://' } } }",
               "and name a host");
  expect_error("return { providers = { p = { kind = 'openai', bse_url = 'x' } } }",
               "unknown key 'bse_url'");
  expect_error("return { providers = { p = { kind = 'openai' } }, modles = {} }",
               "unknown key 'modles'");
  expect_error("return { providers = { p = { kind = 'openai' } }, models = { s = 'q/m' } }",
               "models.s: provider \"q\" is not defined");
  expect_error("return { providers = { p = { kind = 'openai' } }, models = { s = 'nomodel' } }",
               "should be \"provider/model\"");
  expect_error("return { providers = { p = { kind = 'openai' } }, models = { s = { provider = 'p', "
               "price = { input = 'cheap' } } } }",
               "price");
  expect_error("return { providers = { p = { kind = 'openai', timeout_ms = -1 } } }",
               "timeout_ms' must be a non-negative number");
  expect_error("error('no config for you')", "no config for you");
  expect_error("return { providers = { [1] = {} } }", "keys must be");
}

static void zero_config_follows_the_environment(void) {
  struct llm_config cfg;
  char err[256];
  char *cwd = getcwd(NULL, 0);
  ML_CHECK_INT(chdir("/tmp"), 0); /* no moonloop.lua here */
  setenv("XDG_CONFIG_HOME", "/nonexistent", 1);
  setenv("HOME", "/nonexistent", 1);
  unsetenv("OPENAI_API_KEY");
  unsetenv("OPENAI_BASE_URL");
  ML_CHECK_INT(llm_config_load(&cfg, NULL, err, sizeof err), 0);
  ML_CHECK_INT(cfg.offline, 1);
  ML_CHECK(strstr(cfg.source, "offline simulator") != NULL);
  llm_config_free(&cfg);

  setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/", 1);
  ML_CHECK_INT(llm_config_load(&cfg, NULL, err, sizeof err), 0);
  ML_CHECK_INT(cfg.offline, 0);
  ML_CHECK_STR(cfg.providers[0].base_url, "http://127.0.0.1:9/v1");
  ML_CHECK(cfg.providers[0].api_key_env == NULL);
  llm_config_free(&cfg);

  setenv("OPENAI_API_KEY", "sk-test-should-never-be-stored", 1);
  ML_CHECK_INT(llm_config_load(&cfg, NULL, err, sizeof err), 0);
  ML_CHECK_STR(cfg.providers[0].api_key_env, "OPENAI_API_KEY");
  ML_CHECK(strstr(cfg.source, "sk-test") == NULL);
  llm_config_free(&cfg);
  ML_CHECK_INT(chdir(cwd), 0);
  free(cwd);
}

ML_TEST_MAIN(ML_CASE(providers_and_aliases_resolve), ML_CASE(single_provider_is_the_default_for_roles),
             ML_CASE(mistakes_name_the_file_and_key), ML_CASE(zero_config_follows_the_environment))

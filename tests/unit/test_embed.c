/* The embedding API: a host program creates a runtime, runs a script, reads the exit code. */
#include <stdlib.h>
#include <unistd.h>

#include "moonloop/moonloop.h"
#include "ml_test.h"

static int run_text(const char *text, int offline) {
  char path[] = "/tmp/ml_embed_XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0 || write(fd, text, strlen(text)) < 0)
    return -1;
  close(fd);
  struct ml_options opts = {NULL, offline, ML_LEVEL_ERROR, NULL};
  char err[512];
  ml_runtime *m;
  int code = ml_runtime_new(&m, &opts, err, sizeof err);
  if (code == 0) {
    char *args[] = {"one", "two"};
    code = ml_runtime_run_file(m, path, 2, args);
    ml_runtime_free(m);
  }
  unlink(path);
  return code;
}

static void a_script_that_finishes_returns_0(void) {
  ML_CHECK_INT(run_text("local a, b = ...\nassert(a == 'one' and arg[2] == 'two')\n"
                        "local h = task.spawn(function() task.sleep(2) return 5 end)\n"
                        "assert(h:join() == 5)\n",
                        1),
               0);
}

static void offline_llm_chat_answers_from_the_simulator(void) {
  ML_CHECK_INT(run_text("local r = llm.chat{ prompt = 'hi' }\nassert(#r.text > 0)\n"
                        "assert(r.provider == 'sim')\n",
                        1),
               0);
}

static void a_failing_script_returns_1(void) {
  ML_CHECK_INT(run_text("error('no')\n", 1), 1);
}

static void a_script_that_does_not_compile_returns_2(void) {
  ML_CHECK_INT(run_text("local = 3\n", 1), 2);
}

static void a_missing_config_file_returns_2(void) {
  struct ml_options opts = {"/nonexistent/moonloop.lua", 0, ML_LEVEL_ERROR, NULL};
  char err[512] = "";
  ml_runtime *m = NULL;
  ML_CHECK_INT(ml_runtime_new(&m, &opts, err, sizeof err), 2);
  ML_CHECK(m == NULL);
  ML_CHECK(strstr(err, "/nonexistent/moonloop.lua") != NULL);
}

static void version_is_set(void) {
  ML_CHECK(ml_version()[0] >= '0' && ml_version()[0] <= '9');
}

ML_TEST_MAIN(ML_CASE(a_script_that_finishes_returns_0),
             ML_CASE(offline_llm_chat_answers_from_the_simulator),
             ML_CASE(a_failing_script_returns_1), ML_CASE(a_script_that_does_not_compile_returns_2),
             ML_CASE(a_missing_config_file_returns_2), ML_CASE(version_is_set))

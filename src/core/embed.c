/* The public embedding API (include/moonloop/moonloop.h) over the internal runtime. */
#include "moonloop/moonloop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "core/rt.h"
#include "core/sched.h"
#include "llm/config.h"
#include "llm/llm.h"

struct ml_runtime {
  struct ml_rt rt;
  int ran;
};

const char *ml_version(void) {
  return ML_VERSION;
}

int ml_runtime_new(ml_runtime **out, const struct ml_options *opts, char *err, size_t errlen) {
  struct llm_config cfg;
  *out = NULL;
  if (opts->offline)
    llm_config_offline(&cfg);
  else if (llm_config_load(&cfg, opts->config_path, err, errlen) != 0)
    return ML_EXIT_USAGE;
  ml_runtime *m = calloc(1, sizeof *m);
  if (m == NULL) {
    llm_config_free(&cfg);
    snprintf(err, errlen, "out of memory");
    return ML_EXIT_FAILURE;
  }
  if (rt_init(&m->rt, err, errlen) != 0 || llm_open(m->rt.L, &m->rt, &cfg) != 0) {
    llm_config_free(&cfg);
    ml_runtime_free(m);
    return ML_EXIT_FAILURE;
  }
  m->rt.log_level = (enum ml_log_level)opts->log_level;
  /* Run options for the Lua library: package.loaded["moonloop.cli"]. */
  lua_State *L = m->rt.L;
  rt_set_cli_options(L, opts->run_options);
  for (const char *const *o = opts->run_options; o && *o; o++)
    if (strncmp(*o, "trusted=", 8) == 0) /* no sandbox for the file */
      m->rt.trusted = strcmp(*o + 8, "true") == 0 || strcmp(*o + 8, "1") == 0;
  if (rt_require(&m->rt, "moonloop.task", err, errlen) != 0) {
    size_t n = strlen(err);
    snprintf(err + n, errlen - n, " (cannot load the runtime's Lua library: set "
                                  "MOONLOOP_LUA_DIR to the directory holding moonloop/task.lua)");
    ml_runtime_free(m);
    return ML_EXIT_FAILURE;
  }
  *out = m;
  return 0;
}

static int outcome(struct ml_rt *rt, struct ml_task *main_task) {
  if (rt->exit_code == ML_EXIT_INTERRUPTED || rt->exit_code == ML_EXIT_BUDGET)
    return rt->exit_code;
  unsigned stuck = sched_report_stuck(rt);
  if (stuck > 0) {
    rt_log(rt, ML_LOG_ERROR, "%u task(s) never finished (a deadlock: a join, semaphore or "
                             "park that nothing will wake)", stuck);
    return ML_EXIT_FAILURE;
  }
  if (main_task->outcome == TASK_FAILED && main_task->usage_error)
    return ML_EXIT_USAGE; /* a bad recipe: the message named its file and line */
  if (main_task->outcome != TASK_OK || rt->failed_unjoined > 0)
    return ML_EXIT_FAILURE;
  return ML_EXIT_OK;
}

int ml_runtime_run_file(ml_runtime *m, const char *path, int argc, char **argv) {
  struct ml_rt *rt = &m->rt;
  lua_State *L = rt->L;
  if (m->ran) {
    rt_log(rt, ML_LOG_ERROR, "a runtime runs one file; create another for %s", path);
    return ML_EXIT_USAGE;
  }
  m->ran = 1;
  lua_createtable(L, argc, 1);
  lua_pushstring(L, path);
  lua_rawseti(L, -2, 0);
  for (int k = 0; k < argc; k++) {
    lua_pushstring(L, argv[k]);
    lua_rawseti(L, -2, k + 1);
  }
  lua_setglobal(L, "arg");
  if (!rt->trusted) {
    lua_pushnil(L); /* no chunk: moonloop.boot loads the file in the sandbox */
  } else if (luaL_loadfilex(L, path, "t") != LUA_OK) {
    /* Syntax errors already read "file.lua:LINE: ...". */
    rt_log(rt, ML_LOG_ERROR, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return ML_EXIT_USAGE;
  }
  /* The first task is moonloop.boot.main(chunk, path, args...): it runs the chunk (or, with
   * chunk nil, the file in a sandbox) and drives it if it returns a recipe. */
  lua_getglobal(L, "require");
  lua_pushliteral(L, "moonloop.boot");
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    rt_log(rt, ML_LOG_ERROR, "cannot load the runtime's Lua library: %s", lua_tostring(L, -1));
    lua_pop(L, 2);
    return ML_EXIT_FAILURE;
  }
  lua_getfield(L, -1, "main");
  lua_remove(L, -2);
  lua_insert(L, -2); /* main chunk */
  lua_pushstring(L, path);
  for (int k = 0; k < argc; k++)
    lua_pushstring(L, argv[k]);
  struct ml_task *main_task = sched_spawn(L, argc + 2, NULL);
  rt->main_task = main_task;
  luaL_ref(L, LUA_REGISTRYINDEX); /* keep the handle and its outcome until the end */
  rt_run(rt);
  return outcome(rt, main_task);
}

void ml_runtime_free(ml_runtime *m) {
  if (m == NULL)
    return;
  rt_close(&m->rt);
  free(m);
}

void ml_runtime_free_for_exit(ml_runtime *m) {
  if (m != NULL)
    rt_close_for_exit(&m->rt);
}

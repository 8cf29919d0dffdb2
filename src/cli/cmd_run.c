/* moonloop run: load a Lua script and run it as the first task on the event loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "cli/cli.h"
#include "core/rt.h"
#include "core/sched.h"
#include "llm/config.h"
#include "llm/llm.h"

static const char run_usage[] =
    "Usage: moonloop run [options] FILE.lua [ARGS...]\n"
    "\n"
    "Runs FILE.lua as a task on the event loop. The script can call llm.chat, task.spawn,\n"
    "task.sleep and friends; the process exits when every task has finished. ARGS are\n"
    "available to the script as the global table `arg` (arg[0] is FILE.lua).\n"
    "\n"
    "Options:\n"
    "  --config FILE   provider config (default: ./moonloop.lua, then\n"
    "                  $XDG_CONFIG_HOME/moonloop/config.lua, then OPENAI_API_KEY /\n"
    "                  OPENAI_BASE_URL from the environment, then the offline simulator)\n"
    "  --offline       answer llm.chat from the built-in simulator whatever the config says\n"
    "  --trusted       accepted for scripts that need io/os (scripts currently always run\n"
    "                  with the full standard library)\n"
    "  --quiet         only warnings and errors on stderr\n"
    "  --verbose       debug messages too\n"
    "  -h, --help      this text\n"
    "\n"
    "Exit codes: 0 done; 1 a task failed (its traceback names file and line) or tasks were\n"
    "left waiting on nothing; 2 bad usage, a config or script that does not load; 130\n"
    "interrupted with Ctrl-C.\n";

static int report_outcome(struct ml_rt *rt, struct ml_task *main_task) {
  if (rt->exit_code == ML_EXIT_INTERRUPTED)
    return ML_EXIT_INTERRUPTED;
  unsigned stuck = sched_report_stuck(rt);
  if (stuck > 0) {
    rt_log(rt, ML_LOG_ERROR, "%u task(s) never finished (a deadlock: a join, semaphore or "
                             "park that nothing will wake)", stuck);
    return ML_EXIT_FAILURE;
  }
  if (main_task->outcome == TASK_FAILED || main_task->outcome == TASK_CANCELLED ||
      rt->failed_unjoined > 0)
    return ML_EXIT_FAILURE;
  return ML_EXIT_OK;
}

int cmd_run(int argc, char **argv) {
  const char *config_path = NULL;
  int offline = 0, i;
  enum ml_log_level level = ML_LOG_INFO;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    if (a[0] != '-' || a[1] == '\0')
      break;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(run_usage, stdout);
      return ML_EXIT_OK;
    } else if (strcmp(a, "--config") == 0) {
      if (++i >= argc) {
        fprintf(stderr, "moonloop run: --config needs a file name\n");
        return ML_EXIT_USAGE;
      }
      config_path = argv[i];
    } else if (strcmp(a, "--offline") == 0) {
      offline = 1;
    } else if (strcmp(a, "--trusted") == 0) {
      /* scripts run trusted until the sandbox lands */
    } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
      level = ML_LOG_WARN;
    } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
      level = ML_LOG_DEBUG;
    } else {
      fprintf(stderr, "moonloop run: unknown option '%s' (see moonloop run --help)\n", a);
      return ML_EXIT_USAGE;
    }
  }
  if (i >= argc) {
    fprintf(stderr, "moonloop run: no script given\n\n%s", run_usage);
    return ML_EXIT_USAGE;
  }
  const char *script = argv[i];

  char err[1024];
  struct llm_config cfg;
  if (offline) {
    llm_config_offline(&cfg);
  } else if (llm_config_load(&cfg, config_path, err, sizeof err) != 0) {
    fprintf(stderr, "moonloop: config: %s\n", err);
    return ML_EXIT_USAGE;
  }

  struct ml_rt rt;
  if (rt_init(&rt, err, sizeof err) != 0) {
    fprintf(stderr, "moonloop: %s\n", err);
    llm_config_free(&cfg);
    return ML_EXIT_FAILURE;
  }
  rt.log_level = level;
  lua_State *L = rt.L;
  int code = ML_EXIT_FAILURE;
  if (llm_open(L, &rt, &cfg) != 0) {
    llm_config_free(&cfg);
    fprintf(stderr, "moonloop: out of memory\n");
    goto done;
  }
  if (rt_require(&rt, "moonloop.task", err, sizeof err) != 0) {
    fprintf(stderr, "moonloop: cannot load the runtime's Lua library: %s\n"
                    "(set MOONLOOP_LUA_DIR to the directory holding moonloop/task.lua)\n", err);
    goto done;
  }

  /* arg: like the standalone interpreter, arg[0] is the script. */
  lua_createtable(L, argc - i - 1, 1);
  for (int k = i; k < argc; k++) {
    lua_pushstring(L, argv[k]);
    lua_rawseti(L, -2, k - i);
  }
  lua_setglobal(L, "arg");

  if (luaL_loadfilex(L, script, "t") != LUA_OK) {
    /* Syntax errors already read "file.lua:LINE: ...". */
    fprintf(stderr, "moonloop: %s\n", lua_tostring(L, -1));
    code = ML_EXIT_USAGE;
    goto done;
  }
  int nargs = 0;
  for (int k = i + 1; k < argc; k++, nargs++)
    lua_pushstring(L, argv[k]);
  struct ml_task *main_task = sched_spawn(L, nargs, NULL);
  rt.main_task = main_task;
  luaL_ref(L, LUA_REGISTRYINDEX); /* keep the handle (and its outcome) until rt_close */
  rt_run(&rt);
  code = report_outcome(&rt, main_task);
done:
  rt_close(&rt);
  return code;
}

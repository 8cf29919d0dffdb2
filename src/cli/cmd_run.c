/* moonloop run: load a Lua script and run it as the first task on the event loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/rt.h"
#include "moonloop/moonloop.h"

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

int cmd_run(int argc, char **argv) {
  const char *config_path = NULL;
  int offline = 0, i;
  int level = ML_LEVEL_INFO;
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
      level = ML_LEVEL_WARN;
    } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
      level = ML_LEVEL_DEBUG;
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
  struct ml_options opts = {config_path, offline, level};
  ml_runtime *m;
  int code = ml_runtime_new(&m, &opts, err, sizeof err);
  if (code != 0) {
    fprintf(stderr, "moonloop: %s%s\n", code == ML_EXIT_USAGE ? "config: " : "", err);
    return code;
  }
  code = ml_runtime_run_file(m, script, argc - i - 1, argv + i + 1);
  ml_runtime_free(m);
  return code;
}

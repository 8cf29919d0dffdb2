/* moonloop repl: options, then the REPL driver (src/repl/). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/rt.h"
#include "moonloop/moonloop.h"
#include "repl/repl.h"

static const char repl_usage[] =
    "Usage: moonloop repl [options] [FILE.lua [ARGS...]]\n"
    "       moonloop repl --resume DIR [options] [RECIPE.lua]\n"
    "\n"
    "An interactive Lua prompt on moonloop's event loop. Every line runs as a task, so\n"
    "llm.chat{...} works at the prompt while other work goes on; expressions print their\n"
    "values. When FILE.lua returns a recipe, its run starts in the background and the\n"
    "prompt stays live: :status, :pause, :resume, :step, :concurrency K, :versions, :diff,\n"
    ":edit, :revert, :failures, :cost (type :help at the prompt for the whole list).\n"
    "\n"
    "Keys: the usual Emacs keys, Up/Down for history (kept in\n"
    "$XDG_STATE_HOME/moonloop/history, default ~/.local/state/moonloop/history), Tab\n"
    "completes globals and table fields. Ctrl-C cancels the running line (a pending\n"
    "llm.chat returns at once with a \"cancelled\" error) or drops the line being typed;\n"
    "Ctrl-D leaves, and an attached run stays resumable (moonloop repl --resume DIR).\n"
    "Without a terminal (stdin is a pipe or a file) it reads lines and prints results.\n"
    "\n"
    "Options (as for moonloop run): --config FILE, --offline, --out DIR, --resume DIR,\n"
    "--iterations N, --seed N, --concurrency K, --set KEY=VALUE, --budget-usd X,\n"
    "--max-requests N, --quiet, --verbose. And:\n"
    "  --paused      attach the recipe's run paused: nothing is sent until :step or :resume\n"
    "  --no-editor   read plain lines even on a terminal\n";

int cmd_repl(int argc, char **argv) {
  struct repl_options o;
  memset(&o, 0, sizeof o);
  o.log_level = ML_LEVEL_INFO;
  const char *run_options[64];
  static char optbuf[64][512];
  int nopts = 0;
  const char *resume = NULL;
  char **script_args = calloc((size_t)argc + 1, sizeof *script_args);
  if (script_args == NULL)
    return ML_EXIT_FAILURE;
  int options_done = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!options_done && strcmp(a, "--") == 0) {
      options_done = 1;
      continue;
    }
    if (options_done || a[0] != '-' || a[1] == '\0') {
      if (o.script == NULL)
        o.script = a;
      else
        script_args[o.argc++] = argv[i];
      continue;
    }
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(repl_usage, stdout);
      free(script_args);
      return ML_EXIT_OK;
    } else if (strcmp(a, "--config") == 0) {
      if (++i >= argc) {
        fprintf(stderr, "moonloop repl: --config needs a file name\n");
        free(script_args);
        return ML_EXIT_USAGE;
      }
      o.config_path = argv[i];
    } else if (strcmp(a, "--out") == 0 || strcmp(a, "--resume") == 0 ||
               strcmp(a, "--iterations") == 0 || strcmp(a, "--seed") == 0 ||
               strcmp(a, "--concurrency") == 0 || strcmp(a, "--set") == 0 ||
               strcmp(a, "--budget-usd") == 0 || strcmp(a, "--max-requests") == 0) {
      if (++i >= argc || nopts >= 62) {
        fprintf(stderr, "moonloop repl: %s needs a value (see moonloop repl --help)\n", a);
        free(script_args);
        return ML_EXIT_USAGE;
      }
      int numeric = strcmp(a, "--iterations") == 0 || strcmp(a, "--seed") == 0 ||
                    strcmp(a, "--concurrency") == 0 || strcmp(a, "--max-requests") == 0;
      if (numeric && (argv[i][0] == '\0' || strspn(argv[i], "0123456789") != strlen(argv[i]))) {
        fprintf(stderr, "moonloop repl: %s needs a whole number, got '%s'\n", a, argv[i]);
        free(script_args);
        return ML_EXIT_USAGE;
      }
      if (strcmp(a, "--budget-usd") == 0) {
        char *end = NULL;
        double usd = strtod(argv[i], &end);
        if (end == argv[i] || *end != '\0' || !(usd > 0)) {
          fprintf(stderr, "moonloop repl: --budget-usd needs a positive number, got '%s'\n",
                  argv[i]);
          free(script_args);
          return ML_EXIT_USAGE;
        }
      }
      if (strcmp(a, "--set") == 0 && strchr(argv[i], '=') == NULL) {
        fprintf(stderr, "moonloop repl: --set needs KEY=VALUE, got '%s'\n", argv[i]);
        free(script_args);
        return ML_EXIT_USAGE;
      }
      if (strcmp(a, "--resume") == 0)
        resume = argv[i];
      const char *key = strcmp(a, "--budget-usd") == 0     ? "budget_usd"
                        : strcmp(a, "--max-requests") == 0 ? "max_requests"
                                                           : a + 2;
      snprintf(optbuf[nopts], sizeof optbuf[nopts], "%s=%s", key, argv[i]);
      run_options[nopts] = optbuf[nopts];
      nopts++;
    } else if (strcmp(a, "--offline") == 0) {
      o.offline = 1;
    } else if (strcmp(a, "--paused") == 0) {
      if (nopts >= 62) {
        fprintf(stderr, "moonloop repl: too many options\n");
        free(script_args);
        return ML_EXIT_USAGE;
      }
      run_options[nopts++] = "paused=true";
    } else if (strcmp(a, "--no-editor") == 0) {
      o.no_editor = 1;
    } else if (strcmp(a, "--trusted") == 0) {
      /* the REPL is trusted code */
    } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
      o.log_level = ML_LEVEL_WARN;
    } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
      o.log_level = ML_LEVEL_DEBUG;
    } else if (o.script != NULL) {
      script_args[o.argc++] = argv[i]; /* an option of the script's own */
    } else {
      fprintf(stderr, "moonloop repl: unknown option '%s' (see moonloop repl --help)\n", a);
      free(script_args);
      return ML_EXIT_USAGE;
    }
  }
  run_options[nopts] = NULL;
  o.run_options = run_options;
  char resumed_recipe[1024];
  if (o.script == NULL && resume != NULL) {
    snprintf(resumed_recipe, sizeof resumed_recipe, "%s/recipes/v0001.lua", resume);
    o.script = resumed_recipe;
  }
  o.argv = script_args;
  int code = repl_main(&o);
  free(script_args);
  return code;
}

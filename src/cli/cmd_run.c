/* moonloop run: load a Lua script and run it as the first task on the event loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/rt.h"
#include "moonloop/moonloop.h"

static const char run_usage[] =
    "Usage: moonloop run [options] FILE.lua [ARGS...]\n"
    "       moonloop run --resume DIR [options]\n"
    "\n"
    "Runs FILE.lua as a task on the event loop. The script can call llm.chat, task.spawn,\n"
    "task.sleep and friends; the process exits when every task has finished. ARGS are\n"
    "available to the script as the global table `arg` (arg[0] is FILE.lua).\n"
    "\n"
    "When FILE.lua returns a recipe (asi.recipe{...}), moonloop runs it: work items from\n"
    "its sources, rounds per item, a run directory with run.db (the source of truth),\n"
    "dataset.jsonl and rejected.jsonl, live progress and a closing summary.\n"
    "\n"
    "Recipe options:\n"
    "  --out DIR          run directory (default runs/<recipe>-<UTC time>)\n"
    "  --resume DIR       continue a stopped run (after Ctrl-C, a crash or kill -9): finished\n"
    "                     items are kept, answered requests are replayed from the journal,\n"
    "                     never sent again; FILE.lua defaults to DIR/recipes/v0001.lua\n"
    "  --iterations N     run at most N iterations (batches of items) now\n"
    "  --seed N           seed of the run (default 1); a resumed run keeps its own\n"
    "  --concurrency K    items in flight at once (default: the recipe's, 16)\n"
    "  --set KEY=VALUE    override a recipe parameter: max_rounds=4, samples.weak=2,\n"
    "                     accept.gap_min=0.3 (repeatable)\n"
    "  --json             machine-readable events on stdout (progress, item, summary)\n"
    "  --progress-ms N    interval of the progress lines when stderr is not a terminal\n"
    "                     (default 10000)\n"
    "  --budget-usd X     stop new work and cancel what is in flight once X dollars are\n"
    "                     spent (priced models only); exit 3, resumable\n"
    "  --max-requests N   the same after N requests sent (retries count); exit 3\n"
    "  --trace            append every LLM request to DIR/trace.jsonl: role, model, prompt,\n"
    "                     response, latency, tokens, cache hit, recipe version (never keys\n"
    "                     or auth headers)\n"
    "\n"
    "Options:\n"
    "  --config FILE   provider config (default: ./moonloop.lua, then\n"
    "                  $XDG_CONFIG_HOME/moonloop/config.lua, then OPENAI_API_KEY /\n"
    "                  OPENAI_BASE_URL from the environment, then the offline simulator)\n"
    "  --offline       answer llm.chat from the built-in simulator whatever the config says\n"
    "  --trusted       run a plain script with the full standard library (io, os, fs, proc,\n"
    "                  debug, package): for scripts of your own that need files or\n"
    "                  subprocesses. Recipes run in the sandbox even with --trusted\n"
    "  --quiet         only warnings and errors on stderr\n"
    "  --verbose       debug messages too\n"
    "  -h, --help      this text\n"
    "\n"
    "Sandbox: recipes, and scripts run without --trusted, run in a sandbox: no io, no os\n"
    "beyond time/clock/date/difftime, no debug, package, dofile, loadfile, string.dump or\n"
    "bytecode; require reaches only json, text, log, llm, task and a few moonloop.*\n"
    "modules (asi, accept, rubric, verify, edit), read-only; llm.chat names models by role\n"
    "(the config's models aliases, or weak/strong/judge/...), never URLs, headers or keys.\n"
    "Limits per sandbox: 64 MiB of memory, and per call 1e9 instructions and 30 s of\n"
    "running time (waiting on models does not count); a script past a limit is killed with\n"
    "an error naming its file and line, which pcall cannot catch.\n"
    "\n"
    "Exit codes: 0 done; 1 a task failed (its traceback names file and line) or tasks were\n"
    "left waiting on nothing; 2 bad usage, a config or script that does not load; 3 the\n"
    "budget or request cap was reached (resumable); 130 interrupted with Ctrl-C.\n";

/* A sanitizer build frees everything at exit, so LeakSanitizer judges the teardown. */
#if defined(__SANITIZE_ADDRESS__)
#define ML_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ML_SANITIZED 1
#endif
#endif
#ifndef ML_SANITIZED
#define ML_SANITIZED 0
#endif

static int full_teardown(void) {
  const char *v = getenv("MOONLOOP_FULL_TEARDOWN");
  return ML_SANITIZED || (v != NULL && v[0] != '\0' && strcmp(v, "0") != 0);
}

int cli_run_file(const struct ml_options *o, const char *path, int argc, char **argv,
                 const char *who) {
  char err[1024];
  ml_runtime *m;
  int code = ml_runtime_new(&m, o, err, sizeof err);
  if (code != 0) {
    fprintf(stderr, "%s: %s%s\n", who, code == ML_EXIT_USAGE ? "config: " : "", err);
    return code;
  }
  code = ml_runtime_run_file(m, path, argc, argv);
  if (full_teardown())
    ml_runtime_free(m);
  else
    ml_runtime_free_for_exit(m); /* the process exits next: see rt_close_for_exit */
  return code;
}

int cmd_run(int argc, char **argv) {
  const char *config_path = NULL;
  const char *resume = NULL;
  int offline = 0, i;
  const char *run_options[64];
  int nopts = 0;
  static char optbuf[64][512];
  int level = ML_LEVEL_INFO;
  /* Options may come before or after the script (moonloop run recipe.lua --out d); the
   * first other word is the script, the rest are its arguments; "--" ends the options. */
  const char *script_arg = NULL;
  char *script_args[256];
  int nargs = 0, options_done = 0;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!options_done && strcmp(a, "--") == 0) {
      options_done = 1;
      continue;
    }
    if (options_done || a[0] != '-' || a[1] == '\0') {
      if (script_arg == NULL) {
        script_arg = a;
      } else if (nargs < 256) {
        script_args[nargs++] = argv[i];
      } else {
        fprintf(stderr, "moonloop run: too many script arguments\n");
        return ML_EXIT_USAGE;
      }
      continue;
    }
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(run_usage, stdout);
      return ML_EXIT_OK;
    } else if (strcmp(a, "--config") == 0) {
      if (++i >= argc) {
        fprintf(stderr, "moonloop run: --config needs a file name\n");
        return ML_EXIT_USAGE;
      }
      config_path = argv[i];
    } else if (strcmp(a, "--out") == 0 || strcmp(a, "--resume") == 0 ||
               strcmp(a, "--iterations") == 0 || strcmp(a, "--seed") == 0 ||
               strcmp(a, "--concurrency") == 0 || strcmp(a, "--set") == 0 ||
               strcmp(a, "--progress-ms") == 0 || strcmp(a, "--budget-usd") == 0 ||
               strcmp(a, "--max-requests") == 0) {
      if (++i >= argc) {
        fprintf(stderr, "moonloop run: %s needs a value (see moonloop run --help)\n", a);
        return ML_EXIT_USAGE;
      }
      if (nopts >= 62) {
        fprintf(stderr, "moonloop run: too many options\n");
        return ML_EXIT_USAGE;
      }
      int numeric = strcmp(a, "--iterations") == 0 || strcmp(a, "--seed") == 0 ||
                    strcmp(a, "--concurrency") == 0 || strcmp(a, "--progress-ms") == 0 ||
                    strcmp(a, "--max-requests") == 0;
      if (strcmp(a, "--budget-usd") == 0) {
        char *end = NULL;
        double usd = strtod(argv[i], &end);
        if (end == argv[i] || *end != '\0' || !(usd > 0)) {
          fprintf(stderr, "moonloop run: --budget-usd needs a positive number of dollars, got '%s'\n",
                  argv[i]);
          return ML_EXIT_USAGE;
        }
      }
      if (numeric && (argv[i][0] == '\0' || strspn(argv[i], "0123456789") != strlen(argv[i]))) {
        fprintf(stderr, "moonloop run: %s needs a whole number, got '%s'\n", a, argv[i]);
        return ML_EXIT_USAGE;
      }
      if (strcmp(a, "--set") == 0 && strchr(argv[i], '=') == NULL) {
        fprintf(stderr, "moonloop run: --set needs KEY=VALUE, got '%s'\n", argv[i]);
        return ML_EXIT_USAGE;
      }
      if (strcmp(a, "--resume") == 0)
        resume = argv[i];
      const char *key = strcmp(a, "--progress-ms") == 0    ? "progress_ms"
                        : strcmp(a, "--budget-usd") == 0   ? "budget_usd"
                        : strcmp(a, "--max-requests") == 0 ? "max_requests"
                                                            : a + 2;
      snprintf(optbuf[nopts], sizeof optbuf[nopts], "%s=%s", key, argv[i]);
      run_options[nopts] = optbuf[nopts];
      nopts++;
    } else if (strcmp(a, "--json") == 0) {
      if (nopts < 62) /* repeating a flag changes nothing */
        run_options[nopts++] = "json=true";
    } else if (strcmp(a, "--offline") == 0) {
      offline = 1;
    } else if (strcmp(a, "--trusted") == 0) {
      if (nopts < 62) /* repeating a flag changes nothing */
        run_options[nopts++] = "trusted=true";
    } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
      level = ML_LEVEL_WARN;
      if (nopts < 62) /* repeating a flag changes nothing */
        run_options[nopts++] = "quiet=true";
    } else if (strcmp(a, "--trace") == 0) {
      if (nopts < 62) /* a repeated --trace changes nothing */
        run_options[nopts++] = "trace=true";
    } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
      level = ML_LEVEL_DEBUG;
    } else if (script_arg != NULL && nargs < 256) {
      script_args[nargs++] = argv[i]; /* an option of the script's own */
    } else {
      fprintf(stderr, "moonloop run: unknown option '%s' (see moonloop run --help)\n", a);
      return ML_EXIT_USAGE;
    }
  }
  run_options[nopts] = NULL;
  char resumed_recipe[1024];
  const char *script;
  if (script_arg) {
    script = script_arg;
  } else if (resume) {
    snprintf(resumed_recipe, sizeof resumed_recipe, "%s/recipes/v0001.lua", resume);
    script = resumed_recipe;
  } else {
    fprintf(stderr, "moonloop run: no script given\n\n%s", run_usage);
    return ML_EXIT_USAGE;
  }

  struct ml_options opts = {config_path, offline, level, run_options};
  return cli_run_file(&opts, script, nargs, script_args, "moonloop");
}

/* moonloop check [--config FILE] RECIPE.lua: the recipe is loaded as `run` would, then
 * moonloop.check inspects it instead of running it. */
int cmd_check(int argc, char **argv) {
  const char *config_path = NULL;
  int i;
  for (i = 1; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      fputs("Usage: moonloop check [--config FILE] RECIPE.lua\n"
            "\n"
            "Compiles and loads the recipe, lists its editable regions (-- @editable NAME ...\n"
            "-- @end), runs a two-round self-test on one work item against the built-in\n"
            "simulator (never the network), and estimates the calls, tokens and cost of one\n"
            "iteration from the prices in the config. Exit 0 when all is well, 2 when the\n"
            "recipe does not load or has problems.\n",
            stdout);
      return ML_EXIT_OK;
    }
    if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
      config_path = argv[++i];
    } else {
      fprintf(stderr, "moonloop check: unknown option '%s'\n", argv[i]);
      return ML_EXIT_USAGE;
    }
  }
  if (i != argc - 1) {
    fprintf(stderr, "moonloop check: expects exactly one recipe file (see moonloop check --help)\n");
    return ML_EXIT_USAGE;
  }
  const char *run_options[] = {"mode=check", NULL};
  struct ml_options opts = {config_path, 0, ML_LEVEL_WARN, run_options};
  return cli_run_file(&opts, argv[i], 0, NULL, "moonloop");
}

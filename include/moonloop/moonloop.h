/* moonloop's embedding API: create a runtime, run a Lua script on its event loop, free it.
 * Small on purpose; `moonloop run` is built on exactly these calls. */
#ifndef MOONLOOP_H
#define MOONLOOP_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ml_runtime ml_runtime;

/* Log levels for ml_options.log_level. */
enum { ML_LEVEL_DEBUG = 0, ML_LEVEL_INFO = 1, ML_LEVEL_WARN = 2, ML_LEVEL_ERROR = 3 };

struct ml_options {
  const char *config_path; /* NULL: ./moonloop.lua, $XDG_CONFIG_HOME, then the environment */
  int offline;             /* non-zero: the built-in simulator answers every llm.chat */
  int log_level;           /* ML_LEVEL_*; 0-initialised options mean debug */
  /* Run options for a recipe, "key=value" strings, NULL-terminated (may be NULL): out,
   * resume, iterations, seed, concurrency, json, quiet, progress_ms, and set (repeatable:
   * "set=max_rounds=4"). They reach Lua as package.loaded["moonloop.cli"].
   * "trusted=true" runs the file with the full standard library; without it the file runs
   * in the sandbox (no io, os beyond time, require of the runtime's allow-list only, memory
   * and instruction limits). A file that returns a recipe is always loaded in the sandbox. */
  const char *const *run_options;
};

/* Create a runtime. Returns 0, or an exit code (2: the config does not load, 1: other
 * failures) with a message in err naming the file and key. */
int ml_runtime_new(ml_runtime **out, const struct ml_options *opts, char *err, size_t errlen);

/* Run the Lua file at path as the first task; argv (argc entries) becomes the global
 * `arg` (arg[0] = path) and the chunk's `...`. A file that returns a recipe
 * (asi.recipe{...}) is then run as a recipe with the run options. Returns when every task has finished, with
 * moonloop's exit code: 0 done, 1 a task failed or deadlocked, 2 the script does not load,
 * 130 interrupted. A runtime runs one file. */
int ml_runtime_run_file(ml_runtime *rt, const char *path, int argc, char **argv);

/* Cancel what is left, close the loop and free everything. */
void ml_runtime_free(ml_runtime *rt);

/* For a process that calls exit() right after: cancel what is left and run every Lua
 * finalizer (files and databases close), flush stdio, but leave memory and idle
 * connections for the kernel to take back, which is faster with thousands of connections
 * open. Leak checkers report what it leaves; use ml_runtime_free under them. */
void ml_runtime_free_for_exit(ml_runtime *rt);

const char *ml_version(void);

#ifdef __cplusplus
}
#endif

#endif

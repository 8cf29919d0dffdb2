/* moonloop recipe log|show|diff|revert RUN_DIR [VERSION...]: the recipe lineage of a run.
 * The work is done by the runtime's own (trusted) Lua library, lua/moonloop/recipe_cli.lua,
 * run as the first task of an offline runtime: no provider is needed to read a run. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/paths.h"
#include "core/rt.h"
#include "moonloop/moonloop.h"

int cmd_recipe(int argc, char **argv) {
  char path[4096];
  int n = snprintf(path, sizeof path, "%s/moonloop/recipe_cli.lua", ml_lua_dir());
  if (n < 0 || (size_t)n >= sizeof path) {
    fprintf(stderr, "moonloop recipe: the Lua library path is too long\n");
    return ML_EXIT_FAILURE;
  }
  const char *run_options[] = {"trusted=1", NULL};
  struct ml_options opts = {NULL, 1, ML_LEVEL_WARN, run_options};
  return cli_run_file(&opts, path, argc - 1, argv + 1, "moonloop");
}

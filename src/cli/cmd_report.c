/* moonloop report RUN_DIR [--text]: (re)write RUN_DIR/report.html from run.db and print a
 * summary. The work is Lua (moonloop/report.lua), run through the embedding API on the
 * built-in simulator config, so no provider config or key is ever needed to read a run. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/paths.h"
#include "core/rt.h"
#include "moonloop/moonloop.h"

static const char report_usage[] =
    "Usage: moonloop report RUN_DIR [--text]\n"
    "\n"
    "Reads RUN_DIR/run.db (read-only; a run may still be writing it) and writes\n"
    "RUN_DIR/report.html: one self-contained page (inline SVG and CSS, no script, no\n"
    "network) with acceptance and weak/strong/gap per iteration and per recipe version,\n"
    "the lineage of recipe versions, cost and tokens over time by role, latency\n"
    "histograms and percentiles by model, round outcomes over time, and sample accepted\n"
    "and rejected examples with the judge's verdict on each rubric criterion. Then prints\n"
    "a short summary and the report's path.\n"
    "\n"
    "Options:\n"
    "  --text       print the full text summary instead (nothing is written)\n"
    "  -h, --help   this text\n"
    "\n"
    "Exit codes: 0 done; 1 the report could not be made; 2 bad usage, or RUN_DIR is not a\n"
    "readable run directory.\n";

int cmd_report(int argc, char **argv) {
  char *dir = NULL;
  int text = 0, options_done = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!options_done && strcmp(a, "--") == 0) {
      options_done = 1;
    } else if (!options_done && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
      fputs(report_usage, stdout);
      return ML_EXIT_OK;
    } else if (!options_done && strcmp(a, "--text") == 0) {
      text = 1;
    } else if (!options_done && a[0] == '-' && a[1] != '\0') {
      fprintf(stderr, "moonloop report: unknown option '%s' (see moonloop report --help)\n", a);
      return ML_EXIT_USAGE;
    } else if (dir == NULL) {
      dir = argv[i];
    } else {
      fprintf(stderr, "moonloop report: expects one run directory, got '%s' and '%s'\n", dir, a);
      return ML_EXIT_USAGE;
    }
  }
  if (dir == NULL) {
    fprintf(stderr, "moonloop report: no run directory given\n\n%s", report_usage);
    return ML_EXIT_USAGE;
  }

  struct stat st;
  if (stat(dir, &st) != 0) {
    fprintf(stderr, "moonloop report: %s: %s\n", dir, strerror(errno));
    return ML_EXIT_USAGE;
  }
  if (!S_ISDIR(st.st_mode)) {
    fprintf(stderr, "moonloop report: %s is not a directory (give the run directory that holds "
                    "run.db)\n", dir);
    return ML_EXIT_USAGE;
  }
  char db[4096];
  if ((size_t)snprintf(db, sizeof db, "%s/run.db", dir) >= sizeof db) {
    fprintf(stderr, "moonloop report: the path %s is too long\n", dir);
    return ML_EXIT_USAGE;
  }
  if (stat(db, &st) != 0) {
    fprintf(stderr, "moonloop report: %s is not a run directory (it has no run.db; runs are "
                    "under runs/ or where --out put them)\n", dir);
    return ML_EXIT_USAGE;
  }
  if (access(db, R_OK) != 0) {
    fprintf(stderr, "moonloop report: cannot read %s: %s\n", db, strerror(errno));
    return ML_EXIT_USAGE;
  }

  char entry[4096];
  if ((size_t)snprintf(entry, sizeof entry, "%s/moonloop/report_cli.lua", ml_lua_dir()) >=
      sizeof entry) {
    fprintf(stderr, "moonloop report: the Lua library path is too long\n");
    return ML_EXIT_FAILURE;
  }
  static char text_flag[] = "--text";
  char *args[2] = {dir, text_flag};
  /* The entry is part of moonloop's own library, so it runs trusted: it reads run.db with
   * the sqlite module and writes the page with fs. */
  static const char *const run_options[] = {"trusted=true", NULL};
  struct ml_options opts = {NULL, 1, ML_LEVEL_WARN, run_options};
  return cli_run_file(&opts, entry, text ? 2 : 1, args, "moonloop report");
}

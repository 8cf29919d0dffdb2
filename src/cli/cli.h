/* Subcommands of the moonloop executable; main.c only dispatches to these. */
#ifndef ML_CLI_H
#define ML_CLI_H

int cmd_run(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_repl(int argc, char **argv);
int cmd_recipe(int argc, char **argv);

struct ml_options;

/* Creates a runtime with o, runs the Lua file at path with argc arguments, and lets the
 * runtime go the way the process is about to: quickly (ml_runtime_free_for_exit), unless
 * MOONLOOP_FULL_TEARDOWN is set or this is a sanitizer build, which free everything for
 * the leak checkers. Returns moonloop's exit code; a runtime that cannot start is
 * reported on stderr as "WHO: ...". */
int cli_run_file(const struct ml_options *o, const char *path, int argc, char **argv,
                 const char *who);

#endif

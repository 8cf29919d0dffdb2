/* Subcommands of the moonloop executable; main.c only dispatches to these. */
#ifndef ML_CLI_H
#define ML_CLI_H

int cmd_run(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_repl(int argc, char **argv);
int cmd_recipe(int argc, char **argv);

#endif

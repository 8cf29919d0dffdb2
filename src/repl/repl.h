/* moonloop repl: a Lua REPL whose lines run as tasks on the runtime's event loop, optionally
 * with a recipe run attached in the background (lua/moonloop/repl.lua has the commands). */
#ifndef ML_REPL_H
#define ML_REPL_H

struct repl_options {
  const char *config_path;        /* NULL: the usual search */
  int offline;                    /* the built-in simulator answers every llm.chat */
  int log_level;                  /* ML_LEVEL_* */
  const char *const *run_options; /* "key=value", NULL-terminated, as for moonloop run */
  const char *script;             /* a script or recipe to run first; may be NULL */
  int argc;                       /* its arguments */
  char **argv;
  int no_editor; /* read lines without the line editor even on a terminal */
};

/* Runs the REPL until Ctrl-D, end of input or :quit. Returns the exit code (0, or 1/2 when
 * the runtime or the config cannot be set up). */
int repl_main(const struct repl_options *o);

#endif

/* moonloop: the command-line entry point. It only dispatches to a subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "mock/mock.h"

static const char usage[] =
    "moonloop " ML_VERSION " - a runtime for agentic data creation (libuv + libcurl + Lua 5.4)\n"
    "\n"
    "Usage:\n"
    "  moonloop run [options] FILE.lua [ARGS...]   run a Lua script as the first task on the\n"
    "                                              event loop; exits when every task is done\n"
    "  moonloop repl [options] [FILE.lua]          interactive Lua prompt on the event loop;\n"
    "                                              with a recipe, its run goes on in the\n"
    "                                              background (:help at the prompt)\n"
    "  moonloop check [--config FILE] RECIPE.lua   load a recipe, list its editable regions,\n"
    "                                              self-test it on the simulator (no network)\n"
    "                                              and estimate the cost of one iteration\n"
    "  moonloop recipe log|show|diff|revert RUN_DIR [V...]\n"
    "                                              the recipe versions of a run: lineage with\n"
    "                                              scores and rejection reasons, text, diffs,\n"
    "                                              and revert to an earlier version\n"
    "  moonloop report RUN_DIR [--text]            write RUN_DIR/report.html (charts, lineage,\n"
    "                                              examples) and print a summary; --text prints\n"
    "                                              the full text summary only; works mid-run\n"
    "  moonloop mock-server [options]              OpenAI-compatible server on 127.0.0.1 with\n"
    "                                              latency and fault injection (for tests)\n"
    "  moonloop --help | --version\n"
    "\n"
    "Run 'moonloop run --help', 'moonloop repl --help' or 'moonloop mock-server --help' for\n"
    "their options.\n"
    "Recipes: 'moonloop run recipes/agentic_self_instruct.lua' runs the flagship recipe (on\n"
    "the offline simulator when no provider is configured) into runs/<recipe>-<time>/.\n"
    "\n"
    "Providers: with OPENAI_API_KEY (and optionally OPENAI_BASE_URL) set, llm.chat goes to\n"
    "that server; a moonloop.lua config file names several providers and role aliases; with\n"
    "neither, llm.chat answers from the built-in offline simulator.\n"
    "\n"
    "Exit codes: 0 done, 1 runtime failure, 2 bad usage or a script/config that does not\n"
    "load (the message names file and line), 130 interrupted.\n";

int main(int argc, char **argv) {
  if (argc < 2) {
    fputs(usage, stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
    fputs(usage, stdout);
    return 0;
  }
  if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
    printf("moonloop %s\n", ML_VERSION);
    return 0;
  }
  if (strcmp(cmd, "run") == 0)
    return cmd_run(argc - 1, argv + 1);
  if (strcmp(cmd, "repl") == 0)
    return cmd_repl(argc - 1, argv + 1);
  if (strcmp(cmd, "check") == 0)
    return cmd_check(argc - 1, argv + 1);
  if (strcmp(cmd, "recipe") == 0)
    return cmd_recipe(argc - 1, argv + 1);
  if (strcmp(cmd, "report") == 0)
    return cmd_report(argc - 1, argv + 1);
  if (strcmp(cmd, "mock-server") == 0)
    return mock_main(argc - 1, argv + 1);
  fprintf(stderr, "moonloop: unknown command '%s'\n\n%s", cmd, usage);
  return 2;
}

/* `moonloop mock-server`: an OpenAI-compatible HTTP server on loopback for tests and
 * benchmarks, with latency and fault injection. Answers come from a Lua function. */
#ifndef ML_MOCK_H
#define ML_MOCK_H

/* Entry point for the subcommand; argv[0] is "mock-server". Returns the exit code. */
int mock_main(int argc, char **argv);

#endif

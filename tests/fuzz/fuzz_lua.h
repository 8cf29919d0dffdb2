/* Shared by the fuzz targets that run Lua: a Lua state with a memory cap and an instruction
 * budget, only the libraries without I/O, and coverage of the Lua code it runs.
 *
 * liblua is not instrumented, so libFuzzer cannot see which Lua lines an input reached. A
 * line hook does it instead: every (previous line, line) pair bumps a byte in a section
 * libFuzzer reads as extra coverage counters, which turns a blind mutator into one guided by
 * the branches of the Lua code under test. */
#ifndef ML_FUZZ_LUA_H
#define ML_FUZZ_LUA_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

struct fuzz_lua {
  lua_State *L;
  size_t used, cap;      /* bytes allocated by the state, and the most it may allocate */
  int hit_cap;           /* an allocation was refused */
  long steps, max_steps; /* thousands of VM instructions run, and the budget */
  int prev_line;
};

/* A fresh state: base (without dofile, loadfile, load, require and print), string, table,
 * math and utf8, the runtime's `json` and `text` modules as globals, and package.path
 * pointing at the runtime's Lua library (MOONLOOP_LUA_DIR or the source tree). cap_mb
 * bounds memory, max_ksteps the thousands of instructions per fuzz_lua_call. Aborts when
 * the state cannot be made. lines: feed Lua line coverage to libFuzzer (for targets that
 * run a fixed Lua library on the input; not when the input itself is the Lua code, where
 * every new line of input would count as new coverage). */
void fuzz_lua_open(struct fuzz_lua *f, size_t cap_mb, long max_ksteps, int lines);

/* require(module) into the global `name`; aborts with the error when it does not load. */
void fuzz_lua_require(struct fuzz_lua *f, const char *module, const char *name);

/* lua_pcall(L, nargs, nresults) with the instruction budget reset first. Returns the status;
 * on an error the message is left on the stack as lua_pcall does. */
int fuzz_lua_call(struct fuzz_lua *f, int nargs, int nresults);

/* Whether the last error came from the memory cap or the instruction budget. */
int fuzz_lua_over_budget(const struct fuzz_lua *f);

/* The check function of a Lua-level target: `harness` (len bytes) is a chunk that gets the
 * global `global` as its argument and returns function(input). Returns its registry ref;
 * aborts, naming the target, when it does not load. */
int fuzz_lua_harness(struct fuzz_lua *f, const char *name, const char *harness, size_t len,
                     const char *global);

/* Call the check `ref` on one input; an error aborts with the target's name and message. */
void fuzz_lua_check(struct fuzz_lua *f, const char *name, int ref, const uint8_t *data,
                    size_t size);

void fuzz_lua_close(struct fuzz_lua *f);

#endif

/* The runtime: one per process. It owns the libuv loop, the ready queue of Lua tasks,
 * the HTTP engine, the provider configuration and the main (trusted) Lua state.
 * Everything runs on one thread; see the invariants at the top of sched.c. */
#ifndef ML_RT_H
#define ML_RT_H

#include <signal.h>
#include <stdint.h>
#include <uv.h>
#include <lua.h>

struct ml_task;
struct http_engine;
struct llm_config;
struct llm_state;
struct ml_sandbox;

/* Exit codes of SPEC section 2. */
enum {
  ML_EXIT_OK = 0,
  ML_EXIT_FAILURE = 1,
  ML_EXIT_USAGE = 2,
  ML_EXIT_BUDGET = 3,
  ML_EXIT_INTERRUPTED = 130,
};

enum ml_log_level { ML_LOG_DEBUG = 0, ML_LOG_INFO, ML_LOG_WARN, ML_LOG_ERROR, ML_LOG_QUIET };

struct ml_rt {
  uv_loop_t loop;
  uv_check_t ready_check; /* drains the ready queue once per loop turn */
  uv_idle_t ready_idle;   /* active while tasks are ready, so the poll phase never blocks */
  uv_async_t sigint_async;
  volatile sig_atomic_t interrupted;

  lua_State *L; /* main state; tasks are coroutines of it */

  /* The sandbox whose coroutine is being resumed right now (NULL: trusted code runs). The
   * allocator charges it for what it allocates; see src/sandbox/. */
  struct ml_sandbox *active_sandbox;
  int warn_on, warn_cont; /* Lua's warn() switch (off until "@on", as in the stock lua) */

  /* Scheduler state (sched.c). */
  struct ml_task *ready_head, *ready_tail;
  struct ml_task *current; /* the task being resumed right now, or NULL */
  struct ml_task *main_task; /* the script's task: when it fails, the rest is cancelled */
  struct ml_task *all_tasks; /* live (not yet finished) tasks, for diagnostics and cancel-all */
  uint64_t next_task_id;
  unsigned live_tasks;
  unsigned failed_unjoined; /* tasks that died with an error nobody retrieved */

  struct http_engine *http;
  struct llm_state *llm;

  enum ml_log_level log_level;
  int exit_code;
  int trusted; /* the script runs with the full standard library (--trusted) */
  uint64_t started_ns;
};

/* Create the loop, the main Lua state with the moonloop modules, and the HTTP engine.
 * Returns 0, or a negative code with a message in err. */
int rt_init(struct ml_rt *rt, char *err, size_t errlen);

/* Load lua/moonloop/<module>.lua (the Lua half of a module) into the main state. */
int rt_require(struct ml_rt *rt, const char *module, char *err, size_t errlen);

/* Run the loop until every task has finished (or the process is interrupted). */
void rt_run(struct ml_rt *rt);

/* Close everything, waiting for libuv handles to close. */
void rt_close(struct ml_rt *rt);

/* For a process that exits next: settle what outlives it (every Lua finalizer runs, so
 * files flush and close and databases close; the response cache closes; stdio is
 * flushed) and leave the rest to the kernel: Lua's frees, the transfers and libcurl's
 * idle connections. With 10,000 connections open this takes a third off the exit
 * (tests/bench/README.md). Nothing may use the runtime afterwards. */
void rt_close_for_exit(struct ml_rt *rt);

/* Fetch the runtime from a Lua state (stored in the registry by rt_init). */
struct ml_rt *rt_from_lua(lua_State *L);

/* Messages for people: to stderr, prefixed "moonloop: ", filtered by level. */
void rt_log(struct ml_rt *rt, enum ml_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Run options ("key=value" strings, NULL-terminated; "set=..." repeatable) as the table
 * package.loaded["moonloop.cli"] the Lua library reads. */
void rt_set_cli_options(lua_State *L, const char *const *opts);

#endif

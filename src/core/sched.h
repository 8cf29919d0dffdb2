/* Tasks: Lua coroutines driven by the runtime's ready queue.
 * C code that makes a task wait calls sched_wait() as its return expression and is
 * woken by sched_wake() from a libuv or libcurl completion path. */
#ifndef ML_SCHED_H
#define ML_SCHED_H

#include <stdint.h>
#include <lua.h>

struct ml_rt;
struct ml_task;

enum task_state { TASK_READY, TASK_RUNNING, TASK_WAITING, TASK_DONE };
enum task_outcome { TASK_PENDING, TASK_OK, TASK_FAILED, TASK_CANCELLED };

/* Called when a waiting task is cancelled: must undo the wait (remove the transfer,
 * stop the timer, leave the queue) without touching Lua. */
typedef void (*sched_cleanup_fn)(struct ml_task *t, void *wait_data);

struct ml_task {
  struct ml_rt *rt;
  lua_State *co;
  int self_ref; /* registry anchor of the task userdata while it is not DONE */
  uint64_t id;
  enum task_state state;
  enum task_outcome outcome;
  int nargs;   /* values pushed on co for the next resume (first resume: function args) */
  int started;
  int cancel_requested;
  int unjoined_failure; /* failed with nobody joining; counted in rt->failed_unjoined */
  int usage_error;      /* failed with an error of kind "recipe" or "usage": exit code 2 */
  const char *wait_what; /* what the task waits on, for diagnostics ("sleep", "llm.chat") */

  sched_cleanup_fn wait_cleanup;
  void *wait_data;

  struct ml_task *next_ready;
  struct ml_task *prev_live, *next_live;

  /* Structured cancellation: cancelling a task cancels the tasks it spawned. */
  struct ml_task *parent, *first_child, *next_sibling, *prev_sibling;

  /* Tasks blocked in join() on this one. */
  struct ml_task **joiners;
  int njoiners, cap_joiners;
};

/* Register the `task` module and the coroutine/pcall wrappers in L. */
void sched_open(lua_State *L, struct ml_rt *rt);

/* Spawn the function at the top of L's stack with nargs arguments below... exactly:
 * stack [fn, arg1..argn] (n = nargs) is consumed. Pushes the task handle and returns the
 * task. The task starts on the next loop turn. parent may be NULL. */
struct ml_task *sched_spawn(lua_State *L, int nargs, struct ml_task *parent);

/* The task currently running; raises a Lua error naming `what` if L is not inside a task
 * or cannot yield here (a metamethod, a sort comparator, a finalizer). */
struct ml_task *sched_check_waitable(lua_State *L, const char *what);

/* Suspend the current task. Use as `return sched_wait(L, ...)` from a lua_CFunction or a
 * continuation; k runs when the task is woken (it must call sched_check_cancel first). */
int sched_wait(lua_State *L, struct ml_task *t, const char *what, sched_cleanup_fn cleanup,
               void *data, lua_KContext ctx, lua_KFunction k);

/* Mark a waiting task ready. Pure C: safe from libuv and libcurl callbacks. */
void sched_wake(struct ml_task *t);

/* In a continuation: raise the cancellation error if the task was cancelled. */
void sched_check_cancel(lua_State *L, struct ml_task *t);

/* Cancel a task and its children; returns 1 if it was still running. */
int sched_cancel(struct ml_task *t);

/* Cancel every live task (Ctrl-C, budget). */
void sched_cancel_all(struct ml_rt *rt);

/* Resume every ready task once. Called from the loop's check phase (and only there). */
void sched_drain(struct ml_rt *rt);

/* Push a structured error {kind=, message=, ...} with the error metatable; callers add
 * fields and raise it with lua_error. */
void sched_push_error(lua_State *L, const char *kind, const char *message);

/* pcall / xpcall whose error path is `finish(L, status, extra)`: the scheduler's own finish
 * re-raises cancellation, the sandbox's also re-raises its kills. Both yield-safe. */
int sched_pcall_k(lua_State *L, lua_KFunction finish);
int sched_xpcall_k(lua_State *L, lua_KFunction finish);

/* Report tasks still waiting when the loop ran dry (a deadlock); returns their count. */
unsigned sched_report_stuck(struct ml_rt *rt);

#endif

/* Shared by the sandbox's files (sandbox.c: environments and the Lua API; call.c: calls,
 * limits, the hook and copies across the boundary; coro.c: the sandbox's coroutines). */
#ifndef ML_SANDBOX_INTERNAL_H
#define ML_SANDBOX_INTERNAL_H

#include <stdint.h>

#include <lua.h>

#include "sandbox/sandbox.h"

struct ml_rt;
struct ml_task;

#define SBX_MT "moonloop.sandbox"
#define SBX_TOKEN_MT "moonloop.sandbox.coroutine"
#define SBX_HOST_KEY "moonloop.sandbox.host"       /* the trusted functions the wrappers call */
#define SBX_CORO_KEY "moonloop.sandbox.coroutines" /* weak: coroutine -> its token */
#define SBX_BUSY_KEY "moonloop.sandbox.busy"       /* weak: coroutines waiting on the runtime */
#define ERROR_MT "moonloop.error"

#define SBX_HOOK_EVERY 10000 /* instructions between two looks at the clock */
#define SBX_MAX_NESTING 100  /* coroutines resumed (or closed) inside each other */
#define SBX_COPY_DEPTH 100
#define SBX_COPY_BUDGET 1000000 /* table entries per copy across the boundary */

enum call_mode {
  MODE_CALL, /* sb:call: copies in and out; returns true, ... | false, err, traceback */
  MODE_RAW,  /* sb:call_raw: no copies (the runtime's own use) */
  MODE_WRAP, /* a wrapped function: copies in and out; raises */
  MODE_TASK, /* the body of a task the sandbox spawned: raises */
};

/* One call into a sandbox. Lives in a userdata at index 2 of the calling thread's stack. */
struct sbx_call {
  struct ml_sandbox *sb;
  lua_State *inner;
  enum call_mode mode;
  uint64_t started_ns; /* for the wall-time limit */
  uint64_t resume_ns;  /* start of the current resume of the inner thread */
  uint64_t active_ns;  /* time spent running, for the CPU limit */
  int64_t instructions;
};

/* A coroutine created by sandboxed code; its finalizer gives back the coroutine's place. */
struct sbx_token {
  struct ml_sandbox *sb;
  int counted;
};

/* Every C function of a sandbox's environment has the sandbox as its first upvalue. */
static inline struct ml_sandbox *sbx_upsb(lua_State *L) {
  return (struct ml_sandbox *)lua_touserdata(L, lua_upvalueindex(1));
}

/* sandbox.c */
int sbx_push_host(lua_State *L, const char *name);

/* call.c: kills and errors */
const char *sbx_kill_name(enum sbx_kill why);
void sbx_where(lua_State *co, char *buf, size_t len);
void sbx_push_kill_error(lua_State *L, struct ml_sandbox *sb);
void sbx_push_cancel_error(lua_State *L, struct ml_task *t);
int sbx_cancelled(struct ml_rt *rt);
void sbx_check_memory_kill(lua_State *co, struct ml_sandbox *sb, int status);

/* call.c: calls */
void sbx_hook(lua_State *L, lua_Debug *ar);
int sbx_can_slice(lua_State *L, struct ml_sandbox *sb, struct sbx_call *c);
void sbx_abandon_wait(struct ml_rt *rt);
int sbx_close_thread(struct ml_sandbox *sb, lua_State *co);
void sbx_copy_values(lua_State *L, int sbidx, int first, int n, int out);
int sbx_call_start(lua_State *L, enum call_mode mode);
int sbx_wrapped(lua_State *L);
int sbx_task_body(lua_State *L);

/* coro.c */
struct sbx_token *sbx_own_token(lua_State *L, int idx, struct ml_sandbox *sb);
void sbx_uncount(lua_State *L, int idx, struct ml_sandbox *sb);
int sbx_token_gc(lua_State *L);
int sbco_create(lua_State *L);
int sbco_resume(lua_State *L);
int sbco_wrap(lua_State *L);
int sbco_close(lua_State *L);

#endif

/* Calls into a sandbox: each runs on a fresh coroutine with a count hook on that coroutine
 * only, while rt->active_sandbox makes the allocator charge the sandbox. The hook enforces
 * the limits and takes time slices; values crossing the boundary are copied with raw
 * access. See sandbox.c for the whole design. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <uv.h>

#include "core/paths.h"
#include "core/rt.h"
#include "core/sched.h"
#include "sandbox/internal.h"

static const char *const kill_names[] = {"", "memory", "instructions", "cpu", "wall"};

const char *sbx_kill_name(enum sbx_kill why) {
  return kill_names[why];
}

/* ---------------------------------------------------------------------------------- */
/* Kills */

/* "file.lua:12" of the innermost Lua function on co's stack that has a line, or "". */
void sbx_where(lua_State *co, char *buf, size_t len) {
  lua_Debug ar;
  buf[0] = '\0';
  for (int level = 0; level < 64 && lua_getstack(co, level, &ar); level++) {
    if (lua_getinfo(co, "Sl", &ar) && ar.currentline > 0) {
      snprintf(buf, len, "%s:%d", ar.short_src, ar.currentline);
      return;
    }
  }
}

static void format_bytes(char *buf, size_t len, int64_t n) {
  if (n >= ((int64_t)1 << 20) && n % ((int64_t)1 << 20) == 0)
    snprintf(buf, len, "%lld MiB", (long long)(n >> 20));
  else if (n >= 1024 && n % 1024 == 0)
    snprintf(buf, len, "%lld KiB", (long long)(n >> 10));
  else
    snprintf(buf, len, "%lld bytes", (long long)n);
}

static void sbx_kill(struct ml_sandbox *sb, enum sbx_kill why, const char *where) {
  if (sb->killed != SBX_ALIVE)
    return;
  sb->killed = why;
  char what[160];
  switch (why) {
  case SBX_KILL_MEMORY: {
    char b[48];
    format_bytes(b, sizeof b, sb->mem_cap);
    snprintf(what, sizeof what, "memory limit of %s exceeded", b);
    break;
  }
  case SBX_KILL_INSTRUCTIONS:
    snprintf(what, sizeof what, "instruction limit (%lld) exceeded", (long long)sb->max_instructions);
    break;
  case SBX_KILL_CPU:
    snprintf(what, sizeof what, "CPU time limit (%g s) exceeded", (double)sb->cpu_ns / 1e9);
    break;
  case SBX_KILL_WALL:
    snprintf(what, sizeof what, "wall time limit (%g s) exceeded", (double)sb->wall_ns / 1e9);
    break;
  default:
    snprintf(what, sizeof what, "stopped");
  }
  snprintf(sb->kill_msg, sizeof sb->kill_msg, "%s: killed: %s",
           where && where[0] ? where : sb->name, what);
}

/* {kind = "killed", reason =, sandbox =, message =} with the runtime's error metatable. */
void sbx_push_kill_error(lua_State *L, struct ml_sandbox *sb) {
  sched_push_error(L, "killed", sb->kill_msg);
  lua_pushstring(L, kill_names[sb->killed]);
  lua_setfield(L, -2, "reason");
  lua_pushstring(L, sb->name);
  lua_setfield(L, -2, "sandbox");
}

void sbx_push_cancel_error(lua_State *L, struct ml_task *t) {
  char msg[96];
  snprintf(msg, sizeof msg, "task #%llu was cancelled", (unsigned long long)t->id);
  sched_push_error(L, "cancelled", msg);
}

int sbx_cancelled(struct ml_rt *rt) {
  return rt->current && rt->current->cancel_requested;
}

/* A memory error inside a capped sandbox is the cap: kill the sandbox. */
void sbx_check_memory_kill(lua_State *co, struct ml_sandbox *sb, int status) {
  if (sb->killed == SBX_ALIVE && sb->mem_cap > 0 && (sb->mem_refused || status == LUA_ERRMEM)) {
    char where[256];
    sbx_where(co, where, sizeof where);
    sbx_kill(sb, SBX_KILL_MEMORY, where);
  }
}

/* Whether a function of the runtime's own library is on L's stack (looking 1000 levels
 * deep). That code was written to be interleaved with other tasks only where it waits, so a
 * time slice never interrupts it (it still counts towards the limits). */
static int runs_library_code(lua_State *L) {
  const char *dir = ml_lua_dir();
  size_t n = strlen(dir);
  lua_Debug ar;
  for (int level = 0; level < 1000 && lua_getstack(L, level, &ar); level++) {
    if (lua_getinfo(L, "S", &ar) && ar.source[0] == '@' && strncmp(ar.source + 1, dir, n) == 0)
      return 1;
  }
  return 0;
}

/* Whether the hook may yield thread L for a time slice: only the call's own thread and
 * coroutines this sandbox created have a resumer that knows what such a yield means. */
int sbx_can_slice(lua_State *L, struct ml_sandbox *sb, struct sbx_call *c) {
  int ours = L == c->inner;
  if (!ours) {
    lua_pushthread(L);
    ours = sbx_own_token(L, -1, sb) != NULL;
    lua_pop(L, 1);
  }
  return ours && !runs_library_code(L);
}

/* A runtime wait cannot be passed up (the resumer cannot yield): undo it so nothing wakes
 * a task that no longer waits. */
void sbx_abandon_wait(struct ml_rt *rt) {
  struct ml_task *t = rt->current;
  if (t && t->state == TASK_WAITING) {
    sched_cleanup_fn cleanup = t->wait_cleanup;
    void *data = t->wait_data;
    t->wait_cleanup = NULL;
    t->wait_data = NULL;
    t->wait_what = NULL;
    t->state = TASK_RUNNING;
    if (cleanup)
      cleanup(t, data);
  }
}

/* Run the pending to-be-closed variables of co, with nesting counted (the 5.4.4 C stack
 * cannot take deeply nested closes). Returns lua_resetthread's status, or -1 when refused. */
int sbx_close_thread(struct ml_sandbox *sb, lua_State *co) {
  if (sb->close_depth >= SBX_MAX_NESTING)
    return -1;
  sb->close_depth++;
  int st = lua_resetthread(co);
  sb->close_depth--;
  return st;
}

/* ---------------------------------------------------------------------------------- */
/* The count hook */

void sbx_hook(lua_State *L, lua_Debug *ar) {
  struct ml_rt *rt = rt_from_lua(L);
  struct ml_sandbox *sb = rt->active_sandbox;
  if (sb == NULL || sb->call == NULL) {
    lua_pushthread(L);
    int sandboxed = sbx_own_token(L, -1, NULL) != NULL;
    lua_pop(L, 1);
    if (sandboxed) /* a sandbox's coroutine resumed by trusted code: refuse to run it */
      luaL_error(L, "sandboxed code cannot run outside its sandbox");
    /* A thread created while a sandbox ran (a task spawned by trusted code it called) now
     * runs outside any call: it is not the sandbox's, so stop watching it. */
    lua_sethook(L, NULL, 0, 0);
    return;
  }
  struct sbx_call *c = sb->call;
  if (sb->killed == SBX_ALIVE) {
    c->instructions += SBX_HOOK_EVERY;
    sb->instructions += SBX_HOOK_EVERY;
    uint64_t now = uv_hrtime();
    enum sbx_kill why = SBX_ALIVE;
    if (sb->mem_refused && sb->mem_cap > 0)
      why = SBX_KILL_MEMORY; /* a memory error was swallowed on the way up */
    else if (sb->max_instructions > 0 && c->instructions > sb->max_instructions)
      why = SBX_KILL_INSTRUCTIONS;
    else if (sb->cpu_ns && c->active_ns + (now - c->resume_ns) > sb->cpu_ns)
      why = SBX_KILL_CPU;
    else if (sb->wall_ns && now - c->started_ns > sb->wall_ns)
      why = SBX_KILL_WALL;
    else if (sb->slice_ns && now - c->resume_ns > sb->slice_ns && lua_isyieldable(L) &&
             sbx_can_slice(L, sb, c)) {
      sb->slice_thread = L;
      lua_yield(L, 0);
      return;
    }
    if (why == SBX_ALIVE)
      return;
    char where[256] = "";
    if (lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
      snprintf(where, sizeof where, "%s:%d", ar->short_src, ar->currentline);
    sbx_kill(sb, why, where);
  }
  /* From now on every instruction of this thread raises again, so a pcall that is not the
   * sandbox's own (in trusted code it called) cannot keep it running. */
  lua_sethook(L, sbx_hook, LUA_MASKCOUNT, 1);
  sbx_push_kill_error(L, sb);
  lua_error(L);
}

/* ---------------------------------------------------------------------------------- */
/* Copies across the boundary */

struct copy {
  lua_State *L;
  int seen;  /* original -> copy */
  int sbidx; /* the sandbox userdata (for wrapping functions on the way out) */
  int out;   /* 1: leaving the sandbox (strip metatables, wrap functions) */
  long budget;
};

int sbx_wrapped(lua_State *L);

/* A metatable registered by the host (luaL_newmetatable: registry[__name] == mt), such as
 * json arrays and error objects. Those are locked and safe to keep. */
static int is_host_metatable(lua_State *L, int mt) {
  mt = lua_absindex(L, mt);
  lua_pushliteral(L, "__name");
  if (lua_rawget(L, mt) != LUA_TSTRING) {
    lua_pop(L, 1);
    return 0;
  }
  lua_rawget(L, LUA_REGISTRYINDEX);
  int host = lua_rawequal(L, -1, mt);
  lua_pop(L, 1);
  return host;
}

static void copy_value(struct copy *cp, int idx, int depth) {
  lua_State *L = cp->L;
  idx = lua_absindex(L, idx);
  int type = lua_type(L, idx);
  if (type == LUA_TFUNCTION && cp->out) {
    lua_pushvalue(L, idx);
    if (lua_rawget(L, cp->seen) != LUA_TNIL)
      return;
    lua_pop(L, 1);
    if (lua_tocfunction(L, idx) == sbx_wrapped) { /* already runs in a sandbox */
      lua_pushvalue(L, idx);
      return;
    }
    lua_pushvalue(L, cp->sbidx);
    lua_pushvalue(L, idx);
    lua_pushcclosure(L, sbx_wrapped, 2);
    lua_pushvalue(L, idx);
    lua_pushvalue(L, -2);
    lua_rawset(L, cp->seen);
    return;
  }
  if (type != LUA_TTABLE) {
    lua_pushvalue(L, idx);
    return;
  }
  lua_pushvalue(L, idx);
  if (lua_rawget(L, cp->seen) != LUA_TNIL)
    return;
  lua_pop(L, 1);
  if (depth >= SBX_COPY_DEPTH)
    luaL_error(L, "a value crossing the sandbox boundary is nested more than %d levels deep",
               SBX_COPY_DEPTH);
  luaL_checkstack(L, 8, "copying a value across the sandbox boundary");
  lua_createtable(L, (int)lua_rawlen(L, idx), 0);
  int copy = lua_gettop(L);
  lua_pushvalue(L, idx);
  lua_pushvalue(L, copy);
  lua_rawset(L, cp->seen);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (--cp->budget < 0)
      luaL_error(L, "a value crossing the sandbox boundary has more than %d entries",
                 SBX_COPY_BUDGET);
    copy_value(cp, -2, depth + 1); /* key */
    copy_value(cp, -2, depth + 1); /* value */
    lua_rawset(L, copy);
    lua_pop(L, 1);
  }
  if (lua_getmetatable(L, idx)) {
    int mt = lua_gettop(L);
    if (is_host_metatable(L, mt)) {
      lua_setmetatable(L, copy);
    } else if (!cp->out) {
      copy_value(cp, mt, depth + 1); /* the host's own metatable: a private copy */
      lua_setmetatable(L, copy);
      lua_pop(L, 1);
    } else {
      lua_pop(L, 1); /* a sandbox metamethod must never run in the host */
    }
  }
}

/* Replace the n values from index first by their copies. */
void sbx_copy_values(lua_State *L, int sbidx, int first, int n, int out) {
  if (n <= 0)
    return;
  sbidx = lua_absindex(L, sbidx);
  lua_newtable(L);
  struct copy cp = {L, lua_gettop(L), sbidx, out, SBX_COPY_BUDGET};
  for (int i = 0; i < n; i++) {
    copy_value(&cp, first + i, 0);
    lua_replace(L, first + i);
  }
  lua_pop(L, 1);
}

/* Replace the error object at the top by one the host can print without running sandbox
 * code: strings, numbers and booleans as they are; a table becomes a fresh error object with
 * its string, number and boolean fields. */
static void clean_error(lua_State *L) {
  int e = lua_gettop(L);
  int type = lua_type(L, e);
  if (type == LUA_TSTRING || type == LUA_TNUMBER || type == LUA_TBOOLEAN || type == LUA_TNIL)
    return;
  if (type != LUA_TTABLE) {
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, e));
    lua_replace(L, e);
    return;
  }
  luaL_checkstack(L, 6, "error object");
  lua_createtable(L, 0, 8);
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, e)) {
    int kt = lua_type(L, -2), vt = lua_type(L, -1);
    if (n < 64 && kt == LUA_TSTRING &&
        (vt == LUA_TSTRING || vt == LUA_TNUMBER || vt == LUA_TBOOLEAN)) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, e + 1);
      n++;
    } else {
      lua_pop(L, 1);
    }
  }
  lua_pushliteral(L, "message");
  if (lua_rawget(L, e + 1) != LUA_TSTRING) {
    lua_pushliteral(L, "kind");
    int has_kind = lua_rawget(L, e + 1) == LUA_TSTRING;
    lua_pop(L, 1);
    if (!has_kind) {
      lua_pushliteral(L, "(error object is a table without a message)");
      lua_setfield(L, e + 1, "message");
    }
  }
  lua_pop(L, 1);
  luaL_setmetatable(L, ERROR_MT);
  lua_replace(L, e);
}

/* ---------------------------------------------------------------------------------- */
/* Calls */

static int call_step(lua_State *L, int nargs);

/* What running inside a call replaces: the runtime's active sandbox and the sandbox's
 * current call. call_enter makes c current (charging memory and time to its sandbox);
 * call_leave puts back what was there. */
struct call_scope {
  struct ml_sandbox *active;
  struct sbx_call *call;
};

static struct call_scope call_enter(struct sbx_call *c) {
  struct ml_sandbox *sb = c->sb;
  struct call_scope saved = {sb->rt->active_sandbox, sb->call};
  sb->rt->active_sandbox = sb;
  sb->call = c;
  c->resume_ns = uv_hrtime();
  return saved;
}

static void call_leave(struct sbx_call *c, struct call_scope saved) {
  c->sb->call = saved.call;
  c->sb->rt->active_sandbox = saved.active;
}

static int call_resume(lua_State *L, struct sbx_call *c, int nargs, int *nres) {
  struct call_scope saved = call_enter(c);
  int status = lua_resume(c->inner, L, nargs, nres);
  c->active_ns += uv_hrtime() - c->resume_ns;
  call_leave(c, saved);
  return status;
}

/* Run the to-be-closed variables of a call that ends early, charged to the sandbox. */
static void call_close_inner(struct sbx_call *c) {
  struct call_scope saved = call_enter(c);
  sbx_close_thread(c->sb, c->inner);
  call_leave(c, saved);
}

static int call_finish(lua_State *L, struct sbx_call *c, int status, int nres) {
  struct ml_sandbox *sb = c->sb;
  struct ml_rt *rt = sb->rt;
  lua_State *co = c->inner;
  if (status == LUA_OK && sb->killed == SBX_ALIVE && !(sb->mem_refused && sb->mem_cap > 0)) {
    lua_settop(L, 2);
    luaL_checkstack(L, nres + 2, "too many results from a sandboxed function");
    int first = 3;
    if (c->mode == MODE_CALL || c->mode == MODE_RAW) {
      lua_pushboolean(L, 1);
      first = 4;
    }
    lua_xmove(co, L, nres);
    if (c->mode == MODE_CALL || c->mode == MODE_WRAP)
      sbx_copy_values(L, 1, first, nres, 1);
    return lua_gettop(L) - 2;
  }
  luaL_checkstack(L, 4, "sandbox error");
  lua_settop(L, 2);
  if (status == LUA_OK) {
    lua_pop(co, nres);
    lua_pushnil(L);
  } else {
    lua_xmove(co, L, 1); /* the error object; the thread's stack is still intact */
  }
  sbx_check_memory_kill(co, sb, status);
  int with_trace = c->mode == MODE_CALL || c->mode == MODE_RAW;
  if (with_trace)
    luaL_traceback(L, co, NULL, 0);
  call_close_inner(c);
  if (sbx_cancelled(rt)) {
    sbx_push_cancel_error(L, rt->current);
    return lua_error(L);
  }
  if (with_trace)
    lua_insert(L, 3); /* [sb call trace err] */
  if (sb->killed != SBX_ALIVE) {
    lua_pop(L, 1);
    sbx_push_kill_error(L, sb);
  } else {
    clean_error(L);
  }
  if (!with_trace)
    return lua_error(L);
  lua_pushboolean(L, 0);
  lua_insert(L, 3);
  lua_rotate(L, 4, 1); /* [sb call false err trace] */
  return 3;
}

static int call_after_yield(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  struct sbx_call *c = lua_touserdata(L, 2);
  int n = lua_gettop(L) - 2;
  if (!lua_checkstack(c->inner, n + 1))
    return luaL_error(L, "too many values to resume a sandboxed call with");
  lua_xmove(L, c->inner, n);
  return call_step(L, n);
}

static int call_after_slice(lua_State *L, int status, lua_KContext ctx) {
  (void)ctx;
  struct sbx_call *c = lua_touserdata(L, 2);
  if (status != LUA_OK && status != LUA_YIELD) {
    /* The pause raised (the task was cancelled): stop the sandboxed code where it is. */
    call_close_inner(c);
    return lua_error(L);
  }
  lua_settop(L, 2);
  return call_step(L, 0);
}

static int call_step(lua_State *L, int nargs) {
  struct sbx_call *c = lua_touserdata(L, 2);
  struct ml_sandbox *sb = c->sb;
  struct ml_rt *rt = sb->rt;
  for (;;) {
    int nres = 0;
    int status = call_resume(L, c, nargs, &nres);
    nargs = 0;
    if (status != LUA_YIELD)
      return call_finish(L, c, status, nres);
    if (nres == 0 && sb->slice_thread == c->inner) {
      sb->slice_thread = NULL;
      if (rt->current != NULL && lua_isyieldable(L)) { /* let the others run: task.sleep(0) */
        sbx_push_host(L, "task.sleep");
        lua_pushinteger(L, 0);
        int st = lua_pcallk(L, 1, 0, 0, 0, call_after_slice);
        return call_after_slice(L, st, 0);
      }
      continue;
    }
    if (!lua_isyieldable(L) || !lua_checkstack(L, nres + 1)) {
      lua_pop(c->inner, nres);
      sbx_abandon_wait(rt);
      lua_pushliteral(c->inner, "sandboxed code waited on the runtime (llm.chat, task.sleep, "
                                "...) or yielded, but its caller cannot yield here (a "
                                "metamethod, a sort comparator or a C function)");
      return call_finish(L, c, LUA_ERRRUN, 1);
    }
    /* A runtime wait, or a plain coroutine.yield at the top of the call: pass it up. */
    lua_xmove(c->inner, L, nres);
    return lua_yieldk(L, nres, 0, call_after_yield);
  }
}

/* Stack: [sandbox, fn, args...]. Runs fn(args...) on a fresh hooked thread. */
int sbx_call_start(lua_State *L, enum call_mode mode) {
  struct ml_sandbox *sb = lua_touserdata(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  int nargs = lua_gettop(L) - 2;
  if (sb->killed != SBX_ALIVE) { /* (sb stays on the stack: it may have no other anchor) */
    if (mode == MODE_CALL || mode == MODE_RAW) {
      lua_pushboolean(L, 0);
      sbx_push_kill_error(L, sb);
      return 2;
    }
    sbx_push_kill_error(L, sb);
    return lua_error(L);
  }
  luaL_checkstack(L, 6, "sandbox call");
  if (mode == MODE_CALL || mode == MODE_WRAP)
    sbx_copy_values(L, 1, 3, nargs, 0);
  lua_State *co = lua_newthread(L);
  lua_sethook(co, sbx_hook, LUA_MASKCOUNT, SBX_HOOK_EVERY);
  struct sbx_call *c = lua_newuserdatauv(L, sizeof *c, 1);
  memset(c, 0, sizeof *c);
  c->sb = sb;
  c->inner = co;
  c->mode = mode;
  c->started_ns = uv_hrtime();
  lua_insert(L, -2);
  lua_setiuservalue(L, -2, 1); /* the call anchors its thread */
  lua_insert(L, 2);            /* [sb call fn args...] */
  if (!lua_checkstack(co, nargs + 1))
    return luaL_error(L, "too many arguments to a sandboxed function");
  lua_xmove(L, co, nargs + 1);
  sb->calls++;
  return call_step(L, nargs);
}

/* A function that left the sandbox: calling it runs it in the sandbox again. */
int sbx_wrapped(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_insert(L, 2);
  return sbx_call_start(L, MODE_WRAP);
}

int sbx_task_body(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  return sbx_call_start(L, MODE_TASK);
}


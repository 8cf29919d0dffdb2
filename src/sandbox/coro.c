/* The sandbox's coroutine library: create/wrap/resume/close with a cap on live coroutines
 * and on nesting (Lua 5.4.4 overflows the C stack on deeply nested closes), runtime waits
 * passed up to the task, and time slices passed up to the call. */
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "core/rt.h"
#include "core/sched.h"
#include "sandbox/internal.h"

/* ---------------------------------------------------------------------------------- */
/* Coroutine bookkeeping (registry tables keyed by thread) */

/* The token of the thread at idx if this sandbox created it, else NULL. */
struct sbx_token *sbx_own_token(lua_State *L, int idx, struct ml_sandbox *sb) {
  idx = lua_absindex(L, idx);
  lua_getfield(L, LUA_REGISTRYINDEX, SBX_CORO_KEY);
  lua_pushvalue(L, idx);
  lua_rawget(L, -2);
  struct sbx_token *tok = lua_touserdata(L, -1);
  lua_pop(L, 2);
  return tok && (sb == NULL || tok->sb == sb) ? tok : NULL;
}

void sbx_uncount(lua_State *L, int idx, struct ml_sandbox *sb) {
  struct sbx_token *tok = sbx_own_token(L, idx, sb);
  if (tok && tok->counted) {
    tok->counted = 0;
    sb->live_coroutines--;
  }
}

static void busy_set(lua_State *L, int idx, int on) {
  idx = lua_absindex(L, idx);
  lua_getfield(L, LUA_REGISTRYINDEX, SBX_BUSY_KEY);
  lua_pushvalue(L, idx);
  if (on)
    lua_pushboolean(L, 1);
  else
    lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

static int busy_get(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_getfield(L, LUA_REGISTRYINDEX, SBX_BUSY_KEY);
  lua_pushvalue(L, idx);
  int busy = lua_rawget(L, -2) != LUA_TNIL;
  lua_pop(L, 2);
  return busy;
}

int sbx_token_gc(lua_State *L) {
  struct sbx_token *tok = lua_touserdata(L, 1);
  if (tok->counted) {
    tok->counted = 0;
    tok->sb->live_coroutines--;
  }
  return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Coroutines: create/wrap/resume/close with a cap on live coroutines and on nesting, runtime
 * waits passed up to the task, and time slices passed up to the call. */

static int co_step(lua_State *L, int narg, int wrap);

static int co_k_wait(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  int wrap = (int)ctx;
  int coidx = wrap ? lua_upvalueindex(2) : 1;
  lua_State *co = lua_tothread(L, coidx);
  busy_set(L, coidx, 0);
  int n = lua_gettop(L) - (wrap ? 0 : 1);
  if (!lua_checkstack(co, n + 1))
    return luaL_error(L, "too many values to resume a coroutine with");
  lua_xmove(L, co, n);
  return co_step(L, n, wrap);
}

static int co_k_slice(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  int wrap = (int)ctx;
  lua_settop(L, wrap ? 0 : 1);
  return co_step(L, 0, wrap);
}

static int co_step(lua_State *L, int narg, int wrap) {
  struct ml_sandbox *sb = sbx_upsb(L);
  struct ml_rt *rt = sb->rt;
  int coidx = wrap ? lua_upvalueindex(2) : 1;
  lua_State *co = lua_tothread(L, coidx);
  for (;;) {
    if (sb->resume_depth >= SBX_MAX_NESTING) {
      lua_pop(co, narg);
      if (wrap)
        return luaL_error(L, "coroutines nested more than %d levels deep (a sandbox limit)",
                          SBX_MAX_NESTING);
      lua_pushboolean(L, 0);
      lua_pushfstring(L, "coroutines nested more than %d levels deep (a sandbox limit)",
                      SBX_MAX_NESTING);
      return 2;
    }
    sb->resume_depth++;
    int nres = 0;
    int status = lua_resume(co, L, narg, &nres);
    sb->resume_depth--;
    narg = 0;
    if (status == LUA_YIELD) {
      if (nres == 0 && sb->slice_thread == co) { /* a time slice on its way to the call */
        if (sb->call && lua_isyieldable(L) && sbx_can_slice(L, sb, sb->call)) {
          sb->slice_thread = L;
          return lua_yieldk(L, 0, wrap, co_k_slice);
        }
        sb->slice_thread = NULL;
        continue;
      }
      if (rt->current && rt->current->state == TASK_WAITING) { /* a runtime wait */
        if (!lua_isyieldable(L) || !lua_checkstack(L, nres + 1)) {
          lua_pop(co, nres);
          sbx_abandon_wait(rt);
          sbx_close_thread(sb, co);
          sbx_uncount(L, coidx, sb);
          return luaL_error(L, "a coroutine waited on the runtime (llm.chat, task.sleep, ...) "
                               "but was resumed from a context that cannot yield");
        }
        busy_set(L, coidx, 1);
        lua_xmove(co, L, nres);
        return lua_yieldk(L, nres, wrap, co_k_wait);
      }
      luaL_checkstack(L, nres + 1, "too many results to resume");
      if (!wrap)
        lua_pushboolean(L, 1);
      lua_xmove(co, L, nres);
      return nres + !wrap;
    }
    sbx_uncount(L, coidx, sb);
    if (status == LUA_OK) {
      luaL_checkstack(L, nres + 1, "too many results to resume");
      if (!wrap)
        lua_pushboolean(L, 1);
      lua_xmove(co, L, nres);
      return nres + !wrap;
    }
    lua_xmove(co, L, 1); /* the error object */
    sbx_check_memory_kill(co, sb, status);
    if (sb->killed != SBX_ALIVE || sbx_cancelled(rt)) {
      sbx_close_thread(sb, co);
      if (sb->killed != SBX_ALIVE)
        sbx_push_kill_error(L, sb);
      else
        sbx_push_cancel_error(L, rt->current);
      return lua_error(L);
    }
    if (wrap) {
      sbx_close_thread(sb, co);
      if (lua_type(L, -1) == LUA_TSTRING) { /* where the wrapped function was called */
        luaL_where(L, 1);
        lua_insert(L, -2);
        lua_concat(L, 2);
      }
      return lua_error(L);
    }
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
}

/* The status of co as coroutine.status names it: 0 suspended, 1 running, 2 normal, 3 dead. */
static int co_status(lua_State *L, lua_State *co) {
  if (L == co)
    return 1;
  switch (lua_status(co)) {
  case LUA_YIELD:
    return 0;
  case LUA_OK: {
    lua_Debug ar;
    if (lua_getstack(co, 0, &ar))
      return 2;
    return lua_gettop(co) == 0 ? 3 : 0;
  }
  default:
    return 3;
  }
}

/* For resume and wrap: raises for coroutines this sandbox may not touch; returns 0 when co
 * can be resumed, else the status (1, 2, 3). */
static int co_check(lua_State *L, int idx, struct ml_sandbox *sb) {
  lua_State *co = lua_tothread(L, idx);
  int st = co_status(L, co);
  if (st == 1)
    return 1;
  if (sbx_own_token(L, idx, sb) == NULL)
    luaL_error(L, "this coroutine was not created by sandboxed code; it cannot be resumed or "
                  "closed here");
  if (busy_get(L, idx))
    luaL_error(L, "cannot resume a coroutine that is waiting on the runtime (llm.chat, "
                  "task.sleep, ...)");
  return st;
}

static const char *co_status_error(int st) {
  return st == 3 ? "cannot resume dead coroutine" : "cannot resume non-suspended coroutine";
}

/* Push a new coroutine running the function at fidx. */
static lua_State *new_coroutine(lua_State *L, struct ml_sandbox *sb, int fidx) {
  if (sb->max_coroutines > 0 && sb->live_coroutines >= sb->max_coroutines) {
    lua_gc(L, LUA_GCCOLLECT); /* abandoned coroutines give their place back when collected */
    if (sb->live_coroutines >= sb->max_coroutines)
      luaL_error(L, "coroutine limit (%d live coroutines per sandbox) exceeded",
                 sb->max_coroutines);
  }
  luaL_checkstack(L, 6, "coroutine");
  lua_State *co = lua_newthread(L);
  lua_sethook(co, sbx_hook, LUA_MASKCOUNT, SBX_HOOK_EVERY);
  lua_pushvalue(L, fidx);
  lua_xmove(L, co, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, SBX_CORO_KEY);
  lua_pushvalue(L, -2);
  struct sbx_token *tok = lua_newuserdatauv(L, sizeof *tok, 1);
  tok->sb = sb;
  tok->counted = 1;
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_setiuservalue(L, -2, 1); /* the token keeps its sandbox alive */
  luaL_setmetatable(L, SBX_TOKEN_MT);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  sb->live_coroutines++;
  return co;
}

int sbco_create(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  new_coroutine(L, sbx_upsb(L), 1);
  return 1;
}

int sbco_resume(lua_State *L) {
  struct ml_sandbox *sb = sbx_upsb(L);
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co != NULL, 1, "coroutine");
  int st = co_check(L, 1, sb);
  if (st != 0) {
    lua_pushboolean(L, 0);
    lua_pushstring(L, co_status_error(st));
    return 2;
  }
  int narg = lua_gettop(L) - 1;
  if (!lua_checkstack(co, narg + 1))
    return luaL_error(L, "too many arguments to resume");
  lua_xmove(L, co, narg);
  return co_step(L, narg, 0);
}

static int sbco_wrapped(lua_State *L) {
  struct ml_sandbox *sb = sbx_upsb(L);
  lua_State *co = lua_tothread(L, lua_upvalueindex(2));
  int st = co_check(L, lua_upvalueindex(2), sb);
  if (st != 0)
    return luaL_error(L, "%s", co_status_error(st));
  int narg = lua_gettop(L);
  if (!lua_checkstack(co, narg + 1))
    return luaL_error(L, "too many arguments to resume");
  lua_xmove(L, co, narg);
  return co_step(L, narg, 1);
}

int sbco_wrap(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  new_coroutine(L, sbx_upsb(L), 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, -2);
  lua_pushcclosure(L, sbco_wrapped, 2);
  return 1;
}

int sbco_close(lua_State *L) {
  struct ml_sandbox *sb = sbx_upsb(L);
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co != NULL, 1, "coroutine");
  int st = co_status(L, co);
  if (st == 1 || st == 2)
    return luaL_error(L, "cannot close a %s coroutine", st == 1 ? "running" : "normal");
  if (sbx_own_token(L, 1, sb) == NULL)
    return luaL_error(L, "this coroutine was not created by sandboxed code; it cannot be "
                         "resumed or closed here");
  if (busy_get(L, 1))
    return luaL_error(L, "cannot close a coroutine that is waiting on the runtime (llm.chat, "
                         "task.sleep, ...)");
  int status = sbx_close_thread(sb, co);
  if (status < 0)
    return luaL_error(L, "coroutine.close nested more than %d levels deep (a sandbox limit)",
                      SBX_MAX_NESTING);
  sbx_uncount(L, 1, sb);
  if (sb->killed != SBX_ALIVE) {
    sbx_push_kill_error(L, sb);
    return lua_error(L);
  }
  if (status == LUA_OK) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushboolean(L, 0);
  lua_xmove(co, L, 1);
  return 2;
}


/* The sandbox (SPEC section 7, runtime-anchors 7.6): where recipes and agent-written Lua run.
 *
 * One lua_State serves the whole process. A sandbox is a userdata that owns a private
 * environment built from copies of the safe libraries, its limits and its counters. Every
 * call into it (sb:call, a wrapped function, a task it spawned) runs on a fresh coroutine,
 * the call's "inner" thread, with a count hook installed on that thread alone; trusted code
 * never runs a hook. While the inner thread is resumed, rt->active_sandbox points at the
 * sandbox and the runtime's allocator charges it (rt.c).
 *
 * Kills: the hook counts instructions and measures the time the call has spent running;
 * past a limit it marks the sandbox killed and raises. The sandbox's pcall, xpcall and
 * coroutine functions re-raise once their sandbox is killed, and the hook then fires on every
 * instruction of that thread, so no Lua code can swallow a kill. A killed sandbox refuses
 * every later call.
 *
 * Time slices: past its slice (10 ms) the hook yields the running sandbox coroutine; the
 * yield travels up through the sandbox's coroutine wrappers to the call, which pauses with
 * task.sleep(0) so other tasks and I/O progress, then resumes where it was.
 *
 * Runtime waits (llm.chat, task.sleep, join) yield the scheduler's sentinel; a call passes any
 * yield of its inner thread up unchanged and hands the resume values back down, and the
 * sandbox's coroutine wrappers recognise a wait by the task's state (sched_wait marks the task
 * WAITING before it yields), exactly as the trusted wrappers in sched.c do by the sentinel.
 *
 * Values crossing the boundary are copied with raw access only: arguments going in (so a
 * sandbox cannot change the host's tables), results and errors coming out (so the host never
 * runs a sandbox's metamethod outside the sandbox). Functions coming out are wrapped so that
 * calling them runs them in the sandbox again.
 *
 * This file builds environments and holds the wrapped base functions, require and the Lua
 * API (moonloop.sandbox.core); call.c runs calls (hook, limits, copies); coro.c is the
 * sandbox's coroutine library.
 */
#include "sandbox/sandbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "core/rt.h"
#include "core/sched.h"
#include "llm/config.h"
#include "llm/llm.h"
#include "sandbox/internal.h"

#define DEFAULT_MEMORY ((int64_t)64 << 20)
#define DEFAULT_INSTRUCTIONS ((int64_t)1000000000)
#define DEFAULT_CPU_MS 30000
#define DEFAULT_WALL_MS 0
#define DEFAULT_SLICE_MS 10
#define DEFAULT_COROUTINES 256

/* Modules every sandbox may require, as read-only views of the trusted library. A sandbox
 * can be granted more with sandbox.new{modules = {...}} (moonloop run grants a plain script
 * moonloop.compare). */
static const char *const allowed_modules[] = {
    "moonloop.asi",  "moonloop.accept", "moonloop.rubric", "moonloop.verify",
    "moonloop.edit", "moonloop.strategies.common", NULL};

/* llm.chat options sandboxed code may use: none of them reaches the wire as it is. */
static const char *const chat_options[] = {
    "model", "messages", "prompt", "system", "temperature", "max_tokens", "stop", "json", "schema",
    "n", "stream", "timeout_ms", "cache", "tags", "seed", "top_p", "attempts", NULL};

/* Role names every config resolves (the default provider's default model plays them). */
static const char *const role_names[] = {"default", "strong", "weak", "judge", "challenger",
                                         "checker", "analyst", NULL};

static int in_list(const char *const *list, const char *s) {
  for (int i = 0; list[i]; i++)
    if (strcmp(list[i], s) == 0)
      return 1;
  return 0;
}

/* Push a field of the host table (trusted functions captured by sbx_new). */
int sbx_push_host(lua_State *L, const char *name) {
  lua_getfield(L, LUA_REGISTRYINDEX, SBX_HOST_KEY);
  int t = lua_getfield(L, -1, name);
  lua_remove(L, -2);
  return t;
}

/* ---------------------------------------------------------------------------------- */
/* Base functions of the sandbox */

static int finish_pcall(lua_State *L, int status, lua_KContext extra) {
  if (status != LUA_OK && status != LUA_YIELD) {
    struct ml_sandbox *sb = sbx_upsb(L);
    sbx_check_memory_kill(L, sb, status);
    if (sb->killed != SBX_ALIVE) {
      sbx_push_kill_error(L, sb);
      return lua_error(L);
    }
    if (sbx_cancelled(sb->rt)) {
      sbx_push_cancel_error(L, sb->rt->current);
      return lua_error(L);
    }
    lua_pushboolean(L, 0);
    lua_pushvalue(L, -2);
    return 2;
  }
  return lua_gettop(L) - (int)extra;
}

/* The scheduler's pcall/xpcall, finished by the sandbox's own rule (kills re-raised). */
static int sbx_pcall(lua_State *L) { return sched_pcall_k(L, finish_pcall); }
static int sbx_xpcall(lua_State *L) { return sched_xpcall_k(L, finish_pcall); }

/* setmetatable without finalizers: __gc runs at arbitrary points, cannot yield and could
 * resurrect objects, so a metatable that has one is refused. */
static int sbx_setmetatable(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int t = lua_type(L, 2);
  luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
  if (t == LUA_TTABLE) {
    lua_pushliteral(L, "__gc");
    if (lua_rawget(L, 2) != LUA_TNIL)
      return luaL_error(L, "setmetatable: a metatable with __gc is not allowed in the sandbox");
    lua_pop(L, 1);
  }
  if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
    return luaL_error(L, "cannot change a protected metatable");
  lua_settop(L, 2);
  lua_setmetatable(L, 1);
  return 1;
}

/* load(s [, chunkname [, mode [, env]]]): text only, from a string only, and the sandbox's
 * environment unless another is given. */
static int sbx_load(lua_State *L) {
  if (lua_type(L, 1) != LUA_TSTRING)
    return luaL_error(L, "load: the sandbox loads source text from a string only (got a %s)",
                      luaL_typename(L, 1));
  size_t len;
  const char *s = lua_tolstring(L, 1, &len);
  const char *chunkname = luaL_optstring(L, 2, s);
  int has_env = !lua_isnone(L, 4);
  if (luaL_loadbufferx(L, s, len, chunkname, "t") != LUA_OK) {
    luaL_pushfail(L);
    lua_insert(L, -2);
    return 2;
  }
  if (has_env)
    lua_pushvalue(L, 4);
  else
    lua_getiuservalue(L, lua_upvalueindex(1), 1);
  if (!lua_setupvalue(L, -2, 1))
    lua_pop(L, 1);
  return 1;
}

static int sbx_collectgarbage(lua_State *L) {
  const char *opt = luaL_optstring(L, 1, "collect");
  if (strcmp(opt, "count") != 0)
    return luaL_error(L, "collectgarbage(\"%s\") is not available in the sandbox; only "
                         "collectgarbage(\"count\") is", opt);
  struct ml_sandbox *sb = sbx_upsb(L);
  lua_pushnumber(L, (lua_Number)(sb->mem_used > 0 ? sb->mem_used : 0) / 1024.0);
  return 1;
}

/* ---------------------------------------------------------------------------------- */
/* Read-only views of the trusted library */

static void push_proxy(lua_State *L, int target, int cache, const char *name);

static int proxy_index(lua_State *L) {
  lua_settop(L, 2);
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  if (lua_type(L, -1) == LUA_TTABLE) {
    const char *base = lua_tostring(L, lua_upvalueindex(3));
    if (lua_type(L, 2) == LUA_TSTRING)
      lua_pushfstring(L, "%s.%s", base, lua_tostring(L, 2));
    else
      lua_pushstring(L, base);
    push_proxy(L, 3, lua_upvalueindex(2), lua_tostring(L, -1));
  }
  return 1;
}

static int proxy_newindex(lua_State *L) {
  return luaL_error(L, "%s is read-only in the sandbox", lua_tostring(L, lua_upvalueindex(1)));
}

static int proxy_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lua_rawlen(L, lua_upvalueindex(1)));
  return 1;
}

static int proxy_next(lua_State *L) {
  lua_settop(L, 2);
  if (!lua_next(L, lua_upvalueindex(1)))
    return 0;
  if (lua_type(L, -1) == LUA_TTABLE) {
    const char *base = lua_tostring(L, lua_upvalueindex(3));
    push_proxy(L, -1, lua_upvalueindex(2), base);
    lua_replace(L, -2);
  }
  return 2;
}

static int proxy_pairs(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushvalue(L, lua_upvalueindex(3));
  lua_pushcclosure(L, proxy_next, 3);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

/* Push the sandbox's read-only view of the table at target (one per table and sandbox, in
 * cache). Reads go to the table, nested tables come back as views, writes raise. */
static void push_proxy(lua_State *L, int target, int cache, const char *name) {
  target = lua_absindex(L, target);
  cache = lua_absindex(L, cache);
  luaL_checkstack(L, 8, "read-only view");
  lua_pushvalue(L, target);
  if (lua_rawget(L, cache) != LUA_TNIL)
    return;
  lua_pop(L, 1);
  lua_createtable(L, 0, 0);
  lua_createtable(L, 0, 5);
  lua_pushvalue(L, target);
  lua_pushvalue(L, cache);
  lua_pushstring(L, name);
  lua_pushcclosure(L, proxy_index, 3);
  lua_setfield(L, -2, "__index");
  lua_pushstring(L, name);
  lua_pushcclosure(L, proxy_newindex, 1);
  lua_setfield(L, -2, "__newindex");
  lua_pushvalue(L, target);
  lua_pushcclosure(L, proxy_len, 1);
  lua_setfield(L, -2, "__len");
  lua_pushvalue(L, target);
  lua_pushvalue(L, cache);
  lua_pushstring(L, name);
  lua_pushcclosure(L, proxy_pairs, 3);
  lua_setfield(L, -2, "__pairs");
  lua_pushliteral(L, "read-only");
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, target);
  lua_pushvalue(L, -2);
  lua_rawset(L, cache);
}

/* require(name): the sandbox's own libraries, or a read-only view of an allow-listed module
 * of the trusted library. Nothing is searched on disk. */
static int sbx_require(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  lua_settop(L, 1);
  lua_getiuservalue(L, lua_upvalueindex(1), 2); /* 2: private table */
  lua_getfield(L, 2, "mods");                   /* 3 */
  if (lua_getfield(L, 3, name) != LUA_TNIL)
    return 1;
  lua_pop(L, 1);
  lua_getfield(L, 2, "granted");
  int granted = lua_istable(L, -1) && lua_getfield(L, -1, name) == LUA_TBOOLEAN;
  lua_settop(L, 3);
  if (!granted && !in_list(allowed_modules, name)) {
    char list[512] = "";
    for (int i = 0; allowed_modules[i]; i++) {
      size_t n = strlen(list);
      snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", allowed_modules[i]);
    }
    return luaL_error(L, "require: module '%s' is not available in the sandbox (available: "
                         "json, text, log, llm, task, string, table, math, utf8, os, "
                         "coroutine, moonloop.task, %s)", name, list);
  }
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE); /* 4 */
  if (lua_getfield(L, 4, name) == LUA_TNIL) {           /* 5 */
    lua_pop(L, 1);
    sbx_push_host(L, "require");
    lua_pushstring(L, name);
    lua_call(L, 1, 1);
  }
  if (lua_type(L, -1) != LUA_TTABLE)
    return 1;
  lua_getfield(L, 2, "proxies");
  push_proxy(L, -2, -1, name);
  return 1;
}

/* ---------------------------------------------------------------------------------- */
/* llm for sandboxed code: roles only, nothing that reaches the wire as it is */

static void check_model(lua_State *L, int idx) {
  if (lua_isnil(L, idx))
    return; /* the default role */
  if (lua_type(L, idx) != LUA_TSTRING)
    luaL_error(L, "llm.chat: 'model' must be a role name (a string such as \"strong\")");
  const char *name = lua_tostring(L, idx);
  struct llm_state *st = rt_from_lua(L)->llm;
  char list[600] = "";
  if (st) {
    const struct llm_provider *p;
    const char *model;
    const struct llm_model *alias;
    char err[512];
    if (llm_config_resolve(&st->cfg, name, &p, &model, &alias, err, sizeof err) == 0 &&
        (alias != NULL || in_list(role_names, name)))
      return;
    for (int i = 0; i < st->cfg.nmodels; i++) {
      size_t n = strlen(list);
      snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "", st->cfg.models[i].alias);
    }
  }
  for (int i = 0; role_names[i]; i++) {
    size_t n = strlen(list);
    snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "", role_names[i]);
  }
  luaL_error(L, "llm.chat: model \"%s\" is not a role defined in the config; sandboxed code "
                "names models by role (%s)", name, list);
}

/* Push the spec to send for the llm.chat spec at idx: raw copies of the allowed options,
 * with the model checked. Raises for anything else. */
static void push_clean_spec(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  luaL_checktype(L, idx, LUA_TTABLE);
  luaL_checkstack(L, 6, "llm.chat");
  lua_newtable(L);
  int out = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "llm.chat: option names must be strings");
    const char *k = lua_tostring(L, -2);
    if (!in_list(chat_options, k)) {
      if (strcmp(k, "extra") == 0)
        luaL_error(L, "llm.chat: 'extra' (fields sent to the server as they are) is not "
                      "available to sandboxed code");
      luaL_error(L, "llm.chat: option '%s' is not available to sandboxed code (options: "
                    "model, messages, prompt, system, temperature, max_tokens, stop, json, "
                    "schema, n, stream, timeout_ms, cache, tags, seed, top_p, attempts)", k);
    }
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, out);
  }
  lua_pushliteral(L, "model");
  lua_rawget(L, out);
  check_model(L, out + 1);
  lua_pop(L, 1);
}

static int chat_done(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  return lua_gettop(L) - (int)ctx;
}

static int sbx_chat(lua_State *L) {
  lua_settop(L, 1);
  push_clean_spec(L, 1); /* 2 */
  sbx_push_host(L, "llm.chat");
  lua_pushvalue(L, 2);
  lua_callk(L, 1, LUA_MULTRET, 2, chat_done);
  return chat_done(L, LUA_OK, 2);
}

/* sandbox.check_chat(spec) -> the spec as a sandbox's llm.chat would send it, or an error:
 * for trusted chat functions handed to sandboxed code (a recipe hook's ctx.chat). */
static int sbx_check_chat(lua_State *L) {
  lua_settop(L, 1);
  push_clean_spec(L, 1);
  return 1;
}

/* task.spawn for sandboxed code: the task's body runs as a call of the same sandbox. */
static int sbx_spawn(lua_State *L) {
  struct ml_sandbox *sb = sbx_upsb(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (sb->killed != SBX_ALIVE) {
    sbx_push_kill_error(L, sb);
    return lua_error(L);
  }
  int n = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushcclosure(L, sbx_task_body, 1);
  lua_insert(L, 1);
  sched_spawn(L, n, sb->rt->current);
  return 1;
}

/* ---------------------------------------------------------------------------------- */
/* Building a sandbox */

/* Lock the host's metatables: every metatable registered with luaL_newmetatable gets a
 * __metatable field, so getmetatable() in a sandbox cannot reach and change it (error
 * objects, json arrays, task handles). */
static void lock_host_metatables(lua_State *L) {
  luaL_checkstack(L, 6, "lock");
  lua_pushnil(L);
  while (lua_next(L, LUA_REGISTRYINDEX)) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TTABLE) {
      lua_pushliteral(L, "__name");
      int named = lua_rawget(L, -2) == LUA_TSTRING;
      lua_pop(L, 1);
      if (named) {
        lua_pushliteral(L, "__metatable");
        if (lua_rawget(L, -2) == LUA_TNIL) {
          lua_pushliteral(L, "__metatable");
          lua_pushboolean(L, 0);
          lua_rawset(L, -4);
        }
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 1);
  }
}

static void host_take(lua_State *L, int host, int from, const char *name, const char *as) {
  lua_getfield(L, from, name);
  lua_setfield(L, host, as ? as : name);
}

/* The trusted functions the sandbox's wrappers use, captured once from the globals. */
static void host_init(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, SBX_HOST_KEY) == LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  lua_newtable(L);
  int host = lua_gettop(L);
  lua_pushglobaltable(L);
  int g = lua_gettop(L);
  static const char *const base[] = {"assert", "error", "ipairs", "next", "pairs", "select",
                                     "tonumber", "tostring", "type", "rawequal", "rawlen",
                                     "rawget", "rawset", "getmetatable", "_VERSION", "print",
                                     "require", "string", "os", "json", "text", "log", NULL};
  for (int i = 0; base[i]; i++)
    host_take(L, host, g, base[i], NULL);
  lua_getfield(L, g, "task");
  int task = lua_gettop(L);
  static const char *const task_fns[] = {"sleep", "current", "park", "unpark", "error", NULL};
  for (int i = 0; task_fns[i]; i++) {
    lua_pushfstring(L, "task.%s", task_fns[i]);
    host_take(L, host, task, task_fns[i], lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (lua_getfield(L, g, "llm") == LUA_TTABLE) {
    host_take(L, host, lua_gettop(L), "chat", "llm.chat");
    host_take(L, host, lua_gettop(L), "stats", "llm.stats");
  }
  lua_pop(L, 2);
  lua_setfield(L, LUA_REGISTRYINDEX, SBX_HOST_KEY);
}

static void set_closure(lua_State *L, int t, int sbidx, const char *name, lua_CFunction f) {
  lua_pushvalue(L, sbidx);
  lua_pushcclosure(L, f, 1);
  lua_setfield(L, t, name);
}

/* A fresh table with the fields of the table on top (minus `skip`), replacing it. */
static void shallow_copy(lua_State *L, const char *skip) {
  int src = lua_gettop(L);
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, src)) {
    if (skip && lua_type(L, -2) == LUA_TSTRING && strcmp(lua_tostring(L, -2), skip) == 0) {
      lua_pop(L, 1);
      continue;
    }
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, src + 1);
  }
  lua_replace(L, src);
}

/* A fresh library table from its luaopen function (its own state, such as math.random's). */
static void push_fresh_lib(lua_State *L, lua_CFunction open) {
  lua_pushcfunction(L, open);
  lua_call(L, 0, 1);
}

static void build_env(lua_State *L, int sbidx) {
  lua_createtable(L, 0, 48);
  int env = lua_gettop(L);
  lua_newtable(L);
  int mods = lua_gettop(L);
  lua_getfield(L, LUA_REGISTRYINDEX, SBX_HOST_KEY);
  int host = lua_gettop(L);

  static const char *const base[] = {"assert", "error", "ipairs", "next", "pairs", "select",
                                     "tonumber", "tostring", "type", "rawequal", "rawlen",
                                     "rawget", "rawset", "getmetatable", "_VERSION", "print",
                                     NULL};
  for (int i = 0; base[i]; i++)
    host_take(L, env, host, base[i], NULL);
  set_closure(L, env, sbidx, "pcall", sbx_pcall);
  set_closure(L, env, sbidx, "xpcall", sbx_xpcall);
  lua_pushcfunction(L, sbx_setmetatable);
  lua_setfield(L, env, "setmetatable");
  set_closure(L, env, sbidx, "load", sbx_load);
  set_closure(L, env, sbidx, "collectgarbage", sbx_collectgarbage);
  set_closure(L, env, sbidx, "require", sbx_require);
  lua_pushvalue(L, env);
  lua_setfield(L, env, "_G");

  /* Libraries: fresh or copied, never the host's tables. */
  lua_getfield(L, host, "string");
  shallow_copy(L, "dump");
  lua_pushvalue(L, -1);
  lua_setfield(L, mods, "string");
  lua_setfield(L, env, "string");
  static const struct {
    const char *name;
    lua_CFunction open;
  } fresh[] = {{"table", luaopen_table}, {"math", luaopen_math}, {"utf8", luaopen_utf8}};
  for (size_t i = 0; i < sizeof fresh / sizeof fresh[0]; i++) {
    push_fresh_lib(L, fresh[i].open);
    lua_pushvalue(L, -1);
    lua_setfield(L, mods, fresh[i].name);
    lua_setfield(L, env, fresh[i].name);
  }

  lua_createtable(L, 0, 4); /* os: the clock and the calendar, nothing else */
  lua_getfield(L, host, "os");
  static const char *const os_fns[] = {"time", "clock", "date", "difftime", NULL};
  for (int i = 0; os_fns[i]; i++)
    host_take(L, lua_gettop(L) - 1, lua_gettop(L), os_fns[i], NULL);
  lua_pop(L, 1);
  lua_pushvalue(L, -1);
  lua_setfield(L, mods, "os");
  lua_setfield(L, env, "os");

  push_fresh_lib(L, luaopen_coroutine); /* status, running, isyieldable, yield */
  int co = lua_gettop(L);
  set_closure(L, co, sbidx, "create", sbco_create);
  set_closure(L, co, sbidx, "resume", sbco_resume);
  set_closure(L, co, sbidx, "wrap", sbco_wrap);
  set_closure(L, co, sbidx, "close", sbco_close);
  lua_pushvalue(L, co);
  lua_setfield(L, mods, "coroutine");
  lua_setfield(L, env, "coroutine");

  static const struct {
    const char *name, *skip;
  } copies[] = {{"json", "array_mt"}, {"text", NULL}, {"log", NULL}};
  for (size_t i = 0; i < sizeof copies / sizeof copies[0]; i++) {
    if (lua_getfield(L, host, copies[i].name) != LUA_TTABLE) {
      lua_pop(L, 1);
      continue;
    }
    shallow_copy(L, copies[i].skip);
    lua_pushvalue(L, -1);
    lua_setfield(L, mods, copies[i].name);
    lua_setfield(L, env, copies[i].name);
  }

  lua_createtable(L, 0, 2);
  int llm = lua_gettop(L);
  set_closure(L, llm, sbidx, "chat", sbx_chat);
  host_take(L, llm, host, "llm.stats", "stats");
  lua_setfield(L, mods, "llm");
  lua_getfield(L, mods, "llm");
  lua_setfield(L, env, "llm");

  lua_createtable(L, 0, 12); /* task.map, gather, timeout, semaphore: moonloop.sandbox adds */
  int task = lua_gettop(L);
  set_closure(L, task, sbidx, "spawn", sbx_spawn);
  static const char *const task_fns[] = {"sleep", "current", "park", "unpark", "error", NULL};
  for (int i = 0; task_fns[i]; i++) {
    lua_pushfstring(L, "task.%s", task_fns[i]);
    host_take(L, task, host, lua_tostring(L, -1), task_fns[i]);
    lua_pop(L, 1);
  }
  lua_pushvalue(L, task);
  lua_setfield(L, mods, "moonloop.task");
  lua_pushvalue(L, task);
  lua_setfield(L, mods, "task");
  lua_setfield(L, env, "task");

  lua_pop(L, 1); /* host */
  /* The private table {mods =, proxies = (weak keys)} is the second user value. */
  lua_createtable(L, 0, 2);
  lua_insert(L, mods); /* env priv mods */
  lua_setfield(L, mods, "mods");
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_setfield(L, -2, "proxies");
  lua_setiuservalue(L, sbidx, 2);
  lua_setiuservalue(L, sbidx, 1);
}

static int64_t opt_number(lua_State *L, int t, const char *key, int64_t dflt, double scale) {
  if (t == 0)
    return dflt;
  lua_getfield(L, t, key);
  int64_t v = dflt;
  if (!lua_isnil(L, -1)) {
    int ok;
    lua_Number n = lua_tonumberx(L, -1, &ok);
    if (!ok || n < 0 || n > 9.2e18 / scale)
      luaL_error(L, "sandbox: %s must be a number >= 0 (0 means no limit)", key);
    v = (int64_t)(n * scale);
  }
  lua_pop(L, 1);
  return v;
}

static void set_limits(lua_State *L, struct ml_sandbox *sb, int t, int defaults) {
  sb->mem_cap = opt_number(L, t, "memory", defaults ? DEFAULT_MEMORY : sb->mem_cap, 1);
  sb->max_instructions = opt_number(L, t, "instructions",
                                    defaults ? DEFAULT_INSTRUCTIONS : sb->max_instructions, 1);
  sb->cpu_ns = (uint64_t)opt_number(L, t, "cpu_ms",
                                    defaults ? DEFAULT_CPU_MS * 1000000LL : (int64_t)sb->cpu_ns, 1e6);
  sb->wall_ns = (uint64_t)opt_number(
      L, t, "wall_ms", defaults ? DEFAULT_WALL_MS * 1000000LL : (int64_t)sb->wall_ns, 1e6);
  sb->slice_ns = (uint64_t)opt_number(
      L, t, "slice_ms", defaults ? DEFAULT_SLICE_MS * 1000000LL : (int64_t)sb->slice_ns, 1e6);
  sb->max_coroutines = (int)opt_number(L, t, "coroutines",
                                       defaults ? DEFAULT_COROUTINES : sb->max_coroutines, 1);
}

/* sandbox.new{name=, memory=, instructions=, cpu_ms=, wall_ms=, slice_ms=, coroutines=} */
static int sbx_new(lua_State *L) {
  int t = lua_istable(L, 1) ? 1 : 0;
  if (!t && !lua_isnoneornil(L, 1))
    return luaL_argerror(L, 1, "expected a table of options");
  lua_settop(L, 1);
  host_init(L);
  lock_host_metatables(L);
  struct ml_sandbox *sb = lua_newuserdatauv(L, sizeof *sb, 2);
  memset(sb, 0, sizeof *sb);
  sb->rt = rt_from_lua(L);
  luaL_setmetatable(L, SBX_MT);
  int sbidx = lua_gettop(L);
  set_limits(L, sb, t, 1);
  const char *name = "sandbox";
  if (t && lua_getfield(L, t, "name") == LUA_TSTRING)
    name = lua_tostring(L, -1);
  snprintf(sb->name, sizeof sb->name, "%s", name);
  lua_settop(L, sbidx);
  build_env(L, sbidx);
  if (t && lua_getfield(L, t, "modules") == LUA_TTABLE) { /* more modules for this one */
    lua_getiuservalue(L, sbidx, 2);
    lua_newtable(L);
    for (lua_Integer i = 1; lua_rawgeti(L, -3, i) == LUA_TSTRING; i++) {
      lua_pushboolean(L, 1);
      lua_rawset(L, -3);
    }
    lua_pop(L, 1);
    lua_setfield(L, -2, "granted");
  }
  lua_settop(L, sbidx);
  return 1;
}

static struct ml_sandbox *check_sb(lua_State *L) {
  return luaL_checkudata(L, 1, SBX_MT);
}

/* sb:load(source, chunkname) -> function | nil, message. Text only; the sandbox's env. */
static int sbm_load(lua_State *L) {
  check_sb(L);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  const char *chunkname = luaL_optstring(L, 3, "=(sandbox)");
  if (luaL_loadbufferx(L, s, len, chunkname, "t") != LUA_OK) {
    luaL_pushfail(L);
    lua_insert(L, -2);
    return 2;
  }
  lua_getiuservalue(L, 1, 1);
  if (!lua_setupvalue(L, -2, 1))
    lua_pop(L, 1);
  return 1;
}

static int sbm_call(lua_State *L) {
  check_sb(L);
  return sbx_call_start(L, MODE_CALL);
}

static int sbm_call_raw(lua_State *L) {
  check_sb(L);
  return sbx_call_start(L, MODE_RAW);
}

/* sb:wrap(v): a copy of v the host can use: plain tables, and functions that run in the
 * sandbox (raising its errors). */
static int sbm_wrap(lua_State *L) {
  check_sb(L);
  luaL_checkany(L, 2);
  lua_settop(L, 2);
  sbx_copy_values(L, 1, 2, 1, 1);
  return 1;
}

/* sb:set(name, value): a global of the sandbox (a copy of value). */
static int sbm_set(lua_State *L) {
  check_sb(L);
  luaL_checkstring(L, 2);
  lua_settop(L, 3);
  sbx_copy_values(L, 1, 3, 1, 0);
  lua_getiuservalue(L, 1, 1);
  lua_insert(L, 2);
  lua_rawset(L, 2);
  return 0;
}

static int sbm_limits(lua_State *L) {
  struct ml_sandbox *sb = check_sb(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  set_limits(L, sb, 2, 0);
  return 0;
}

static int sbm_stats(lua_State *L) {
  struct ml_sandbox *sb = check_sb(L);
  lua_createtable(L, 0, 10);
  lua_pushinteger(L, sb->mem_used > 0 ? sb->mem_used : 0);
  lua_setfield(L, -2, "memory");
  lua_pushinteger(L, sb->mem_peak);
  lua_setfield(L, -2, "memory_peak");
  lua_pushinteger(L, (lua_Integer)sb->instructions);
  lua_setfield(L, -2, "instructions");
  lua_pushinteger(L, (lua_Integer)sb->calls);
  lua_setfield(L, -2, "calls");
  lua_pushinteger(L, sb->live_coroutines);
  lua_setfield(L, -2, "coroutines");
  if (sb->killed != SBX_ALIVE) {
    lua_pushstring(L, sbx_kill_name(sb->killed));
    lua_setfield(L, -2, "killed");
    lua_pushstring(L, sb->kill_msg);
    lua_setfield(L, -2, "kill_message");
  } else {
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "killed");
  }
  static const struct {
    const char *name;
    int64_t scale;
  } lim[] = {{"memory", 1}, {"instructions", 1}, {"cpu_ms", 1000000},
             {"wall_ms", 1000000}, {"slice_ms", 1000000}, {"coroutines", 1}};
  int64_t vals[] = {sb->mem_cap, sb->max_instructions, (int64_t)sb->cpu_ns,
                    (int64_t)sb->wall_ns, (int64_t)sb->slice_ns, sb->max_coroutines};
  lua_createtable(L, 0, 6);
  for (size_t i = 0; i < sizeof lim / sizeof lim[0]; i++) {
    lua_pushinteger(L, vals[i] / lim[i].scale);
    lua_setfield(L, -2, lim[i].name);
  }
  lua_setfield(L, -2, "limits");
  return 1;
}

static int sbm_tostring(lua_State *L) {
  struct ml_sandbox *sb = check_sb(L);
  lua_pushfstring(L, "sandbox %s%s", sb->name, sb->killed != SBX_ALIVE ? " (killed)" : "");
  return 1;
}

/* The string metatable's __index falls back here for names that are not in its own copy
 * (functions added to `string` later by trusted code), never for dump. */
static int string_fallback(lua_State *L) {
  if (lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2), "dump") == 0)
    return 0;
  lua_settop(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

void sbx_lock_strings(lua_State *L) {
  lua_pushliteral(L, "");
  if (!lua_getmetatable(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  int mt = lua_gettop(L);
  lua_getglobal(L, "string");
  int lib = lua_gettop(L);
  lua_pushvalue(L, lib);
  shallow_copy(L, "dump");
  lua_createtable(L, 0, 1);
  lua_pushvalue(L, lib);
  lua_pushcclosure(L, string_fallback, 1);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  lua_setfield(L, mt, "__index");
  lua_pushboolean(L, 0);
  lua_setfield(L, mt, "__metatable");
  lua_pop(L, 3);
}

static void weak_registry_table(lua_State *L, const char *key) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, key) == LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, key);
}

int sbx_luaopen(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"load", sbm_load},   {"call", sbm_call},     {"call_raw", sbm_call_raw},
      {"wrap", sbm_wrap},   {"set", sbm_set},       {"limits", sbm_limits},
      {"stats", sbm_stats}, {NULL, NULL}};
  if (luaL_newmetatable(L, SBX_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, sbm_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "sandbox");
    lua_setfield(L, -2, "__metatable");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, SBX_TOKEN_MT)) {
    lua_pushcfunction(L, sbx_token_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushliteral(L, "coroutine token");
    lua_setfield(L, -2, "__metatable");
  }
  lua_pop(L, 1);
  weak_registry_table(L, SBX_CORO_KEY);
  weak_registry_table(L, SBX_BUSY_KEY);

  lua_createtable(L, 0, 3);
  lua_pushcfunction(L, sbx_new);
  lua_setfield(L, -2, "new");
  lua_pushcfunction(L, sbx_check_chat);
  lua_setfield(L, -2, "check_chat");
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, DEFAULT_MEMORY);
  lua_setfield(L, -2, "memory");
  lua_pushinteger(L, DEFAULT_INSTRUCTIONS);
  lua_setfield(L, -2, "instructions");
  lua_pushinteger(L, DEFAULT_CPU_MS);
  lua_setfield(L, -2, "cpu_ms");
  lua_pushinteger(L, DEFAULT_WALL_MS);
  lua_setfield(L, -2, "wall_ms");
  lua_pushinteger(L, DEFAULT_SLICE_MS);
  lua_setfield(L, -2, "slice_ms");
  lua_pushinteger(L, DEFAULT_COROUTINES);
  lua_setfield(L, -2, "coroutines");
  lua_setfield(L, -2, "DEFAULTS");
  return 1;
}


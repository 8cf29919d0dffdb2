/* The runtime: loop set-up, the main Lua state with moonloop's modules, Ctrl-C, and an
 * orderly shutdown (Lua objects first, then libcurl, then the loop's handles). */
#include "core/rt.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <lauxlib.h>
#include <lualib.h>

#include "core/paths.h"
#include "core/sched.h"
#include "http/engine.h"
#include "llm/llm.h"
#include "lua/json.h"
#include "lua/log.h"
#include "lua/modules.h"
#include "sandbox/sandbox.h"

/* The collector's pause, in percent of the heap after a cycle (Lua's default is 200). */
#define RT_GC_PAUSE 150

/* The signal handler can only reach the runtime through a global. */
static struct ml_rt *signal_rt;

struct ml_rt *rt_from_lua(lua_State *L) {
  return *(struct ml_rt **)lua_getextraspace(L);
}

void rt_log(struct ml_rt *rt, enum ml_log_level level, const char *fmt, ...) {
  if (rt && level < rt->log_level)
    return;
  static const char *const names[] = {"debug: ", "", "warning: ", "error: ", ""};
  char buf[8192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fprintf(stderr, "moonloop: %s%s\n", names[level], buf);
  fflush(stderr);
}

static void on_ready_check(uv_check_t *h) {
  sched_drain(h->data);
}

static void on_sigint_async(uv_async_t *h) {
  struct ml_rt *rt = h->data;
  if (rt->exit_code != ML_EXIT_INTERRUPTED) {
    rt->exit_code = ML_EXIT_INTERRUPTED;
    rt_log(rt, ML_LOG_WARN, "interrupted: cancelling %u task(s); press Ctrl-C again to quit at once",
           rt->live_tasks);
    sched_cancel_all(rt);
  }
}

static void on_signal(int sig) {
  (void)sig;
  if (signal_rt == NULL)
    _exit(ML_EXIT_INTERRUPTED);
  if (signal_rt->interrupted)
    _exit(ML_EXIT_INTERRUPTED); /* second Ctrl-C: the user means it */
  signal_rt->interrupted = 1;
  uv_async_send(&signal_rt->sigint_async);
}

/* The allocator of the one Lua state. Trusted code pays one branch; while a sandbox runs,
 * its net growth is counted and growth past its cap is refused (Lua then collects and
 * retries once, then raises a memory error inside the sandbox). Shrinks and frees never
 * fail. */
static void *rt_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  struct ml_rt *rt = ud;
  struct ml_sandbox *sb = rt->active_sandbox;
  size_t old = ptr ? osize : 0; /* with ptr NULL, osize is the kind of object */
  if (nsize == 0) {
    free(ptr);
    if (sb)
      sbx_mem_charge(sb, -(int64_t)old);
    return NULL;
  }
  if (sb == NULL)
    return realloc(ptr, nsize);
  if (nsize > old && !sbx_mem_allows(sb, nsize - old))
    return NULL;
  void *p = realloc(ptr, nsize);
  if (p == NULL)
    return NULL;
  sbx_mem_charge(sb, (int64_t)nsize - (int64_t)old);
  if (nsize > old)
    sb->mem_refused = 0; /* the retry after the emergency collection fitted */
  return p;
}

/* An error outside any protected call: a bug in moonloop, never a script's doing. */
static int rt_panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "moonloop: fatal: unprotected Lua error: %s\n", msg ? msg : "(not a string)");
  fflush(stderr);
  abort();
  return 0;
}

/* Lua's warn(): off until a script says "@on", like the stock interpreter. */
static void rt_warn(void *ud, const char *msg, int tocont) {
  struct ml_rt *rt = ud;
  if (!rt->warn_cont && msg[0] == '@') {
    if (strcmp(msg, "@on") == 0)
      rt->warn_on = 1;
    else if (strcmp(msg, "@off") == 0)
      rt->warn_on = 0;
    return;
  }
  if (rt->warn_on) {
    if (!rt->warn_cont)
      fputs("Lua warning: ", stderr);
    fputs(msg, stderr);
    if (!tocont)
      fputc('\n', stderr);
  }
  rt->warn_cont = tocont;
}

/* package.path: the runtime's own library first, then the usual places. */
static void set_package_path(lua_State *L) {
  const char *dir = ml_lua_dir();
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", dir, dir, lua_tostring(L, -1));
  lua_setfield(L, -3, "path");
  lua_pop(L, 2);
}

int rt_init(struct ml_rt *rt, char *err, size_t errlen) {
  memset(rt, 0, sizeof *rt);
  rt->log_level = ML_LOG_INFO;
  rt->trusted = 0; /* ml_runtime_new sets it from the run options (--trusted) */
  rt->started_ns = uv_hrtime();
  if (uv_loop_init(&rt->loop) != 0) {
    snprintf(err, errlen, "cannot create the event loop");
    return -1;
  }
  uv_check_init(&rt->loop, &rt->ready_check);
  rt->ready_check.data = rt;
  uv_check_start(&rt->ready_check, on_ready_check);
  uv_unref((uv_handle_t *)&rt->ready_check);
  uv_idle_init(&rt->loop, &rt->ready_idle);
  rt->ready_idle.data = rt;
  uv_async_init(&rt->loop, &rt->sigint_async, on_sigint_async);
  rt->sigint_async.data = rt;
  uv_unref((uv_handle_t *)&rt->sigint_async);

  signal(SIGPIPE, SIG_IGN); /* a peer closing mid-write must not kill the process */
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    snprintf(err, errlen, "curl_global_init failed");
    return -1;
  }
  if (http_engine_new(&rt->http, &rt->loop, err, errlen) != 0)
    return -1;

  lua_State *L = lua_newstate(rt_alloc, rt);
  if (L == NULL) {
    snprintf(err, errlen, "cannot create a Lua state (out of memory)");
    return -1;
  }
  lua_atpanic(L, rt_panic);
  lua_setwarnf(L, rt_warn, rt);
  rt->L = L;
  /* Collect when the heap has grown by half since the last cycle, not doubled (Lua's
   * default). A run keeps thousands of requests in flight, each with a coroutine and a
   * few tables, and makes a few KB of garbage per answer: at 10,000 in flight this holds
   * 2.7 KB less per request, and the smaller heap costs fewer page faults than the extra
   * marking costs (tests/bench/README.md, "Where the time went"). */
  lua_gc(L, LUA_GCINC, RT_GC_PAUSE, 0, 0);
  *(struct ml_rt **)lua_getextraspace(L) = rt; /* inherited by every coroutine */
  luaL_openlibs(L);
  sbx_lock_strings(L); /* before any script can reach the string metatable */
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, sbx_luaopen);
  lua_setfield(L, -2, "moonloop.sandbox.core");
  lua_pop(L, 2);
  set_package_path(L);
  sched_open(L, rt);
  ml_json_open(L);
  lua_setglobal(L, "json");
  log_open(L, rt);
  modules_open(L, rt);
  return 0;
}

/* Load the Lua half of a module (lua/moonloop/NAME.lua), which extends the C globals. */
int rt_require(struct ml_rt *rt, const char *module, char *err, size_t errlen) {
  lua_State *L = rt->L;
  lua_getglobal(L, "require");
  lua_pushstring(L, module);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    snprintf(err, errlen, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return -1;
  }
  return 0;
}

void rt_run(struct ml_rt *rt) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  signal_rt = rt;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sched_drain(rt); /* start the tasks spawned before the loop ran */
  uv_run(&rt->loop, UV_RUN_DEFAULT);
  signal_rt = NULL;
}

static void close_any(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

/* lua_close's allocator on the way out of the process: allocations still work
 * (finalizers may build strings), frees are left to the exit. */
static void *exit_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  (void)osize;
  return nsize == 0 ? NULL : realloc(ptr, nsize);
}

/* What must happen however the runtime goes: the waits of tasks that never finished are
 * undone, so no timer or transfer outlives the Lua objects it points into; the Lua state
 * closes, running every finalizer (files flush and close, databases close) and handing
 * requests' transfers back to the engine; the LLM layer closes its response cache. With
 * closing_alloc, the state closes through it. */
static void settle(struct ml_rt *rt, lua_Alloc closing_alloc) {
  for (struct ml_task *t = rt->all_tasks; t; t = t->next_live) {
    if (t->state == TASK_WAITING && t->wait_cleanup) {
      sched_cleanup_fn cleanup = t->wait_cleanup;
      t->wait_cleanup = NULL;
      cleanup(t, t->wait_data);
    }
  }
  if (rt->L) {
    if (closing_alloc)
      lua_setallocf(rt->L, closing_alloc, NULL);
    lua_close(rt->L);
    rt->L = NULL;
  }
  llm_close(rt);
}

void rt_close(struct ml_rt *rt) {
  settle(rt, NULL);
  if (rt->http)
    http_engine_free(rt->http);
  uv_walk(&rt->loop, close_any, NULL);
  uv_run(&rt->loop, UV_RUN_DEFAULT);
  if (rt->http) {
    http_engine_release(rt->http);
    rt->http = NULL;
  }
  uv_loop_close(&rt->loop);
  curl_global_cleanup();
}

void rt_close_for_exit(struct ml_rt *rt) {
  settle(rt, exit_alloc);
  fflush(NULL);
}

void rt_set_cli_options(lua_State *L, const char *const *opts) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "loaded");
  lua_newtable(L);
  lua_newtable(L);
  lua_setfield(L, -2, "set");
  for (const char *const *o = opts; o && *o; o++) {
    const char *eq = strchr(*o, '=');
    if (eq == NULL)
      continue;
    if ((size_t)(eq - *o) == 3 && strncmp(*o, "set", 3) == 0) { /* repeatable: a list */
      lua_getfield(L, -1, "set");
      lua_pushstring(L, eq + 1);
      lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
      lua_pop(L, 1);
    } else {
      lua_pushlstring(L, *o, (size_t)(eq - *o));
      if (strcmp(eq + 1, "true") == 0)
        lua_pushboolean(L, 1);
      else
        lua_pushstring(L, eq + 1);
      lua_settable(L, -3);
    }
  }
  lua_setfield(L, -2, "moonloop.cli");
  lua_pop(L, 2);
}

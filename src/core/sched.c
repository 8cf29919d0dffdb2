/* The task scheduler: Lua coroutines run as tasks on the runtime's libuv loop.
 *
 * Invariants (ARCHITECTURE.md; every file that waits or wakes relies on them):
 *  1. One thread, one uv_loop_t. No Lua API call runs below a libcurl callback frame:
 *     curl and libuv callbacks only fill C buffers, touch timers and call sched_wake().
 *  2. Every lua_resume of a task happens in sched_drain(), called from the loop's check
 *     phase, with from = NULL. User coroutines that wait for I/O are not resumed from
 *     the driver: the wait yields a private sentinel that the coroutine wrappers below
 *     pass up to the task, and the wrapper's continuation resumes the inner coroutine.
 *  3. (http engine) every curl_multi_socket_action is followed by draining
 *     curl_multi_info_read, so no completion is missed.
 *  4. A task that is not DONE is anchored in the registry; a WAITING task has a cleanup
 *     hook. Cancelling it runs the hook (removing its transfer or timer) and wakes it with
 *     a cancellation error that the pcall/xpcall/coroutine wrappers re-raise, so user
 *     code cannot swallow it.
 */
#include "core/sched.h"

#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "core/rt.h"

#define TASK_MT "moonloop.task"
#define ERROR_MT "moonloop.error"
#define TASK_THREADS_KEY "moonloop.task_threads"

/* Resumes per drain before yielding back to I/O, so tasks that wake each other in a
 * ring cannot starve the network. */
#define DRAIN_BUDGET 20000

/* Yielded by every runtime wait; its address is the identity. Never given to Lua code. */
static char wait_sentinel;

static int is_wait_yield(lua_State *co, int nres) {
  return nres == 1 && lua_touserdata(co, -1) == (void *)&wait_sentinel;
}

/* ---------------------------------------------------------------------------------- */
/* Ready queue */

/* The idle handle only exists to keep the poll phase from blocking while tasks are
 * ready; libuv insists on a callback. */
static void on_ready_idle(uv_idle_t *h) {
  (void)h;
}

static void ready_push(struct ml_rt *rt, struct ml_task *t) {
  t->state = TASK_READY;
  t->next_ready = NULL;
  if (rt->ready_tail)
    rt->ready_tail->next_ready = t;
  else
    rt->ready_head = t;
  rt->ready_tail = t;
  if (!uv_is_active((uv_handle_t *)&rt->ready_idle))
    uv_idle_start(&rt->ready_idle, on_ready_idle);
}

static struct ml_task *ready_pop(struct ml_rt *rt) {
  struct ml_task *t = rt->ready_head;
  if (t) {
    rt->ready_head = t->next_ready;
    if (!rt->ready_head)
      rt->ready_tail = NULL;
    t->next_ready = NULL;
  }
  return t;
}

void sched_wake(struct ml_task *t) {
  if (t->state != TASK_WAITING)
    return;
  t->wait_cleanup = NULL;
  t->wait_data = NULL;
  t->wait_what = NULL;
  ready_push(t->rt, t);
}

/* ---------------------------------------------------------------------------------- */
/* Errors */

void sched_push_error(lua_State *L, const char *kind, const char *message) {
  lua_createtable(L, 0, 4);
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  lua_pushstring(L, message);
  lua_setfield(L, -2, "message");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "retryable");
  luaL_setmetatable(L, ERROR_MT);
}

static int error_tostring(lua_State *L) {
  lua_getfield(L, 1, "message");
  if (lua_type(L, -1) == LUA_TSTRING)
    return 1;
  lua_getfield(L, 1, "kind");
  lua_pushfstring(L, "error (%s)", lua_tostring(L, -1) ? lua_tostring(L, -1) : "unknown");
  return 1;
}

static void push_cancel_error(lua_State *L, struct ml_task *t) {
  char msg[96];
  snprintf(msg, sizeof msg, "task #%llu was cancelled", (unsigned long long)t->id);
  sched_push_error(L, "cancelled", msg);
}

void sched_check_cancel(lua_State *L, struct ml_task *t) {
  if (t->cancel_requested) {
    push_cancel_error(L, t);
    lua_error(L);
  }
}

/* ---------------------------------------------------------------------------------- */
/* Waiting */

struct ml_task *sched_check_waitable(lua_State *L, const char *what) {
  struct ml_rt *rt = rt_from_lua(L);
  struct ml_task *t = rt->current;
  if (t == NULL)
    luaL_error(L, "%s can only be called from a task (the script, or a function given to "
                  "task.spawn)", what);
  if (!lua_isyieldable(L))
    luaL_error(L, "%s cannot wait here: it was called from a metamethod, a sort comparator, "
                  "a gsub callback or a finalizer; move the call out of it", what);
  return t;
}

int sched_wait(lua_State *L, struct ml_task *t, const char *what, sched_cleanup_fn cleanup,
               void *data, lua_KContext ctx, lua_KFunction k) {
  if (t->cancel_requested) {
    if (cleanup)
      cleanup(t, data);
    push_cancel_error(L, t);
    return lua_error(L);
  }
  t->state = TASK_WAITING;
  t->wait_what = what;
  t->wait_cleanup = cleanup;
  t->wait_data = data;
  lua_pushlightuserdata(L, (void *)&wait_sentinel);
  return lua_yieldk(L, 1, ctx, k);
}

/* ---------------------------------------------------------------------------------- */
/* Task lifecycle */

static void live_link(struct ml_rt *rt, struct ml_task *t) {
  t->prev_live = NULL;
  t->next_live = rt->all_tasks;
  if (rt->all_tasks)
    rt->all_tasks->prev_live = t;
  rt->all_tasks = t;
  rt->live_tasks++;
}

static void live_unlink(struct ml_rt *rt, struct ml_task *t) {
  if (t->prev_live)
    t->prev_live->next_live = t->next_live;
  else
    rt->all_tasks = t->next_live;
  if (t->next_live)
    t->next_live->prev_live = t->prev_live;
  t->prev_live = t->next_live = NULL;
  rt->live_tasks--;
}

static void child_link(struct ml_task *parent, struct ml_task *t) {
  t->parent = parent;
  t->prev_sibling = NULL;
  t->next_sibling = parent->first_child;
  if (parent->first_child)
    parent->first_child->prev_sibling = t;
  parent->first_child = t;
}

static void child_unlink(struct ml_task *t) {
  struct ml_task *p = t->parent;
  if (p == NULL)
    return;
  if (t->prev_sibling)
    t->prev_sibling->next_sibling = t->next_sibling;
  else
    p->first_child = t->next_sibling;
  if (t->next_sibling)
    t->next_sibling->prev_sibling = t->prev_sibling;
  t->parent = t->prev_sibling = t->next_sibling = NULL;
}

struct ml_task *sched_spawn(lua_State *L, int nargs, struct ml_task *parent) {
  struct ml_rt *rt = rt_from_lua(L);
  luaL_checkstack(L, 4, "task.spawn");
  lua_State *co = lua_newthread(L);                                 /* fn args co */
  struct ml_task *t = lua_newuserdatauv(L, sizeof *t, 2);           /* fn args co ud */
  memset(t, 0, sizeof *t);
  luaL_setmetatable(L, TASK_MT);
  lua_pushvalue(L, -2);
  lua_setiuservalue(L, -2, 1); /* the handle keeps the coroutine alive */

  /* Remember that this thread belongs to a task so user code cannot resume it. */
  lua_getfield(L, LUA_REGISTRYINDEX, TASK_THREADS_KEY);
  lua_pushvalue(L, -3);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_pop(L, 1);

  lua_rotate(L, -2, -1); /* fn args ud co */
  lua_pop(L, 1);         /* fn args ud */
  lua_rotate(L, -(nargs + 2), 1); /* ud fn args */
  lua_xmove(L, co, nargs + 1);    /* ud */

  t->rt = rt;
  t->co = co;
  t->id = ++rt->next_task_id;
  t->nargs = nargs;
  t->outcome = TASK_PENDING;
  lua_pushvalue(L, -1);
  t->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  live_link(rt, t);
  if (parent)
    child_link(parent, t);
  ready_push(rt, t);
  return t;
}

/* Push the task userdata (from its registry anchor) on L. */
static void push_task(lua_State *L, struct ml_task *t) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->self_ref);
}

/* Message of the error object at the top of L, without running arbitrary metamethods
 * unprotected. Leaves the string on top of L (above the error). */
static int tostring_protected(lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
}

static void push_error_message(lua_State *L) {
  int errv = lua_gettop(L);
  if (lua_type(L, errv) == LUA_TSTRING) {
    lua_pushvalue(L, errv);
    return;
  }
  lua_pushcfunction(L, tostring_protected);
  lua_pushvalue(L, errv);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK || lua_type(L, -1) != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, errv));
  }
}

static void task_finish(struct ml_rt *rt, struct ml_task *t, int status, int nres) {
  lua_State *L = rt->L;
  lua_State *co = t->co;
  luaL_checkstack(L, 8, "task_finish");
  push_task(L, t); /* ud */
  int ud = lua_gettop(L);

  if (status == LUA_OK) {
    t->outcome = TASK_OK;
    lua_createtable(L, nres, 1);
    lua_xmove(co, L, nres);
    for (int i = nres; i >= 1; i--)
      lua_rawseti(L, ud + 1, i);
    lua_pushinteger(L, nres);
    lua_setfield(L, ud + 1, "n");
    lua_setiuservalue(L, ud, 2);
  } else {
    lua_xmove(co, L, 1); /* the error object */
    int is_cancel = 0;
    if (t->cancel_requested && lua_getmetatable(L, -1)) {
      luaL_getmetatable(L, ERROR_MT);
      if (lua_rawequal(L, -1, -2)) {
        lua_getfield(L, -3, "kind");
        is_cancel = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "cancelled") == 0;
        lua_pop(L, 1);
      }
      lua_pop(L, 2);
    }
    t->outcome = is_cancel ? TASK_CANCELLED : TASK_FAILED;
    if (!is_cancel && lua_type(L, -1) == LUA_TTABLE) {
      lua_getfield(L, -1, "kind");
      const char *k = lua_tostring(L, -1);
      t->usage_error = k && (strcmp(k, "recipe") == 0 || strcmp(k, "usage") == 0);
      lua_pop(L, 1);
    }
    lua_createtable(L, 0, 2); /* {error=, traceback=} */
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "error");
    if (!is_cancel) {
      lua_pushvalue(L, ud + 1);
      push_error_message(L);
      luaL_traceback(L, co, lua_tostring(L, -1), 0);
      lua_setfield(L, ud + 2, "traceback");
      lua_pop(L, 2);
    }
    lua_setiuservalue(L, ud, 2);
    lua_pop(L, 1); /* error object */
    if (t->outcome == TASK_FAILED && t->njoiners == 0) {
      /* Nobody is waiting for it: say so now, so a background failure is never silent. */
      lua_getiuservalue(L, ud, 2);
      if (t->usage_error) { /* the user's mistake, already located: no Lua traceback */
        lua_getfield(L, -1, "error");
        rt_log(rt, ML_LOG_ERROR, "%s", luaL_tolstring(L, -1, NULL));
        lua_pop(L, 3);
      } else {
        lua_getfield(L, -1, "traceback");
        rt_log(rt, ML_LOG_ERROR, "task #%llu failed: %s", (unsigned long long)t->id,
               lua_tostring(L, -1));
        lua_pop(L, 2);
      }
      rt->failed_unjoined++;
      t->unjoined_failure = 1;
    }
  }
  lua_resetthread(co); /* runs pending to-be-closed variables of a failed coroutine */

  /* Drop the coroutine: results live in the handle now. */
  lua_pushnil(L);
  lua_setiuservalue(L, ud, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, TASK_THREADS_KEY);
  lua_pushthread(co);
  lua_xmove(co, L, 1);
  lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);

  t->state = TASK_DONE;
  t->co = NULL;
  live_unlink(rt, t);
  child_unlink(t);
  for (struct ml_task *c = t->first_child, *next; c; c = next) {
    next = c->next_sibling;
    c->parent = c->prev_sibling = c->next_sibling = NULL;
  }
  t->first_child = NULL;
  for (int i = 0; i < t->njoiners; i++)
    sched_wake(t->joiners[i]);
  t->njoiners = 0;
  luaL_unref(L, LUA_REGISTRYINDEX, t->self_ref);
  t->self_ref = LUA_NOREF;
  lua_pop(L, 1); /* ud */
  if (t == rt->main_task && t->outcome == TASK_FAILED)
    sched_cancel_all(rt); /* the script is over; its background work has no one to serve */
}

static void task_run(struct ml_rt *rt, struct ml_task *t) {
  lua_State *co = t->co;
  if (t->cancel_requested && !t->started) {
    /* Cancelled before it ever ran: finish it without running user code. */
    lua_settop(co, 0);
    push_cancel_error(co, t);
    task_finish(rt, t, LUA_ERRRUN, 0);
    return;
  }
  t->state = TASK_RUNNING;
  t->started = 1;
  rt->current = t;
  int nres = 0;
  int status = lua_resume(co, NULL, t->nargs, &nres);
  rt->current = NULL;
  t->nargs = 0;
  if (status == LUA_YIELD) {
    lua_pop(co, nres);
    if (t->state == TASK_RUNNING) /* a plain yield: let others run, then continue */
      ready_push(rt, t);
    return;
  }
  task_finish(rt, t, status, nres);
}

void sched_drain(struct ml_rt *rt) {
  /* A budget per pass: tasks that only yield, or wake each other in a ring, must not
   * keep the loop from polling the network. */
  for (int budget = DRAIN_BUDGET; budget > 0; budget--) {
    struct ml_task *t = ready_pop(rt);
    if (t == NULL)
      break;
    task_run(rt, t);
  }
  if (rt->ready_head == NULL && uv_is_active((uv_handle_t *)&rt->ready_idle))
    uv_idle_stop(&rt->ready_idle);
}

int sched_cancel(struct ml_task *t) {
  if (t->state == TASK_DONE)
    return 0;
  int was = t->cancel_requested;
  t->cancel_requested = 1;
  for (struct ml_task *c = t->first_child; c; c = c->next_sibling)
    sched_cancel(c);
  if (!was && t->state == TASK_WAITING) {
    sched_cleanup_fn cleanup = t->wait_cleanup;
    void *data = t->wait_data;
    t->wait_cleanup = NULL;
    t->wait_data = NULL;
    if (cleanup)
      cleanup(t, data);
    t->wait_what = NULL;
    ready_push(t->rt, t);
  }
  return 1;
}

void sched_cancel_all(struct ml_rt *rt) {
  for (struct ml_task *t = rt->all_tasks; t; t = t->next_live)
    sched_cancel(t);
}

unsigned sched_report_stuck(struct ml_rt *rt) {
  unsigned n = 0;
  for (struct ml_task *t = rt->all_tasks; t; t = t->next_live) {
    if (t->state != TASK_WAITING)
      continue;
    n++;
    lua_Debug ar;
    char where[256] = "?";
    for (int level = 0; lua_getstack(t->co, level, &ar); level++) {
      if (lua_getinfo(t->co, "Sl", &ar) && ar.currentline > 0) {
        snprintf(where, sizeof where, "%s:%d", ar.short_src, ar.currentline);
        break;
      }
    }
    rt_log(rt, ML_LOG_ERROR, "task #%llu is still waiting on %s at %s, and nothing can wake it",
           (unsigned long long)t->id, t->wait_what ? t->wait_what : "something", where);
  }
  return n;
}

/* ---------------------------------------------------------------------------------- */
/* The `task` module */

static struct ml_task *check_task(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, TASK_MT);
}

static int l_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  struct ml_rt *rt = rt_from_lua(L);
  sched_spawn(L, lua_gettop(L) - 1, rt->current);
  return 1;
}

static int l_current(lua_State *L) {
  struct ml_rt *rt = rt_from_lua(L);
  if (rt->current == NULL)
    return 0;
  push_task(L, rt->current);
  return 1;
}

/* Deliver the outcome of a finished task t (whose handle is at index 1) to the caller. */
static int push_outcome(lua_State *L, struct ml_task *t) {
  lua_getiuservalue(L, 1, 2);
  int out = lua_gettop(L);
  if (t->outcome == TASK_OK) {
    lua_getfield(L, out, "n");
    int n = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    luaL_checkstack(L, n, "too many results to join");
    for (int i = 1; i <= n; i++)
      lua_rawgeti(L, out, i);
    return n;
  }
  lua_getfield(L, out, "error");
  return lua_error(L);
}

static void join_cleanup(struct ml_task *me, void *data) {
  struct ml_task *target = data;
  for (int i = 0; i < target->njoiners; i++) {
    if (target->joiners[i] == me) {
      target->joiners[i] = target->joiners[--target->njoiners];
      break;
    }
  }
}

static int join_k(lua_State *L, int status, lua_KContext ctx) {
  struct ml_task *t = check_task(L, 1);
  sched_check_cancel(L, (struct ml_task *)ctx);
  return push_outcome(L, t);
}

static int l_join(lua_State *L) {
  struct ml_task *t = check_task(L, 1);
  lua_settop(L, 1);
  if (t->state == TASK_DONE) {
    if (t->unjoined_failure) { /* reported when it died; joining retrieves it */
      t->unjoined_failure = 0;
      t->rt->failed_unjoined--;
    }
    return push_outcome(L, t);
  }
  struct ml_task *me = sched_check_waitable(L, "task:join");
  if (me == t)
    return luaL_error(L, "task #%d cannot join itself", (int)t->id);
  if (t->njoiners == t->cap_joiners) {
    int cap = t->cap_joiners ? t->cap_joiners * 2 : 2;
    struct ml_task **j = realloc(t->joiners, (size_t)cap * sizeof *j);
    if (j == NULL)
      return luaL_error(L, "out of memory");
    t->joiners = j;
    t->cap_joiners = cap;
  }
  t->joiners[t->njoiners++] = me;
  return sched_wait(L, me, "task:join", join_cleanup, t, (lua_KContext)me, join_k);
}

static int l_cancel(lua_State *L) {
  struct ml_task *t = check_task(L, 1);
  lua_pushboolean(L, sched_cancel(t));
  return 1;
}

static const char *status_name(const struct ml_task *t) {
  switch (t->state) {
  case TASK_READY: return t->cancel_requested ? "cancelling" : "ready";
  case TASK_RUNNING: return "running";
  case TASK_WAITING: return "waiting";
  case TASK_DONE: break;
  }
  switch (t->outcome) {
  case TASK_OK: return "done";
  case TASK_FAILED: return "failed";
  case TASK_CANCELLED: return "cancelled";
  default: return "done";
  }
}

static int l_status(lua_State *L) {
  lua_pushstring(L, status_name(check_task(L, 1)));
  return 1;
}

static int l_id(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_task(L, 1)->id);
  return 1;
}

static int l_task_tostring(lua_State *L) {
  struct ml_task *t = check_task(L, 1);
  if (t->state == TASK_WAITING && t->wait_what)
    lua_pushfstring(L, "task #%d (waiting on %s)", (int)t->id, t->wait_what);
  else
    lua_pushfstring(L, "task #%d (%s)", (int)t->id, status_name(t));
  return 1;
}

static int l_task_gc(lua_State *L) {
  struct ml_task *t = check_task(L, 1);
  free(t->joiners);
  t->joiners = NULL;
  t->njoiners = t->cap_joiners = 0;
  return 0;
}

/* task.sleep(ms): a one-shot uv timer owned by the wait. */
struct sleep_wait {
  uv_timer_t timer;
  struct ml_task *task;
};

static void sleep_closed(uv_handle_t *h) {
  free(h->data);
}

static void sleep_fire(uv_timer_t *timer) {
  struct sleep_wait *s = timer->data;
  struct ml_task *t = s->task;
  uv_close((uv_handle_t *)timer, sleep_closed);
  sched_wake(t);
}

static void sleep_cleanup(struct ml_task *t, void *data) {
  struct sleep_wait *s = data;
  uv_close((uv_handle_t *)&s->timer, sleep_closed);
}

static int sleep_k(lua_State *L, int status, lua_KContext ctx) {
  sched_check_cancel(L, (struct ml_task *)ctx);
  return 0;
}

static int l_sleep(lua_State *L) {
  lua_Number ms = luaL_checknumber(L, 1);
  luaL_argcheck(L, ms >= 0 && ms < 1e12, 1, "milliseconds must be between 0 and 1e12");
  struct ml_task *me = sched_check_waitable(L, "task.sleep");
  struct ml_rt *rt = me->rt;
  struct sleep_wait *s = malloc(sizeof *s);
  if (s == NULL)
    return luaL_error(L, "out of memory");
  uv_timer_init(&rt->loop, &s->timer);
  s->timer.data = s;
  s->task = me;
  uv_timer_start(&s->timer, sleep_fire, (uint64_t)ms, 0);
  return sched_wait(L, me, "task.sleep", sleep_cleanup, s, (lua_KContext)me, sleep_k);
}

/* task.park() / task.unpark(h): the primitive the Lua library builds semaphores and
 * events on. An unpark that arrives before the park is remembered (one permit). */
static int park_k(lua_State *L, int status, lua_KContext ctx) {
  sched_check_cancel(L, (struct ml_task *)ctx);
  return 0;
}

static int l_park(lua_State *L) {
  struct ml_task *me = sched_check_waitable(L, "task.park");
  push_task(L, me);
  int has_permit = lua_getiuservalue(L, -1, 2) == LUA_TBOOLEAN && lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (has_permit) {
    lua_pushnil(L);
    lua_setiuservalue(L, -2, 2);
    lua_pop(L, 1);
    return 0;
  }
  lua_pop(L, 1);
  return sched_wait(L, me, "task.park", NULL, NULL, (lua_KContext)me, park_k);
}

static int l_unpark(lua_State *L) {
  struct ml_task *t = check_task(L, 1);
  if (t->state == TASK_WAITING && t->wait_what && strcmp(t->wait_what, "task.park") == 0) {
    sched_wake(t);
  } else if (t->state != TASK_DONE) {
    lua_pushboolean(L, 1);
    lua_setiuservalue(L, 1, 2); /* permit: the next park returns at once */
  }
  return 0;
}

static int l_error(lua_State *L) {
  const char *kind = luaL_checkstring(L, 1);
  const char *msg = luaL_optstring(L, 2, kind);
  sched_push_error(L, kind, msg);
  if (lua_istable(L, 3)) {
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_settable(L, -4);
    }
  }
  return 1;
}

/* ---------------------------------------------------------------------------------- */
/* pcall / xpcall that cannot swallow a cancellation. */

static int finish_pcall(lua_State *L, int status, lua_KContext extra) {
  if (status != LUA_OK && status != LUA_YIELD) {
    struct ml_rt *rt = rt_from_lua(L);
    if (rt->current && rt->current->cancel_requested) {
      push_cancel_error(L, rt->current);
      return lua_error(L);
    }
    lua_pushboolean(L, 0);
    lua_pushvalue(L, -2);
    return 2;
  }
  return lua_gettop(L) - (int)extra;
}

int sched_pcall_k(lua_State *L, lua_KFunction finish) {
  luaL_checkany(L, 1);
  lua_pushboolean(L, 1);
  lua_insert(L, 1);
  int status = lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, finish);
  return finish(L, status, 0);
}

int sched_xpcall_k(lua_State *L, lua_KFunction finish) {
  int n = lua_gettop(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushboolean(L, 1);
  lua_pushvalue(L, 1);
  lua_rotate(L, 3, 2); /* f msgh true f args... */
  int status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, finish);
  return finish(L, status, 2);
}

static int l_pcall(lua_State *L) { return sched_pcall_k(L, finish_pcall); }
static int l_xpcall(lua_State *L) { return sched_xpcall_k(L, finish_pcall); }

/* ---------------------------------------------------------------------------------- */
/* coroutine.resume / coroutine.wrap that let a user coroutine wait on runtime I/O. */

static int co_step(lua_State *L, lua_State *co, int narg, int wrap);

static int co_continue(lua_State *L, int status, lua_KContext ctx) {
  int wrap = (int)ctx;
  lua_State *co = wrap ? lua_tothread(L, lua_upvalueindex(1)) : lua_tothread(L, 1);
  return co_step(L, co, 0, wrap);
}

static int co_step(lua_State *L, lua_State *co, int narg, int wrap) {
  int nres = 0;
  int status = lua_resume(co, L, narg, &nres);
  if (status == LUA_YIELD && is_wait_yield(co, nres)) {
    /* The inner coroutine waits on the runtime: pass the wait up to the task. */
    lua_pop(co, nres);
    if (!lua_isyieldable(L))
      return luaL_error(L, "a coroutine waited on the runtime (llm.chat, task.sleep, ...) but "
                           "was resumed from a context that cannot yield");
    lua_pushlightuserdata(L, (void *)&wait_sentinel);
    return lua_yieldk(L, 1, (lua_KContext)wrap, co_continue);
  }
  if (status == LUA_OK || status == LUA_YIELD) {
    if (!lua_checkstack(L, nres + 1)) {
      lua_pop(co, nres);
      return luaL_error(L, "too many results to resume");
    }
    if (!wrap)
      lua_pushboolean(L, 1);
    lua_xmove(co, L, nres);
    return nres + !wrap;
  }
  lua_xmove(co, L, 1); /* error object */
  struct ml_rt *rt = rt_from_lua(L);
  if (rt->current && rt->current->cancel_requested) {
    lua_resetthread(co);
    push_cancel_error(L, rt->current);
    return lua_error(L);
  }
  if (wrap) {
    lua_resetthread(co);
    if (lua_type(L, -1) == LUA_TSTRING) { /* add where the wrapped function was called */
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

static int co_check_resumable(lua_State *L, lua_State *co) {
  if (co == L)
    return luaL_error(L, "cannot resume non-suspended coroutine"), 0;
  lua_getfield(L, LUA_REGISTRYINDEX, TASK_THREADS_KEY);
  lua_pushthread(co);
  lua_xmove(co, L, 1);
  int is_task = lua_rawget(L, -2) != LUA_TNIL;
  lua_pop(L, 2);
  if (is_task)
    return luaL_error(L, "cannot resume the coroutine of a task; use the task handle "
                         "(join, cancel) instead"), 0;
  int st = lua_status(co);
  lua_Debug ar;
  if (st == LUA_OK) {
    if (lua_getstack(co, 0, &ar))
      return -1; /* running or normal */
    if (lua_gettop(co) == 0)
      return -2; /* dead */
    return 1;
  }
  if (st == LUA_YIELD)
    return 1;
  return -2;
}

static int l_co_resume(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co != NULL, 1, "coroutine");
  int ok = co_check_resumable(L, co);
  if (ok < 0) {
    lua_pushboolean(L, 0);
    lua_pushstring(L, ok == -2 ? "cannot resume dead coroutine"
                               : "cannot resume non-suspended coroutine");
    return 2;
  }
  int narg = lua_gettop(L) - 1;
  if (!lua_checkstack(co, narg))
    return luaL_error(L, "too many arguments to resume");
  lua_xmove(L, co, narg);
  return co_step(L, co, narg, 0);
}

static int l_co_wrapped(lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(1));
  int ok = co_check_resumable(L, co);
  if (ok < 0)
    return luaL_error(L, ok == -2 ? "cannot resume dead coroutine"
                                  : "cannot resume non-suspended coroutine");
  int narg = lua_gettop(L);
  if (!lua_checkstack(co, narg))
    return luaL_error(L, "too many arguments to resume");
  lua_xmove(L, co, narg);
  return co_step(L, co, narg, 1);
}

static int l_co_wrap(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_State *co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushcclosure(L, l_co_wrapped, 1);
  return 1;
}

/* ---------------------------------------------------------------------------------- */

void sched_open(lua_State *L, struct ml_rt *rt) {
  static const luaL_Reg task_methods[] = {
      {"join", l_join}, {"cancel", l_cancel}, {"status", l_status}, {"id", l_id}, {NULL, NULL}};
  static const luaL_Reg task_funcs[] = {
      {"spawn", l_spawn}, {"current", l_current}, {"sleep", l_sleep}, {"park", l_park},
      {"unpark", l_unpark}, {"error", l_error}, {NULL, NULL}};

  luaL_newmetatable(L, TASK_MT);
  luaL_newlib(L, task_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_task_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushcfunction(L, l_task_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);

  luaL_newmetatable(L, ERROR_MT);
  lua_pushcfunction(L, error_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);

  lua_newtable(L); /* weak set of task threads */
  lua_createtable(L, 0, 1);
  lua_pushstring(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, TASK_THREADS_KEY);

  luaL_newlib(L, task_funcs);
  lua_setglobal(L, "task");

  lua_pushcfunction(L, l_pcall);
  lua_setglobal(L, "pcall");
  lua_pushcfunction(L, l_xpcall);
  lua_setglobal(L, "xpcall");
  lua_getglobal(L, "coroutine");
  lua_pushcfunction(L, l_co_resume);
  lua_setfield(L, -2, "resume");
  lua_pushcfunction(L, l_co_wrap);
  lua_setfield(L, -2, "wrap");
  lua_pop(L, 1);
  (void)rt;
}

/* moonloop repl: the driver. It owns the runtime, reads lines (libedit on a terminal, plain
 * lines from a pipe or file), hands them to lua/moonloop/repl.lua, which compiles them and
 * runs each as a task, and waits for that task to say it is done before reading the next.
 *
 * Modes. While a line's work runs, the prompt is away and the terminal is back in cooked
 * mode, so Ctrl-C is a SIGINT: it cancels the line's task (a request it waits on is removed
 * at once and the call raises a "cancelled" error). A line stuck in pure Lua (a loop with no
 * wait) cannot be reached from the loop, so the signal handler also arms a one-shot debug
 * hook on the task's thread, the only Lua call that is safe there, and the hook cancels
 * the task from inside. A third Ctrl-C on the same line quits the process. At the prompt,
 * Ctrl-C drops the line being typed. Ctrl-D, end of input, SIGTERM, SIGHUP and :quit
 * leave: the attached run (if any) is cancelled, so its finalizer writes the dataset files
 * and it stays resumable, then every other task is cancelled and the loop stops.
 *
 * Continuations never run inside a task: a task that finishes a line calls done(), which
 * only arms a zero timer; the timer (a plain loop callback) shows the next prompt or feeds
 * the next line. */
#include "repl/repl.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>
#include <uv.h>

#include "core/rt.h"
#include "core/sched.h"
#include "llm/config.h"
#include "llm/llm.h"
#include "moonloop/moonloop.h"
#include "repl/term.h"

#define TASK_MT "moonloop.task" /* the task handle's metatable (core/sched.c) */
#define PROMPT1 "> "
#define PROMPT2 ">> "
#define EXIT_GRACE_MS 3000 /* how long cancelled tasks get to finish when leaving */

enum input_kind { IN_NONE, IN_EDITOR, IN_STREAM, IN_FILE };

struct repl {
  struct ml_rt *rt;
  int interactive; /* libedit on a terminal */
  int mod_ref;     /* the moonloop.repl module table */
  int continuation;
  volatile sig_atomic_t evaluating; /* a line's work is running (read by the signal handler) */
  int leaving, exiting;
  int exit_code;
  struct ml_task *volatile watched; /* the current line's task, for Ctrl-C */
  int watched_ref;
  /* Set by the signal handler: a Ctrl-C that arrived while a line ran (for that line) or
   * while the prompt was shown (for the line being typed). */
  volatile sig_atomic_t sigint_eval, sigint_edit, leave_pending, interrupts, leave_signals;
  uv_async_t async;
  uv_timer_t next_timer; /* continues after a line from a plain loop callback */
  uv_timer_t exit_timer;
  uint64_t exit_deadline;

  /* Input without the editor: a stream (pipe, socket, terminal) or a file read in chunks. */
  enum input_kind in_kind;
  union {
    uv_pipe_t pipe;
    uv_tty_t tty;
  } in;
  uv_fs_t fs_req;
  int fs_busy;
  int64_t fs_offset;
  char fs_buf[65536];
  char *ibuf;
  size_t ilen, icap;
  int in_eof, in_started;
  int stdin_flags;
};

static struct repl *the_repl; /* for the signal handler */

static void next_input(struct repl *r);
static void begin_leave(struct repl *r);

/* ---------------------------------------------------------------------------------- */
/* Calling the Lua half (moonloop.repl) from loop callbacks, never from inside a task */

static int push_fn(struct repl *r, const char *name) {
  lua_State *L = r->rt->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, r->mod_ref);
  lua_getfield(L, -1, name);
  lua_remove(L, -2);
  return lua_isfunction(L, -1);
}

static int call_lua(struct repl *r, int nargs, int nres) {
  lua_State *L = r->rt->L;
  if (lua_pcall(L, nargs, nres, 0) != LUA_OK) {
    fprintf(stderr, "moonloop: repl: %s\n", luaL_tolstring(L, -1, NULL));
    lua_pop(L, 2);
    return -1;
  }
  return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Lines */

static void unwatch(struct repl *r) {
  if (r->watched_ref != LUA_NOREF) {
    r->watched = NULL;
    luaL_unref(r->rt->L, LUA_REGISTRYINDEX, r->watched_ref);
    r->watched_ref = LUA_NOREF;
  }
  r->interrupts = 0;
}

/* A complete line from the editor or the input (malloc'd; NULL: end of input). */
static void handle_line(struct repl *r, char *line) {
  if (r->leaving) {
    free(line);
    return;
  }
  if (line == NULL) {
    begin_leave(r);
    return;
  }
  lua_State *L = r->rt->L;
  const char *status = "error";
  if (push_fn(r, "line")) {
    lua_pushstring(L, line);
    if (call_lua(r, 1, 2) == 0) {
      status = lua_tostring(L, -2) ? lua_tostring(L, -2) : "error";
      if (r->interactive && lua_type(L, -1) == LUA_TSTRING)
        term_history_add(lua_tostring(L, -1));
      if (strcmp(status, "more") == 0)
        r->continuation = 1;
      else
        r->continuation = 0;
      if (strcmp(status, "run") == 0)
        r->evaluating = 1;
      lua_pop(L, 2);
    }
  } else {
    lua_pop(L, 1);
  }
  free(line);
  if (!r->evaluating && r->interactive)
    next_input(r);
}

static void on_editor_line(char *line, void *ud) {
  handle_line(ud, line);
}

static char **complete(const char *word, const char *line, void *ud) {
  struct repl *r = ud;
  lua_State *L = r->rt->L;
  if (r->rt->current != NULL || !push_fn(r, "complete")) {
    if (r->rt->current == NULL)
      lua_pop(L, 1);
    return NULL;
  }
  lua_pushstring(L, word);
  lua_pushstring(L, line);
  if (call_lua(r, 2, 1) != 0)
    return NULL;
  char **out = NULL;
  if (lua_istable(L, -1)) {
    size_t n = lua_rawlen(L, -1);
    if (n > 2000)
      n = 2000;
    out = calloc(n + 1, sizeof *out);
    size_t k = 0;
    for (size_t i = 1; out && i <= n; i++) {
      lua_rawgeti(L, -1, (lua_Integer)i);
      if (lua_type(L, -1) == LUA_TSTRING)
        out[k++] = strdup(lua_tostring(L, -1));
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  return out;
}

/* ---------------------------------------------------------------------------------- */
/* Input without the editor: lines from a pipe, a file or a terminal that is not ours */

static void feed_lines(struct repl *r) {
  while (!r->evaluating && !r->leaving) {
    char *nl = r->ibuf ? memchr(r->ibuf, '\n', r->ilen) : NULL;
    size_t len;
    if (nl) {
      len = (size_t)(nl - r->ibuf);
    } else if (r->in_eof && r->ilen > 0) {
      len = r->ilen; /* the last line had no newline */
    } else if (r->in_eof) {
      begin_leave(r);
      return;
    } else {
      return; /* wait for more */
    }
    char *line = malloc(len + 1);
    if (line == NULL)
      return;
    memcpy(line, r->ibuf, len);
    line[len] = '\0';
    if (len > 0 && line[len - 1] == '\r')
      line[len - 1] = '\0';
    size_t used = nl ? len + 1 : len;
    memmove(r->ibuf, r->ibuf + used, r->ilen - used);
    r->ilen -= used;
    handle_line(r, line);
  }
}

static void input_append(struct repl *r, const char *buf, size_t n) {
  if (r->ilen + n > r->icap) {
    size_t cap = r->icap ? r->icap : 8192;
    while (cap < r->ilen + n)
      cap *= 2;
    char *p = realloc(r->ibuf, cap);
    if (p == NULL)
      return;
    r->ibuf = p;
    r->icap = cap;
  }
  memcpy(r->ibuf + r->ilen, buf, n);
  r->ilen += n;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct repl *r = h->data;
  (void)suggested;
  buf->base = r->fs_buf;
  buf->len = sizeof r->fs_buf;
}

static void on_stream_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  struct repl *r = s->data;
  if (n > 0)
    input_append(r, buf->base, (size_t)n);
  if (n < 0) {
    r->in_eof = 1;
    uv_read_stop(s);
  }
  feed_lines(r);
}

static void start_file_read(struct repl *r);

static void on_file_read(uv_fs_t *req) {
  struct repl *r = req->data;
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  r->fs_busy = 0;
  if (r->exiting)
    return;
  if (n > 0) {
    input_append(r, r->fs_buf, (size_t)n);
    r->fs_offset += n;
    start_file_read(r);
  } else {
    r->in_eof = 1;
  }
  feed_lines(r);
}

static void start_file_read(struct repl *r) {
  uv_buf_t b = uv_buf_init(r->fs_buf, sizeof r->fs_buf);
  r->fs_req.data = r;
  if (uv_fs_read(&r->rt->loop, &r->fs_req, 0, &b, 1, -1, on_file_read) == 0)
    r->fs_busy = 1;
  else
    r->in_eof = 1;
}

static void start_input(struct repl *r) {
  if (r->in_started)
    return;
  r->in_started = 1;
  uv_loop_t *loop = &r->rt->loop;
  r->stdin_flags = fcntl(0, F_GETFL);
  uv_handle_type type = uv_guess_handle(0);
  int rc = -1;
  if (type == UV_TTY) {
    rc = uv_tty_init(loop, &r->in.tty, 0, 1);
    if (rc == 0)
      r->in_kind = IN_STREAM;
  } else if (type == UV_NAMED_PIPE || type == UV_TCP) {
    rc = uv_pipe_init(loop, &r->in.pipe, 0);
    if (rc == 0 && (rc = uv_pipe_open(&r->in.pipe, 0)) != 0)
      uv_close((uv_handle_t *)&r->in.pipe, NULL);
    else if (rc == 0)
      r->in_kind = IN_STREAM;
  }
  if (r->in_kind == IN_STREAM) {
    uv_stream_t *s = (uv_stream_t *)&r->in;
    s->data = r;
    uv_read_start(s, on_alloc, on_stream_read);
  } else {
    r->in_kind = IN_FILE; /* regular files, /dev/null, anything epoll cannot watch */
    start_file_read(r);
  }
}

static void stop_input(struct repl *r) {
  if (r->in_kind == IN_STREAM) {
    uv_handle_t *h = (uv_handle_t *)&r->in;
    if (!uv_is_closing(h))
      uv_close(h, NULL);
    if (r->stdin_flags >= 0)
      fcntl(0, F_SETFL, r->stdin_flags);
  }
  r->in_kind = IN_NONE;
}

/* ---------------------------------------------------------------------------------- */
/* The next prompt or line, from a loop callback */

static void next_input(struct repl *r) {
  if (r->leaving || r->evaluating)
    return;
  if (r->interactive) {
    term_prompt(r->continuation ? PROMPT2 : PROMPT1);
  } else {
    start_input(r);
    feed_lines(r);
  }
}

static void on_next_timer(uv_timer_t *t) {
  next_input(t->data);
}

/* ---------------------------------------------------------------------------------- */
/* Leaving */

static void on_exit_timer(uv_timer_t *t) {
  struct repl *r = t->data;
  if (r->rt->live_tasks == 0 || uv_now(&r->rt->loop) >= r->exit_deadline) {
    uv_timer_stop(t);
    uv_stop(&r->rt->loop);
  }
}

static void finish(struct repl *r) {
  if (r->exiting)
    return;
  r->exiting = 1;
  r->leaving = 1;
  if (r->interactive)
    term_unprompt();
  stop_input(r);
  sched_cancel_all(r->rt);
  r->exit_deadline = uv_now(&r->rt->loop) + EXIT_GRACE_MS;
  uv_timer_start(&r->exit_timer, on_exit_timer, 10, 10);
}

static void begin_leave(struct repl *r) {
  if (r->leaving)
    return;
  r->leaving = 1;
  if (r->interactive)
    term_unprompt();
  if (r->watched)
    sched_cancel(r->watched);
  if (!push_fn(r, "leave")) {
    lua_pop(r->rt->L, 1);
    finish(r);
  } else if (call_lua(r, 0, 0) != 0) {
    finish(r);
  }
}

/* ---------------------------------------------------------------------------------- */
/* Signals */

static void interrupt_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  struct ml_rt *rt = rt_from_lua(L);
  struct ml_task *t = rt->current;
  if (t == NULL || t->co != L || t->cancel_requested)
    return; /* not running as a task now, or the cancellation is already on its way */
  sched_cancel(t);
  sched_check_cancel(L, t); /* raises the cancellation error */
}

static void hard_exit(const char *msg) {
  term_restore_now();
  ssize_t w = write(term_fd(), msg, strlen(msg));
  (void)w;
  _exit(ML_EXIT_INTERRUPTED);
}

static void on_signal(int sig) {
  struct repl *r = the_repl;
  if (r == NULL)
    _exit(ML_EXIT_INTERRUPTED);
  if (sig != SIGINT) {
    if (r->leave_signals++ > 0)
      hard_exit("\nmoonloop: terminated\n");
    r->leave_pending = 1;
    uv_async_send(&r->async);
    return;
  }
  struct ml_task *t = r->watched;
  if (!r->evaluating) {
    r->sigint_edit = 1;
    uv_async_send(&r->async);
    return;
  }
  r->sigint_eval = 1;
  if (t != NULL) {
    int n = ++r->interrupts;
    if (n >= 3)
      hard_exit("\nmoonloop: quit (Ctrl-C three times); a run in progress is resumable\n");
    if (n == 2) {
      static const char msg[] = "\n(still stopping; press Ctrl-C once more to quit moonloop)\n";
      ssize_t w = write(term_fd(), msg, sizeof msg - 1);
      (void)w;
    }
    lua_State *co = t->co;
    if (co != NULL) /* a line stuck in pure Lua: cancel it from inside */
      lua_sethook(co, interrupt_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);
  }
  uv_async_send(&r->async);
}

static void on_async(uv_async_t *a) {
  struct repl *r = a->data;
  if (r->leave_pending) {
    r->leave_pending = 0;
    begin_leave(r);
  }
  if (r->sigint_eval) {
    r->sigint_eval = 0;
    struct ml_task *t = r->watched;
    if (r->evaluating && t != NULL) { /* else the line ended meanwhile: nothing to do */
      if (t->co)
        lua_sethook(t->co, NULL, 0, 0); /* it is not running: the loop is */
      sched_cancel(t);
    }
  }
  if (!r->sigint_edit)
    return;
  r->sigint_edit = 0;
  if (r->interactive && term_editing()) {
    int empty = term_cancel_line();
    if (r->continuation) {
      r->continuation = 0;
      if (push_fn(r, "reset"))
        call_lua(r, 0, 0);
      else
        lua_pop(r->rt->L, 1);
    } else if (empty) {
      fputs("(to leave, press Ctrl-D or type :quit)\n", stdout);
      fflush(stdout);
    }
    next_input(r);
  } else if (!r->interactive && !r->evaluating) {
    begin_leave(r);
  }
}

/* ---------------------------------------------------------------------------------- */
/* moonloop.repl_c: what the Lua half calls */

static struct repl *repl_of(lua_State *L) {
  return lua_touserdata(L, lua_upvalueindex(1));
}

/* done(): the current line's work is over; continue from the loop. */
static int l_done(lua_State *L) {
  struct repl *r = repl_of(L);
  unwatch(r);
  r->evaluating = 0;
  fflush(stdout);
  if (!r->leaving)
    uv_timer_start(&r->next_timer, on_next_timer, 0, 0);
  return 0;
}

/* watch(handle | nil): the task Ctrl-C cancels. */
static int l_watch(lua_State *L) {
  struct repl *r = repl_of(L);
  if (r->interrupts > 0 && r->interactive) {
    fputs("^C\n", stdout); /* the line was interrupted (the terminal does not echo now) */
    fflush(stdout);
  }
  unwatch(r);
  if (!lua_isnoneornil(L, 1)) {
    struct ml_task *t = luaL_checkudata(L, 1, TASK_MT);
    lua_pushvalue(L, 1);
    r->watched_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    r->watched = t;
  }
  return 0;
}

/* quit(): cancel what is left and stop the loop. */
static int l_quit(lua_State *L) {
  finish(repl_of(L));
  return 0;
}

/* leave(): as Ctrl-D (used by :quit); runs after the current line is done. */
static void on_leave_timer(uv_timer_t *t) {
  begin_leave(t->data);
}

static int l_leave(lua_State *L) {
  struct repl *r = repl_of(L);
  r->leave_pending = 0;
  uv_timer_start(&r->exit_timer, on_leave_timer, 0, 0);
  return 0;
}

static int l_interactive(lua_State *L) {
  lua_pushboolean(L, repl_of(L)->interactive);
  return 1;
}

/* edit(path) -> exit status: run $VISUAL / $EDITOR (default vi) on the terminal and wait.
 * Output from other tasks is held until it exits. */
struct edit_wait {
  uv_process_t proc;
  struct ml_task *task; /* NULL once the waiting task gave up */
  int64_t status;
  int exited;
};

static void edit_closed(uv_handle_t *h) {
  free(h->data);
}

static void edit_exit(uv_process_t *p, int64_t status, int sig) {
  struct edit_wait *w = p->data;
  w->status = sig ? 128 + sig : status;
  w->exited = 1;
  term_restore_now(); /* whatever mode the editor left the terminal in */
  term_hold(0);
  if (w->task)
    sched_wake(w->task);
  uv_close((uv_handle_t *)p, edit_closed);
}

static void edit_cleanup(struct ml_task *t, void *data) {
  (void)t;
  struct edit_wait *w = data;
  w->task = NULL;
  if (!w->exited)
    uv_process_kill(&w->proc, SIGTERM);
}

static int edit_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  struct edit_wait *w = (struct edit_wait *)ctx;
  struct ml_task *me = rt_from_lua(L)->current;
  sched_check_cancel(L, me);
  lua_pushinteger(L, (lua_Integer)w->status);
  return 1;
}

static int l_edit(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct ml_task *me = sched_check_waitable(L, "the editor");
  const char *ed = getenv("VISUAL");
  if (ed == NULL || ed[0] == '\0')
    ed = getenv("EDITOR");
  if (ed == NULL || ed[0] == '\0')
    ed = "vi";
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "%s \"$1\"", ed); /* EDITOR may carry options: "code --wait" */
  char *args[] = {"/bin/sh", "-c", cmd, "sh", (char *)path, NULL};
  struct edit_wait *w = calloc(1, sizeof *w);
  if (w == NULL)
    return luaL_error(L, "out of memory");
  uv_stdio_container_t stdio[3];
  for (int i = 0; i < 3; i++) {
    stdio[i].flags = UV_INHERIT_FD;
    stdio[i].data.fd = i;
  }
  uv_process_options_t po;
  memset(&po, 0, sizeof po);
  po.file = args[0];
  po.args = args;
  po.exit_cb = edit_exit;
  po.stdio_count = 3;
  po.stdio = stdio;
  w->proc.data = w;
  w->task = me;
  term_hold(1);
  term_restore_now(); /* the terminal as it was before moonloop, echo included */
  int rc = uv_spawn(&rt_from_lua(L)->loop, &w->proc, &po);
  if (rc != 0) {
    term_hold(0);
    free(w);
    return luaL_error(L, "cannot start the editor '%s': %s", ed, uv_strerror(rc));
  }
  return sched_wait(L, me, "the editor", edit_cleanup, w, (lua_KContext)w, edit_k);
}

static void open_bridge(struct repl *r) {
  static const luaL_Reg funcs[] = {{"done", l_done}, {"watch", l_watch},
                                   {"quit", l_quit}, {"leave", l_leave},
                                   {"edit", l_edit}, {"interactive", l_interactive},
                                   {NULL, NULL}};
  lua_State *L = r->rt->L;
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "loaded");
  luaL_newlibtable(L, funcs);
  lua_pushlightuserdata(L, r);
  luaL_setfuncs(L, funcs, 1);
  lua_pushstring(L, ML_VERSION);
  lua_setfield(L, -2, "version");
  lua_setfield(L, -2, "moonloop.repl_c");
  lua_pop(L, 2);
}

/* ---------------------------------------------------------------------------------- */
/* Set-up */

static int mkdirs(char *path) {
  for (char *p = path + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    int rc = mkdir(path, 0700);
    *p = '/';
    if (rc != 0 && errno != EEXIST)
      return -1;
  }
  return (mkdir(path, 0700) == 0 || errno == EEXIST) ? 0 : -1;
}

/* $XDG_STATE_HOME/moonloop/history, else ~/.local/state/moonloop/history. */
static int history_path(char *out, size_t n) {
  const char *state = getenv("XDG_STATE_HOME");
  const char *home = getenv("HOME");
  char dir[3800];
  if (state && state[0] == '/')
    snprintf(dir, sizeof dir, "%s/moonloop", state);
  else if (home && home[0])
    snprintf(dir, sizeof dir, "%s/.local/state/moonloop", home);
  else
    return -1;
  if (mkdirs(dir) != 0)
    return -1;
  snprintf(out, n, "%s/history", dir);
  return 0;
}

int repl_main(const struct repl_options *o) {
  static struct repl r; /* static: the signal handler and the loop's handles point into it */
  memset(&r, 0, sizeof r);
  r.mod_ref = r.watched_ref = LUA_NOREF;
  r.stdin_flags = -1;
  r.interactive = !o->no_editor && term_open() == 0;

  char err[1024];
  struct llm_config cfg;
  if (o->offline) {
    llm_config_offline(&cfg);
  } else if (llm_config_load(&cfg, o->config_path, err, sizeof err) != 0) {
    term_close();
    fprintf(stderr, "moonloop: config: %s\n", err);
    return ML_EXIT_USAGE;
  }
  struct ml_rt *rt = calloc(1, sizeof *rt);
  if (rt == NULL) {
    llm_config_free(&cfg);
    term_close();
    fprintf(stderr, "moonloop: out of memory\n");
    return ML_EXIT_FAILURE;
  }
  if (rt_init(rt, err, sizeof err) != 0 || llm_open(rt->L, rt, &cfg) != 0) {
    llm_config_free(&cfg);
    term_close();
    fprintf(stderr, "moonloop: %s\n", err);
    rt_close(rt);
    free(rt);
    return ML_EXIT_FAILURE;
  }
  r.rt = rt;
  rt->log_level = (enum ml_log_level)o->log_level;
  lua_State *L = rt->L;
  rt_set_cli_options(L, o->run_options);
  open_bridge(&r);
  if (rt_require(rt, "moonloop.task", err, sizeof err) != 0) {
    term_close();
    fprintf(stderr,
            "moonloop: %s (cannot load the runtime's Lua library: set MOONLOOP_LUA_DIR "
            "to the directory holding moonloop/task.lua)\n",
            err);
    rt_close(rt);
    free(rt);
    return ML_EXIT_FAILURE;
  }
  lua_getglobal(L, "require");
  lua_pushliteral(L, "moonloop.repl");
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    term_close();
    fprintf(stderr, "moonloop: cannot load moonloop/repl.lua: %s\n", lua_tostring(L, -1));
    rt_close(rt);
    free(rt);
    return ML_EXIT_FAILURE;
  }
  r.mod_ref = luaL_ref(L, LUA_REGISTRYINDEX);

  uv_loop_t *loop = &rt->loop;
  uv_async_init(loop, &r.async, on_async); /* stays referenced: the loop runs until we leave */
  r.async.data = &r;
  uv_timer_init(loop, &r.next_timer);
  r.next_timer.data = &r;
  uv_timer_init(loop, &r.exit_timer);
  r.exit_timer.data = &r;
  if (r.interactive) {
    char hist[4096];
    int have_hist = history_path(hist, sizeof hist) == 0;
    if (term_start(loop, have_hist ? hist : NULL, on_editor_line, complete, &r) != 0) {
      term_close();
      r.interactive = 0;
    }
  }

  the_repl = &r;
  struct sigaction sa, old_int, old_term, old_hup;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  sigaction(SIGHUP, &sa, &old_hup);

  /* The first piece of work: the banner and the script or recipe, if any. */
  r.evaluating = 1;
  if (push_fn(&r, "start")) {
    lua_pushboolean(L, r.interactive);
    if (o->script)
      lua_pushstring(L, o->script);
    else
      lua_pushnil(L);
    for (int i = 0; i < o->argc; i++)
      lua_pushstring(L, o->argv[i]);
    if (call_lua(&r, 2 + o->argc, 0) != 0)
      finish(&r);
  } else {
    lua_pop(L, 1);
    finish(&r);
  }
  sched_drain(rt);
  uv_run(loop, UV_RUN_DEFAULT);

  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  sigaction(SIGHUP, &old_hup, NULL);
  the_repl = NULL;
  term_close();
  stop_input(&r);
  unwatch(&r);
  rt_close(rt);
  free(rt);
  free(r.ibuf);
  return r.exit_code;
}

/* The `proc` Lua module (trusted code only): proc.run runs a command with uv_spawn and
 * collects its output through pipes while the calling task waits and other tasks run.
 *
 * Process lifetime. The child starts in a new session (UV_PROCESS_DETACHED), so it leads its
 * own process group and every signal below goes to the whole group. A timeout or a task
 * cancellation sends SIGKILL to the group. When the command exits on its own, what it left
 * running in its group is killed too, so a stray background job cannot hold the pipes open
 * or outlive the call; output still open 1 s after that is abandoned. On cancellation the
 * cleanup reaps the killed child at once (waitpid), so no zombie or handle is left behind.
 *
 * Limits. uv_spawn has no hook that runs between fork and exec, so limits are applied by
 * prefixing the command with util-linux tools that set them and then exec it in place:
 *   memory_mb, cpu_s  ->  prlimit --as=BYTES --cpu=SECONDS -- ...   (RLIMIT_AS, RLIMIT_CPU)
 *   no_network        ->  unshare --net [--map-root-user] -- ...    (an empty network
 *                         namespace: only a loopback device that is down)
 * Each tool is looked for and tried once per runtime (`--map-root-user` is added when not
 * root, or when plain `--net` is refused); containers often forbid namespaces. A requested
 * limit that cannot be applied is an error saying which and why: the command never runs
 * unconfined by accident. */
#include "lua/modules.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lauxlib.h>
#include <uv.h>

#include "core/rt.h"
#include "core/sched.h"

extern char **environ;

#define RUN_MT "moonloop.proc.run"
#define DEFAULT_MAX_OUTPUT ((size_t)1 << 20)
#define READ_CHUNK 65536
/* How long output may stay open after the command exited and its group was killed (a
 * process that left the group can still hold the pipes). */
#define DRAIN_GRACE_MS 1000
#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"
#define TOOL_DIRS "/usr/bin:/bin:/usr/sbin:/sbin"

/* ---------------------------------------------------------------------------------- */
/* Probing the limit tools (once per module instance; kept in an upvalue, not a global) */

enum { PROBE_UNKNOWN = 0, PROBE_OK, PROBE_FAILED };

struct probe {
  int state;
  char tool[PATH_MAX]; /* resolved path of prlimit or unshare */
  int map_root;        /* unshare needs --map-root-user here */
  char why[1024];      /* when FAILED: the reason, for the error message */
};

struct probes {
  struct probe prlimit, unshare;
};

/* Find an executable regular file named `name` in the ':'-separated dirs; relative dirs
 * are taken relative to `cwd` when given. Returns 0 with the path in out, or an errno:
 * ENOENT (nowhere) or EACCES (found, but not an executable file). */
static int search_path(const char *name, const char *dirs, const char *cwd, char *out,
                       size_t outlen) {
  int err = ENOENT;
  const char *p = dirs;
  for (;;) {
    const char *end = strchr(p, ':');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    int w;
    if (n == 0)
      w = cwd ? snprintf(out, outlen, "%s/%s", cwd, name) : snprintf(out, outlen, "%s", name);
    else if (p[0] != '/' && cwd)
      w = snprintf(out, outlen, "%s/%.*s/%s", cwd, (int)n, p, name);
    else
      w = snprintf(out, outlen, "%.*s/%s", (int)n, p, name);
    if (w > 0 && (size_t)w < outlen) {
      struct stat st;
      if (stat(out, &st) == 0) {
        if (S_ISREG(st.st_mode) && access(out, X_OK) == 0)
          return 0;
        err = EACCES;
      }
    }
    if (end == NULL)
      break;
    p = end + 1;
  }
  return err;
}

/* Run argv to completion with stdout discarded; returns its exit status (or -1 when it
 * could not start or died by a signal) and the first line of its stderr in why. Blocking,
 * but only used once per runtime for a command that exits at once. */
static int run_probe(char *const argv[], char *why, size_t whylen) {
  int fds[2] = {-1, -1}, status = 0, rc = -1;
  why[0] = '\0';
  if (pipe(fds) != 0) {
    snprintf(why, whylen, "pipe: %s", strerror(errno));
    return -1;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  pid_t pid;
  int err = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (err != 0) {
    snprintf(why, whylen, "cannot start %s: %s", argv[0], strerror(err));
    goto done;
  }
  /* The probe writes a line at most, far below the pipe's capacity: read after exit. */
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  ssize_t n;
  while ((n = read(fds[0], why, whylen - 1)) < 0 && errno == EINTR)
    ;
  why[n > 0 ? n : 0] = '\0';
  why[strcspn(why, "\n")] = '\0';
  if (WIFEXITED(status))
    rc = WEXITSTATUS(status);
  else if (why[0] == '\0')
    snprintf(why, whylen, "killed by signal %d", WTERMSIG(status));
done:
  close(fds[0]);
  return rc;
}

static void probe_prlimit(struct probe *p) {
  char truebin[PATH_MAX];
  const char *path = getenv("PATH");
  p->state = PROBE_FAILED;
  if (search_path("prlimit", path ? path : "", NULL, p->tool, sizeof p->tool) != 0 &&
      search_path("prlimit", TOOL_DIRS, NULL, p->tool, sizeof p->tool) != 0) {
    snprintf(p->why, sizeof p->why, "prlimit (util-linux) was not found in PATH or in " TOOL_DIRS);
    return;
  }
  if (search_path("true", TOOL_DIRS, NULL, truebin, sizeof truebin) != 0) {
    snprintf(p->why, sizeof p->why, "no 'true' binary to test prlimit with");
    return;
  }
  char *argv[] = {p->tool, "--cpu=100000", "--", truebin, NULL};
  char out[256];
  if (run_probe(argv, out, sizeof out) != 0) {
    snprintf(p->why, sizeof p->why, "'%.300s --cpu=100000 -- true' failed here: %.300s", p->tool,
             out[0] ? out : "no message");
    return;
  }
  p->state = PROBE_OK;
}

static void probe_unshare(struct probe *p) {
  char truebin[PATH_MAX];
  const char *path = getenv("PATH");
  p->state = PROBE_FAILED;
  if (search_path("unshare", path ? path : "", NULL, p->tool, sizeof p->tool) != 0 &&
      search_path("unshare", TOOL_DIRS, NULL, p->tool, sizeof p->tool) != 0) {
    snprintf(p->why, sizeof p->why, "unshare (util-linux) was not found in PATH or in " TOOL_DIRS);
    return;
  }
  if (search_path("true", TOOL_DIRS, NULL, truebin, sizeof truebin) != 0) {
    snprintf(p->why, sizeof p->why, "no 'true' binary to test unshare with");
    return;
  }
  char out[256] = "";
  if (geteuid() == 0) { /* root may create a network namespace directly */
    char *argv[] = {p->tool, "--net", "--", truebin, NULL};
    if (run_probe(argv, out, sizeof out) == 0) {
      p->map_root = 0;
      p->state = PROBE_OK;
      return;
    }
  }
  char out2[256];
  char *argv[] = {p->tool, "--net", "--map-root-user", "--", truebin, NULL};
  if (run_probe(argv, out2, sizeof out2) == 0) {
    p->map_root = 1;
    p->state = PROBE_OK;
    return;
  }
  snprintf(p->why, sizeof p->why,
           "network namespaces are not available here ('unshare --net' failed: %.300s%s%.300s)",
           out2[0] ? out2 : "no message", out[0] ? "; as root: " : "", out);
}

/* ---------------------------------------------------------------------------------- */
/* A running command. Malloc'd, not Lua memory: libuv's close callbacks may run after the
 * Lua state is gone. Freed once every handle has closed and Lua has let go of it. */

struct out_stream {
  uv_pipe_t pipe;
  char *data;
  size_t len, cap;
  int open, eof;
};

struct proc_run {
  uv_process_t process;
  uv_pipe_t in;
  uv_timer_t timer;
  uv_write_t write_req;
  struct out_stream out[2]; /* stdout, stderr */
  char scratch[READ_CHUNK]; /* libuv reads into it; read_cb copies out at once */

  struct ml_task *task; /* to wake when done; NULL once nobody waits */
  char *stdin_data;
  size_t stdin_len, max_output;
  uint64_t start_ns, end_ns;
  int64_t exit_status;
  int term_signal;
  pid_t pid;

  unsigned pending_close; /* initialised handles whose close callback has not run */
  int process_open, in_open, timer_open;
  int spawned, exited, finished, timed_out, truncated, oom;
  int lua_owned; /* a Lua handle (struct run_ref) still points here */
};

/* The Lua side: a userdata on the waiting task's stack, so garbage collection releases the
 * run whatever way the task ends. */
struct run_ref {
  struct proc_run *r;
};

static void maybe_free(struct proc_run *r) {
  if (r->lua_owned || r->pending_close > 0)
    return;
  free(r->out[0].data);
  free(r->out[1].data);
  free(r->stdin_data);
  free(r);
}

static void on_closed(uv_handle_t *h) {
  struct proc_run *r = h->data;
  r->pending_close--;
  maybe_free(r);
}

static void close_handle(uv_handle_t *h, int *open) {
  if (*open) {
    *open = 0;
    uv_close(h, on_closed);
  }
}

/* The command is over (or abandoned): close what is still open and wake the task. */
static void finish(struct proc_run *r) {
  if (r->finished)
    return;
  r->finished = 1;
  r->end_ns = uv_hrtime();
  close_handle((uv_handle_t *)&r->in, &r->in_open);
  close_handle((uv_handle_t *)&r->out[0].pipe, &r->out[0].open);
  close_handle((uv_handle_t *)&r->out[1].pipe, &r->out[1].open);
  close_handle((uv_handle_t *)&r->timer, &r->timer_open);
  close_handle((uv_handle_t *)&r->process, &r->process_open);
  if (r->task) {
    struct ml_task *t = r->task;
    r->task = NULL;
    sched_wake(t);
  }
}

/* Stop everything now, without waking anyone: kill the group and reap the child here,
 * because a closed process handle is no longer reaped by libuv. Pure C, no Lua. */
static void run_abort(struct proc_run *r) {
  r->task = NULL;
  if (r->spawned && !r->exited) {
    kill(-r->pid, SIGKILL);
    close_handle((uv_handle_t *)&r->process, &r->process_open);
    int status;
    while (waitpid(r->pid, &status, 0) < 0 && errno == EINTR)
      ;
    r->exited = 1;
    r->term_signal = SIGKILL;
  }
  finish(r);
}

/* Lua lets go of the run (result read, or the task is gone). */
static void run_release(struct run_ref *ref) {
  struct proc_run *r = ref->r;
  if (r == NULL)
    return;
  ref->r = NULL;
  r->lua_owned = 0;
  run_abort(r);
  maybe_free(r);
}

static void done_if_drained(struct proc_run *r) {
  if (r->exited && r->out[0].eof && r->out[1].eof)
    finish(r);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct proc_run *r = h->data;
  (void)suggested;
  buf->base = r->scratch;
  buf->len = sizeof r->scratch;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct proc_run *r = s->data;
  struct out_stream *o = (uv_pipe_t *)s == &r->out[0].pipe ? &r->out[0] : &r->out[1];
  if (nread > 0) {
    size_t n = (size_t)nread, room = r->max_output - o->len;
    if (n > room) {
      r->truncated = 1; /* keep reading and dropping, so the child never blocks on a full pipe */
      n = room;
    }
    if (n > 0 && o->len + n > o->cap) {
      size_t cap = o->cap ? o->cap : 4096;
      while (cap < o->len + n)
        cap *= 2;
      if (cap > r->max_output)
        cap = r->max_output;
      char *p = realloc(o->data, cap);
      if (p == NULL) {
        r->oom = 1;
        return;
      }
      o->data = p;
      o->cap = cap;
    }
    if (n > 0)
      memcpy(o->data + o->len, buf->base, n);
    o->len += n;
  } else if (nread < 0) { /* EOF, or a read error that ends this stream all the same */
    o->eof = 1;
    close_handle((uv_handle_t *)&o->pipe, &o->open);
    done_if_drained(r);
  }
}

static void on_timer(uv_timer_t *t) {
  struct proc_run *r = t->data;
  if (!r->exited) { /* the deadline: the exit callback follows the kill */
    r->timed_out = 1;
    kill(-r->pid, SIGKILL);
  } else { /* the drain grace after exit ran out */
    finish(r);
  }
}

static void on_exit_cb(uv_process_t *p, int64_t exit_status, int term_signal) {
  struct proc_run *r = p->data;
  r->exited = 1;
  r->exit_status = exit_status;
  r->term_signal = term_signal;
  kill(-r->pid, SIGKILL); /* whatever the command left running in its group */
  close_handle((uv_handle_t *)&r->process, &r->process_open);
  if (r->out[0].eof && r->out[1].eof) {
    finish(r);
  } else if (r->timer_open) {
    uv_timer_stop(&r->timer);
    uv_timer_start(&r->timer, on_timer, DRAIN_GRACE_MS, 0);
  }
}

static void on_written(uv_write_t *req, int status) {
  struct proc_run *r = req->data;
  (void)status; /* EPIPE: the command did not read all its input, which is its business */
  close_handle((uv_handle_t *)&r->in, &r->in_open);
}

/* Wait cleanup when the task is cancelled (or the runtime shuts down). */
static void run_cleanup(struct ml_task *t, void *data) {
  (void)t;
  run_abort(data);
}

static int ref_gc(lua_State *L) {
  run_release(luaL_checkudata(L, 1, RUN_MT));
  return 0;
}

/* ---------------------------------------------------------------------------------- */
/* proc.run */

static int run_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  sched_check_cancel(L, (struct ml_task *)ctx);
  struct run_ref *ref = luaL_checkudata(L, 2, RUN_MT);
  struct proc_run *r = ref->r;
  if (r->oom) {
    run_release(ref);
    return luaL_error(L, "proc.run: out of memory while collecting the command's output");
  }
  lua_createtable(L, 0, 7);
  if (r->term_signal == 0) {
    lua_pushinteger(L, (lua_Integer)r->exit_status);
    lua_setfield(L, -2, "code");
  } else {
    lua_pushinteger(L, r->term_signal);
    lua_setfield(L, -2, "signal");
  }
  lua_pushlstring(L, r->out[0].data ? r->out[0].data : "", r->out[0].len);
  lua_setfield(L, -2, "stdout");
  lua_pushlstring(L, r->out[1].data ? r->out[1].data : "", r->out[1].len);
  lua_setfield(L, -2, "stderr");
  lua_pushboolean(L, r->timed_out);
  lua_setfield(L, -2, "timed_out");
  lua_pushboolean(L, r->truncated);
  lua_setfield(L, -2, "truncated");
  lua_pushnumber(L, (lua_Number)(r->end_ns - r->start_ns) / 1e6);
  lua_setfield(L, -2, "duration_ms");
  run_release(ref);
  return 1;
}

/* A string option (or nil); raises when it has another type or holds a NUL byte. */
static const char *opt_string(lua_State *L, int t, const char *key, size_t *len) {
  lua_getfield(L, t, key);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return NULL;
  }
  if (lua_type(L, -1) != LUA_TSTRING)
    luaL_error(L, "proc.run: %s must be a string, not a %s", key, luaL_typename(L, -1));
  const char *s = lua_tolstring(L, -1, len);
  lua_pop(L, 1); /* still referenced by the options table */
  return s;
}

/* A positive integer option within [1, max], or 0 when absent. */
static lua_Integer opt_count(lua_State *L, int t, const char *key, lua_Integer max) {
  lua_getfield(L, t, key);
  lua_Integer v = 0;
  if (!lua_isnil(L, -1)) {
    int ok = 0;
    v = lua_tointegerx(L, -1, &ok);
    if (!ok || v < 1 || v > max)
      luaL_error(L, "proc.run: %s must be an integer from 1 to %I", key, max);
  }
  lua_pop(L, 1);
  return v;
}

static void check_keys(lua_State *L, int t, const char *where, const char *const *known) {
  lua_pushnil(L);
  while (lua_next(L, t)) {
    int ok = 0;
    if (lua_type(L, -2) == LUA_TSTRING)
      for (const char *const *k = known; *k && !ok; k++)
        ok = strcmp(*k, lua_tostring(L, -2)) == 0;
    if (!ok)
      luaL_error(L, "proc.run: unknown %s '%s'", where, luaL_tolstring(L, -2, NULL));
    lua_pop(L, 1);
  }
}

/* A string or number argument without NUL bytes, as a string on the stack top. */
static const char *arg_string(lua_State *L, const char *what, lua_Integer i) {
  int type = lua_type(L, -1);
  if (type != LUA_TSTRING && type != LUA_TNUMBER)
    luaL_error(L, "proc.run: %s[%I] must be a string, not a %s", what, i, luaL_typename(L, -1));
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  if (strlen(s) != len)
    luaL_error(L, "proc.run: %s[%I] contains a NUL byte", what, i);
  return s;
}

/* Make a NULL-terminated char* array of the strings in the list at index `list` (kept
 * alive by it); the array lives in a userdata pushed on the stack. */
static char **push_cvec(lua_State *L, int list) {
  lua_Integer n = luaL_len(L, list);
  char **v = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *v, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, list, i);
    v[i - 1] = (char *)lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  v[n] = NULL;
  return v;
}

static void list_add(lua_State *L, int list, const char *s) {
  lua_pushstring(L, s);
  lua_rawseti(L, list, luaL_len(L, list) + 1);
}

/* proc.run{argv=, stdin=, timeout_ms=, cwd=, env=, max_output=, limits=} -> result table.
 * Stack while building: 1 options, 2 run_ref, 3 final argv list, 4 env map, 5 env list. */
static int l_run(lua_State *L) {
  static const char *const known[] = {"argv", "stdin",      "timeout_ms", "cwd",
                                      "env",  "max_output", "limits",     NULL};
  static const char *const known_limits[] = {"memory_mb", "cpu_s", "no_network", NULL};
  struct probes *probes = lua_touserdata(L, lua_upvalueindex(1));
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  struct ml_task *me = sched_check_waitable(L, "proc.run");
  struct ml_rt *rt = me->rt;

  struct run_ref *ref = lua_newuserdatauv(L, sizeof *ref, 0);
  ref->r = NULL;
  luaL_setmetatable(L, RUN_MT);
  check_keys(L, 1, "option", known);

  /* Scalar options. */
  size_t stdin_len = 0, cwd_len = 0;
  const char *stdin_s = opt_string(L, 1, "stdin", &stdin_len);
  if (stdin_s && stdin_len > UINT_MAX)
    return luaL_error(L, "proc.run: stdin is larger than 4 GiB");
  const char *cwd = opt_string(L, 1, "cwd", &cwd_len);
  if (cwd && strlen(cwd) != cwd_len)
    return luaL_error(L, "proc.run: cwd contains a NUL byte");
  if (cwd) {
    struct stat st;
    if (stat(cwd, &st) != 0)
      return luaL_error(L, "proc.run: cwd '%s': %s", cwd, strerror(errno));
    if (!S_ISDIR(st.st_mode))
      return luaL_error(L, "proc.run: cwd '%s' is not a directory", cwd);
  }
  lua_getfield(L, 1, "timeout_ms");
  lua_Number timeout = 0;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER || !(lua_tonumber(L, -1) > 0) || lua_tonumber(L, -1) > 1e12)
      return luaL_error(L, "proc.run: timeout_ms must be a number above 0");
    timeout = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  size_t max_output = DEFAULT_MAX_OUTPUT;
  lua_getfield(L, 1, "max_output");
  if (!lua_isnil(L, -1)) {
    int ok = 0;
    lua_Integer v = lua_tointegerx(L, -1, &ok);
    if (!ok || v < 0 || v > ((lua_Integer)1 << 32))
      return luaL_error(L, "proc.run: max_output must be an integer from 0 to 2^32 bytes");
    max_output = (size_t)v;
  }
  lua_pop(L, 1);

  /* Limits. */
  lua_Integer memory_mb = 0, cpu_s = 0;
  int no_network = 0;
  lua_getfield(L, 1, "limits");
  if (!lua_isnil(L, -1)) {
    if (!lua_istable(L, -1))
      return luaL_error(L, "proc.run: limits must be a table");
    int lt = lua_gettop(L);
    check_keys(L, lt, "limit", known_limits);
    memory_mb = opt_count(L, lt, "memory_mb", (lua_Integer)1 << 24);
    cpu_s = opt_count(L, lt, "cpu_s", 10000000);
    lua_getfield(L, lt, "no_network");
    if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
      return luaL_error(L, "proc.run: limits.no_network must be a boolean");
    no_network = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);

  /* argv, checked, and the final argument list (limit tools first) at index 3. */
  lua_getfield(L, 1, "argv");
  if (!lua_istable(L, -1))
    return luaL_error(L, "proc.run: argv must be a list of strings, e.g. {\"ls\", \"-l\"}");
  int argv_t = lua_gettop(L);
  lua_Integer argc = luaL_len(L, argv_t);
  if (argc < 1)
    return luaL_error(L, "proc.run: argv is empty; it needs at least the program to run");
  for (lua_Integer i = 1; i <= argc; i++) {
    lua_rawgeti(L, argv_t, i);
    arg_string(L, "argv", i);
    lua_pop(L, 1);
  }
  lua_newtable(L);
  lua_replace(L, 3);
  lua_settop(L, 3);

  /* The environment: PATH, HOME and LANG from ours, then the caller's additions (index 4
   * as a map, flattened to "K=V" strings at index 5). */
  lua_newtable(L);
  const char *path_env = getenv("PATH"), *home = getenv("HOME"), *lang = getenv("LANG");
  lua_pushstring(L, path_env && *path_env ? path_env : DEFAULT_PATH);
  lua_setfield(L, 4, "PATH");
  if (home) {
    lua_pushstring(L, home);
    lua_setfield(L, 4, "HOME");
  }
  lua_pushstring(L, lang && *lang ? lang : "C.UTF-8");
  lua_setfield(L, 4, "LANG");
  lua_getfield(L, 1, "env");
  if (!lua_isnil(L, -1)) {
    if (!lua_istable(L, -1))
      return luaL_error(L, "proc.run: env must be a table of NAME = \"value\"");
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      size_t klen;
      if (lua_type(L, -2) != LUA_TSTRING)
        return luaL_error(L, "proc.run: env keys must be strings");
      const char *k = lua_tolstring(L, -2, &klen);
      if (klen == 0 || strlen(k) != klen || strchr(k, '='))
        return luaL_error(L, "proc.run: env name '%s' is empty or contains '=' or NUL", k);
      int vt = lua_type(L, -1);
      if (vt != LUA_TSTRING && vt != LUA_TNUMBER)
        return luaL_error(L, "proc.run: env.%s must be a string", k);
      size_t vlen;
      const char *v = lua_tolstring(L, -1, &vlen);
      if (strlen(v) != vlen)
        return luaL_error(L, "proc.run: env.%s contains a NUL byte", k);
      lua_pushvalue(L, -2);
      lua_pushvalue(L, -2);
      lua_settable(L, 4);
      lua_pop(L, 1);
    }
  }
  lua_settop(L, 4);
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, 4)) {
    lua_pushfstring(L, "%s=%s", lua_tostring(L, -2), lua_tostring(L, -1));
    lua_rawseti(L, 5, luaL_len(L, 5) + 1);
    lua_pop(L, 1);
  }
  lua_getfield(L, 4, "PATH");
  const char *child_path = lua_tostring(L, -1);
  lua_pop(L, 1); /* kept alive by the map */

  /* Resolve the program the way the child will, to name it in the error if it is missing
   * (behind prlimit or unshare, the failure would otherwise be theirs). */
  lua_getfield(L, 1, "argv");
  lua_rawgeti(L, -1, 1);
  const char *prog = lua_tostring(L, -1);
  char exe[PATH_MAX];
  int err;
  if (strchr(prog, '/')) {
    if (prog[0] != '/' && cwd)
      snprintf(exe, sizeof exe, "%s/%s", cwd, prog);
    else
      snprintf(exe, sizeof exe, "%s", prog);
    struct stat st;
    err = stat(exe, &st) != 0                                ? errno
          : (!S_ISREG(st.st_mode) || access(exe, X_OK) != 0) ? EACCES
                                                             : 0;
    snprintf(exe, sizeof exe, "%s", prog); /* the child resolves it from its own cwd */
  } else {
    err = search_path(prog, child_path, cwd, exe, sizeof exe);
  }
  if (err == ENOENT && !strchr(prog, '/'))
    return luaL_error(L, "proc.run: '%s' was not found in PATH (%s)", prog, child_path);
  if (err == EACCES)
    return luaL_error(L, "proc.run: cannot run '%s': not an executable file", prog);
  if (err)
    return luaL_error(L, "proc.run: cannot run '%s': %s", prog, strerror(err));

  /* The limit tools go in front of the program. */
  if (memory_mb || cpu_s) {
    if (probes->prlimit.state == PROBE_UNKNOWN)
      probe_prlimit(&probes->prlimit);
    if (probes->prlimit.state != PROBE_OK)
      return luaL_error(L,
                        "proc.run: limits.%s cannot be applied: %s; refusing to run '%s' "
                        "without it",
                        memory_mb ? "memory_mb" : "cpu_s", probes->prlimit.why, prog);
    list_add(L, 3, probes->prlimit.tool);
    if (memory_mb) {
      lua_pushfstring(L, "--as=%I", memory_mb * 1024 * 1024);
      lua_rawseti(L, 3, luaL_len(L, 3) + 1);
    }
    if (cpu_s) {
      lua_pushfstring(L, "--cpu=%I", cpu_s);
      lua_rawseti(L, 3, luaL_len(L, 3) + 1);
    }
    list_add(L, 3, "--");
  }
  if (no_network) {
    if (probes->unshare.state == PROBE_UNKNOWN)
      probe_unshare(&probes->unshare);
    if (probes->unshare.state != PROBE_OK)
      return luaL_error(L,
                        "proc.run: limits.no_network cannot be applied: %s; refusing to run "
                        "'%s' with network access",
                        probes->unshare.why, prog);
    list_add(L, 3, probes->unshare.tool);
    list_add(L, 3, "--net");
    if (probes->unshare.map_root)
      list_add(L, 3, "--map-root-user");
    list_add(L, 3, "--");
  }
  size_t first = (size_t)luaL_len(L, 3);
  list_add(L, 3, exe);
  for (lua_Integer i = 2; i <= argc; i++) {
    lua_rawgeti(L, -2, i);
    lua_rawseti(L, 3, luaL_len(L, 3) + 1);
  }
  lua_settop(L, 5);
  char **args = push_cvec(L, 3);
  char **envp = push_cvec(L, 5);

  /* From here on C resources exist: every error path goes through run_release. */
  struct proc_run *r = calloc(1, sizeof *r);
  if (r == NULL)
    return luaL_error(L, "proc.run: out of memory");
  ref->r = r;
  r->lua_owned = 1;
  r->max_output = max_output;
  if (stdin_s && stdin_len > 0) {
    if ((r->stdin_data = malloc(stdin_len)) == NULL) {
      run_release(ref);
      return luaL_error(L, "proc.run: out of memory");
    }
    memcpy(r->stdin_data, stdin_s, stdin_len);
    r->stdin_len = stdin_len;
  }
  uv_loop_t *loop = &rt->loop;
  r->process.data = r->in.data = r->timer.data = r->write_req.data = r;
  uv_timer_init(loop, &r->timer);
  r->timer_open = 1;
  r->pending_close++;
  if (stdin_s) {
    uv_pipe_init(loop, &r->in, 0);
    r->in_open = 1;
    r->pending_close++;
  }
  for (int i = 0; i < 2; i++) {
    uv_pipe_init(loop, &r->out[i].pipe, 0);
    r->out[i].pipe.data = r;
    r->out[i].open = 1;
    r->pending_close++;
  }

  uv_stdio_container_t stdio[3];
  stdio[0].flags = stdin_s ? (uv_stdio_flags)(UV_CREATE_PIPE | UV_READABLE_PIPE) : UV_IGNORE;
  stdio[0].data.stream = (uv_stream_t *)&r->in;
  for (int i = 0; i < 2; i++) {
    stdio[i + 1].flags = (uv_stdio_flags)(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
    stdio[i + 1].data.stream = (uv_stream_t *)&r->out[i].pipe;
  }
  uv_process_options_t opts;
  memset(&opts, 0, sizeof opts);
  opts.exit_cb = on_exit_cb;
  opts.file = args[0];
  opts.args = args;
  opts.env = envp;
  opts.cwd = cwd;
  opts.flags = UV_PROCESS_DETACHED; /* a process group of its own, to kill as a whole */
  opts.stdio_count = 3;
  opts.stdio = stdio;
  r->start_ns = uv_hrtime();
  int rc = uv_spawn(loop, &r->process, &opts);
  r->process_open = 1; /* initialised even when the spawn failed, so it must be closed */
  r->pending_close++;
  if (rc != 0) {
    run_release(ref);
    return luaL_error(L, "proc.run: cannot start '%s': %s", args[first], uv_strerror(rc));
  }
  r->spawned = 1;
  r->pid = r->process.pid;
  for (int i = 0; i < 2; i++) {
    if (uv_read_start((uv_stream_t *)&r->out[i].pipe, on_alloc, on_read) != 0) {
      r->out[i].eof = 1;
      close_handle((uv_handle_t *)&r->out[i].pipe, &r->out[i].open);
    }
  }
  if (stdin_s) {
    uv_buf_t buf = uv_buf_init(r->stdin_data, (unsigned)r->stdin_len);
    if (r->stdin_len == 0 ||
        uv_write(&r->write_req, (uv_stream_t *)&r->in, &buf, 1, on_written) != 0)
      close_handle((uv_handle_t *)&r->in, &r->in_open); /* EOF at once */
  }
  if (timeout > 0)
    uv_timer_start(&r->timer, on_timer, (uint64_t)timeout, 0);
  r->task = me;
  lua_settop(L, 2);
  return sched_wait(L, me, "proc.run", run_cleanup, r, (lua_KContext)me, run_k);
}

/* proc.exe() -> the absolute path of the running moonloop binary, so the trusted library
 * can run moonloop itself as a fixed interpreter (behind prlimit, /proc/self/exe would
 * name prlimit). */
static int l_exe(lua_State *L) {
  char path[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0)
    return luaL_error(L, "proc.exe: cannot read /proc/self/exe: %s", strerror(errno));
  lua_pushlstring(L, path, (size_t)n);
  return 1;
}

int proc_open(lua_State *L) {
  if (luaL_newmetatable(L, RUN_MT)) {
    lua_pushcfunction(L, ref_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_createtable(L, 0, 1);
  struct probes *p = lua_newuserdatauv(L, sizeof *p, 0);
  memset(p, 0, sizeof *p);
  lua_pushcclosure(L, l_run, 1);
  lua_setfield(L, -2, "run");
  lua_pushcfunction(L, l_exe);
  lua_setfield(L, -2, "exe");
  /* AddressSanitizer reserves terabytes of address space for its shadow memory, so a
   * sanitizer build of moonloop cannot run under an address-space cap. */
#if defined(__SANITIZE_ADDRESS__)
  lua_pushboolean(L, 0);
#else
  lua_pushboolean(L, 1);
#endif
  lua_setfield(L, -2, "can_cap_memory");
  return 1;
}

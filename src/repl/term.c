/* The REPL's terminal, on libedit (BSD licence, Debian's libedit-dev) through its readline
 * callback interface: the loop watches stdin and hands each readable byte to
 * rl_callback_read_char, so editing never blocks the loop. No editor of our own: libedit
 * covers everything the REPL needs (Emacs keys, history, completion, a redraw on request).
 *
 * Output. Before the runtime exists, stdout and stderr are replaced by glibc cookie streams
 * whose write function is term_write, so print, log.*, io.write, io.stderr:write and C code
 * that writes to stderr (rt_log) all arrive here; the terminal's own descriptors stay as they
 * are (children such as $EDITOR inherit them). While a prompt is shown, output is collected
 * and written once per loop turn: clear the rows of the line being typed, write, and let
 * libedit draw the prompt and the line again (rl_forced_update_display). libedit is told not
 * to catch signals: the REPL handles SIGINT itself (Ctrl-C at the prompt drops the line).
 *
 * Pitfalls handled here: uv_poll_init makes fd 0 non-blocking, which libedit's reads do not
 * expect (and which the shell shares), so the flag is cleared again and the original flags are
 * restored at exit; a hung-up terminal stays readable with nothing to read, which libedit
 * would never report, so that case is detected (FIONREAD) and delivered as end of input. */
#define _GNU_SOURCE /* fopencookie; glibc lets stdout and stderr be assigned */
#include "repl/term.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <editline/readline.h>

/* Output collected while a prompt is shown is written at once past this size. */
#define FLUSH_NOW_BYTES (256 * 1024)
#define HISTORY_MAX 1000

static struct {
  int open;
  int fd;    /* a duplicate of stdout: the terminal */
  FILE *out; /* libedit writes here (same terminal) */
  struct termios saved;
  int saved_ok;
  int stdin_flags;
  uv_loop_t *loop;
  uv_poll_t poll;
  int poll_init, polling;
  uv_timer_t flush_timer;
  int timer_init;
  uv_signal_t winch, cont;
  int winch_init;
  int editing;     /* a prompt is shown */
  int in_callback; /* inside rl_callback_read_char */
  int held;
  int at_line_start;
  int cols;
  char prompt[256];
  char *pending;
  size_t plen, pcap;
  term_line_fn on_line;
  term_complete_fn complete;
  void *ud;
  char history_path[4096];
  int history_warned;
} T;

/* ---------------------------------------------------------------------------------- */
/* Raw output */

static void write_raw(const char *buf, size_t n) {
  if (n == 0)
    return;
  if (T.out)
    fflush(T.out);
  int fd = T.open ? T.fd : 2;
  while (n > 0) {
    ssize_t w = write(fd, buf, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN) { /* a descriptor someone made non-blocking: wait a little */
        usleep(1000);
        continue;
      }
      return;
    }
    buf += w;
    n -= (size_t)w;
    T.at_line_start = buf[-1] == '\n';
  }
}

static void update_cols(void) {
  struct winsize ws;
  if (ioctl(T.fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
    T.cols = ws.ws_col;
  else
    T.cols = 80;
}

/* Columns taken by n bytes of UTF-8 text as libedit shows them: one per character, two for a
 * control character (^X). Wide characters are rare at a Lua prompt and counted as one. */
static size_t display_width(const char *s, size_t n) {
  size_t w = 0;
  for (size_t i = 0; i < n && s[i]; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c & 0xC0) == 0x80)
      continue;
    w += (c < 0x20 || c == 0x7f) ? 2 : 1;
  }
  return w;
}

/* Clear the rows of the prompt and the line being typed; the cursor ends at the start of the
 * first row, where libedit will draw them again. */
static void hide_line(void) {
  size_t before = display_width(T.prompt, strlen(T.prompt));
  if (rl_line_buffer && rl_point > 0)
    before += display_width(rl_line_buffer, (size_t)rl_point);
  int cols = T.cols > 0 ? T.cols : 80;
  int up = (int)(before / (size_t)cols);
  char seq[48];
  int k = up > 0 ? snprintf(seq, sizeof seq, "\r\033[%dA\033[J", up)
                 : snprintf(seq, sizeof seq, "\r\033[J");
  write_raw(seq, (size_t)k);
}

static void flush_pending(void) {
  if (T.plen == 0 || T.held)
    return;
  size_t n = T.plen;
  T.plen = 0;
  if (T.editing) {
    hide_line();
    write_raw(T.pending, n);
    if (!T.at_line_start)
      write_raw("\n", 1);
    rl_forced_update_display();
    fflush(T.out);
  } else {
    write_raw(T.pending, n);
  }
}

static void on_flush_timer(uv_timer_t *t) {
  (void)t;
  flush_pending();
}

static void append_pending(const char *buf, size_t n) {
  if (T.plen + n > T.pcap) {
    size_t cap = T.pcap ? T.pcap : 4096;
    while (cap < T.plen + n)
      cap *= 2;
    char *p = realloc(T.pending, cap);
    if (p == NULL) { /* no memory: write it now rather than lose it */
      write_raw(buf, n);
      return;
    }
    T.pending = p;
    T.pcap = cap;
  }
  memcpy(T.pending + T.plen, buf, n);
  T.plen += n;
}

static void term_write(const char *buf, size_t n) {
  if (!T.open || (!T.editing && !T.held)) {
    write_raw(buf, n);
    return;
  }
  append_pending(buf, n);
  if (T.held)
    return;
  if (T.plen >= FLUSH_NOW_BYTES && !T.in_callback) {
    flush_pending();
    return;
  }
  if (T.timer_init && !uv_is_active((uv_handle_t *)&T.flush_timer))
    uv_timer_start(&T.flush_timer, on_flush_timer, 0, 0);
}

static ssize_t cookie_write(void *cookie, const char *buf, size_t n) {
  (void)cookie;
  term_write(buf, n);
  return (ssize_t)n;
}

static FILE *cookie_stream(int line_buffered) {
  cookie_io_functions_t io = {.read = NULL, .write = cookie_write, .seek = NULL, .close = NULL};
  FILE *f = fopencookie(NULL, "w", io);
  if (f)
    setvbuf(f, NULL, line_buffered ? _IOLBF : _IONBF, line_buffered ? BUFSIZ : 0);
  return f;
}

/* ---------------------------------------------------------------------------------- */
/* Set-up */

int term_open(void) {
  if (!isatty(0) || !isatty(1))
    return -1;
  int fd = dup(1);
  if (fd < 0)
    return -1;
  FILE *out = fdopen(dup(fd), "w");
  FILE *so = cookie_stream(1), *se = cookie_stream(0);
  if (out == NULL || so == NULL || se == NULL) {
    if (out)
      fclose(out);
    if (so)
      fclose(so);
    if (se)
      fclose(se);
    close(fd);
    return -1;
  }
  T.fd = fd;
  T.out = out;
  T.saved_ok = tcgetattr(0, &T.saved) == 0;
  T.stdin_flags = fcntl(0, F_GETFL);
  T.at_line_start = 1;
  fflush(stdout);
  fflush(stderr);
  stdout = so;
  stderr = se;
  T.open = 1;
  update_cols();
  return 0;
}

int term_fd(void) {
  return T.open ? T.fd : 2;
}

void term_restore_now(void) {
  if (T.saved_ok)
    tcsetattr(0, TCSANOW, &T.saved);
  if (T.stdin_flags >= 0)
    fcntl(0, F_SETFL, T.stdin_flags);
}

/* ---------------------------------------------------------------------------------- */
/* Editing */

static void poll_stop(void) {
  if (T.polling) {
    uv_poll_stop(&T.poll);
    T.polling = 0;
  }
}

/* While a line runs, the terminal stays in cooked mode (so Ctrl-C is a signal) but without
 * echo: keys typed ahead wait in the terminal's queue and appear once, at the next prompt,
 * instead of being echoed into the output and drawn again by libedit. */
static void echo_off(void) {
  struct termios t;
  if (tcgetattr(0, &t) == 0 && (t.c_lflag & ECHO)) {
    t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
    tcsetattr(0, TCSANOW, &t);
  }
}

static void line_done(char *line) {
  T.editing = 0;
  poll_stop();
  rl_callback_handler_remove();
  if (line == NULL) {
    write_raw("\n", 1); /* Ctrl-D leaves the cursor after the prompt */
  } else {
    T.at_line_start = 1; /* libedit moved to the next line */
    echo_off();
  }
  T.on_line(line, T.ud);
}

static void on_stdin(uv_poll_t *h, int status, int events) {
  (void)h;
  (void)events;
  int avail = 0;
  if (status < 0 || (ioctl(0, FIONREAD, &avail) == 0 && avail == 0)) {
    /* Readable with nothing to read: the terminal hung up. End of input. */
    if (T.editing)
      line_done(NULL);
    else
      poll_stop();
    return;
  }
  /* libedit's rl_callback_read_char returns early, without updating rl_point and rl_end,
   * when the line is empty (after Ctrl-U, say). A sentinel tells that case apart, so the
   * position used to hide the line is never stale. */
  T.in_callback = 1;
  rl_point = -1;
  rl_callback_read_char();
  if (rl_point == -1)
    rl_point = rl_end = 0;
  T.in_callback = 0;
}

/* Completion: the REPL's candidates for the word before the cursor, through libedit's
 * matcher (common prefix, listing on a second Tab). */
static char **cands;
static size_t cand_next;

static char *cand_generator(const char *text, int state) {
  (void)text;
  if (state == 0)
    cand_next = 0;
  if (cands == NULL || cands[cand_next] == NULL)
    return NULL;
  return strdup(cands[cand_next++]);
}

static char **attempt_completion(const char *text, int start, int end) {
  (void)start;
  rl_attempted_completion_over = 1; /* never fall back to file names */
  if (T.complete == NULL)
    return NULL;
  size_t n = rl_line_buffer ? strlen(rl_line_buffer) : 0;
  if (end >= 0 && (size_t)end < n)
    n = (size_t)end;
  char *line = strndup(rl_line_buffer ? rl_line_buffer : "", n);
  cands = T.complete(text, line ? line : "", T.ud);
  free(line);
  char **matches = cands && cands[0] ? rl_completion_matches(text, cand_generator) : NULL;
  if (cands) {
    for (size_t i = 0; cands[i]; i++)
      free(cands[i]);
    free(cands);
    cands = NULL;
  }
  return matches;
}

static void on_winch(uv_signal_t *s, int sig) {
  (void)s;
  (void)sig;
  update_cols();
  if (T.editing)
    rl_resize_terminal();
}

/* Back from Ctrl-Z (fg): the shell left the terminal in its own mode. */
static void on_cont(uv_signal_t *s, int sig) {
  (void)s;
  (void)sig;
  update_cols();
  if (T.editing) {
    rl_prep_terminal(1);
    rl_forced_update_display();
    fflush(T.out);
  } else {
    echo_off();
  }
}

int term_start(uv_loop_t *loop, const char *history_path, term_line_fn on_line,
               term_complete_fn complete, void *ud) {
  T.loop = loop;
  T.on_line = on_line;
  T.complete = complete;
  T.ud = ud;
  rl_readline_name = "moonloop"; /* ~/.editrc lines can start with "moonloop:" */
  rl_catch_signals = 0;
  rl_instream = stdin; /* stdin is untouched: fd 0 */
  rl_outstream = T.out;
  if (rl_initialize() != 0)
    return -1;
  /* Lua words: a.b.c and obj:method complete as one word. */
  rl_basic_word_break_characters = " \t\n\"\\'`@$><=;|&{(,+-*/%^~#[])}";
  rl_completion_append_character = '\0';
  rl_attempted_completion_function = attempt_completion;
  using_history();
  if (history_path && history_path[0]) {
    snprintf(T.history_path, sizeof T.history_path, "%s", history_path);
    read_history(T.history_path);
    stifle_history(HISTORY_MAX);
  }
  if (uv_poll_init(loop, &T.poll, 0) != 0)
    return -1;
  T.poll_init = 1;
  /* uv_poll_init made fd 0 non-blocking; libedit reads it as a blocking descriptor (the rest
   * of an escape sequence is read at once). Readiness is still reported either way. */
  if (T.stdin_flags >= 0)
    fcntl(0, F_SETFL, T.stdin_flags & ~O_NONBLOCK);
  uv_timer_init(loop, &T.flush_timer);
  T.timer_init = 1;
  uv_signal_init(loop, &T.winch);
  uv_signal_start(&T.winch, on_winch, SIGWINCH);
  uv_unref((uv_handle_t *)&T.winch);
  uv_signal_init(loop, &T.cont);
  uv_signal_start(&T.cont, on_cont, SIGCONT);
  uv_unref((uv_handle_t *)&T.cont);
  T.winch_init = 1;
  return 0;
}

void term_prompt(const char *prompt) {
  if (!T.open || !T.poll_init)
    return;
  flush_pending(); /* not editing yet: straight out */
  if (!T.at_line_start)
    write_raw("\n", 1);
  snprintf(T.prompt, sizeof T.prompt, "%s", prompt);
  T.editing = 1;
  rl_point = rl_end = 0; /* a new line; libedit only updates these after a key */
  rl_callback_handler_install(T.prompt, line_done);
  fflush(T.out);
  if (!T.polling) {
    uv_poll_start(&T.poll, UV_READABLE | UV_DISCONNECT, on_stdin);
    T.polling = 1;
  }
}

int term_editing(void) {
  return T.editing;
}

int term_cancel_line(void) {
  if (!T.editing)
    return 1;
  int empty = rl_end == 0;
  write_raw("^C\n", 3);
  T.editing = 0;
  poll_stop();
  rl_callback_handler_remove(); /* back to cooked mode; the next prompt starts a new line */
  return empty;
}

void term_unprompt(void) {
  if (!T.editing)
    return;
  T.editing = 0;
  poll_stop();
  rl_callback_handler_remove();
  write_raw("\n", 1);
}

void term_hold(int on) {
  T.held = on;
  if (!on)
    flush_pending();
}

void term_history_add(const char *entry) {
  if (!T.open || entry == NULL || entry[0] == '\0')
    return;
  add_history(entry);
  if (T.history_path[0] && write_history(T.history_path) != 0 && !T.history_warned) {
    T.history_warned = 1;
    fprintf(stderr, "moonloop: cannot write the REPL history to %s\n", T.history_path);
  }
}

void term_close(void) {
  if (!T.open)
    return;
  if (T.editing) {
    T.editing = 0;
    rl_callback_handler_remove();
  }
  poll_stop();
  T.held = 0;
  fflush(stdout);
  fflush(stderr);
  flush_pending();
  if (T.timer_init && !uv_is_closing((uv_handle_t *)&T.flush_timer))
    uv_close((uv_handle_t *)&T.flush_timer, NULL);
  if (T.poll_init && !uv_is_closing((uv_handle_t *)&T.poll))
    uv_close((uv_handle_t *)&T.poll, NULL);
  if (T.winch_init && !uv_is_closing((uv_handle_t *)&T.winch))
    uv_close((uv_handle_t *)&T.winch, NULL);
  if (T.winch_init && !uv_is_closing((uv_handle_t *)&T.cont))
    uv_close((uv_handle_t *)&T.cont, NULL);
  term_restore_now();
  free(T.pending);
  T.pending = NULL;
  T.plen = T.pcap = 0;
  T.open = 0; /* from now on the cookie streams write straight to the terminal */
}

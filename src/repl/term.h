/* The REPL's terminal: libedit fed from the event loop, and one output path for everything
 * the process writes to stdout and stderr, so that background output never garbles the line
 * being typed (hide the line, write, redraw). Only used when stdin and stdout are terminals. */
#ifndef ML_REPL_TERM_H
#define ML_REPL_TERM_H

#include <stddef.h>
#include <uv.h>

/* A finished line (malloc'd, the callee frees it), or NULL for Ctrl-D on an empty line. */
typedef void (*term_line_fn)(char *line, void *ud);

/* Candidates for the word before the cursor: a NULL-terminated malloc'd array of malloc'd
 * strings (or NULL). line is the text from the start of the line up to the cursor. */
typedef char **(*term_complete_fn)(const char *word, const char *line, void *ud);

/* Before anything writes to stdout or stderr (before the runtime is created): keep the
 * terminal's file descriptors and replace the stdout and stderr streams with streams that
 * write through term_write. Returns 0, or -1 when stdin or stdout is not a terminal (then
 * nothing changed). */
int term_open(void);

/* After the loop exists: set up libedit (emacs keys, history from history_path, which may be
 * NULL) and the stdin watcher. */
int term_start(uv_loop_t *loop, const char *history_path, term_line_fn on_line,
               term_complete_fn complete, void *ud);

/* Show the prompt and edit a line; on_line is called once when it is done. */
void term_prompt(const char *prompt);

/* Whether the editor is showing a prompt. */
int term_editing(void);

/* Ctrl-C at the prompt: drop the line being typed and stop editing (term_prompt starts a new
 * line). Returns 1 if the line was empty. */
int term_cancel_line(void);

/* Stop editing (no line is delivered). */
void term_unprompt(void);

/* While on (an external editor owns the screen), output is kept and written when turned
 * off. */
void term_hold(int on);

/* The terminal's own descriptor (for children that take over the screen, and for messages
 * from a signal handler). */
int term_fd(void);

void term_history_add(const char *entry);

/* Write everything kept, give the terminal back as it was. Safe to call twice. */
void term_close(void);

/* Restore the terminal settings saved by term_open; async-signal-safe (for a forced exit). */
void term_restore_now(void);

#endif

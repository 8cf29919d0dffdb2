/* The `log` Lua module and the runtime's `print`: one output path for scripts. */
#ifndef ML_LOG_H
#define ML_LOG_H

#include <lua.h>

struct ml_rt;

/* Registers the global `log` and replaces `print`. */
void log_open(lua_State *L, struct ml_rt *rt);

#endif

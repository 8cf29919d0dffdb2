/* log.debug/info/warn/error(fmt, ...) and print. Log lines go to stderr with the level,
 * print goes to stdout; both through here so the REPL can later redraw around them. */
#include "lua/log.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>

#include "core/rt.h"

/* Format like string.format when there are extra arguments; else print the value. */
static const char *format_args(lua_State *L) {
  int n = lua_gettop(L);
  if (n == 0)
    return "";
  if (n == 1 || lua_type(L, 1) != LUA_TSTRING)
    return luaL_tolstring(L, 1, NULL);
  lua_getglobal(L, "string");
  lua_getfield(L, -1, "format");
  lua_remove(L, -2);
  lua_insert(L, 1);
  lua_call(L, n, 1);
  return lua_tostring(L, -1);
}

static int log_at(lua_State *L, enum ml_log_level level) {
  struct ml_rt *rt = rt_from_lua(L);
  if (level < rt->log_level)
    return 0;
  const char *msg = format_args(L);
  rt_log(rt, level, "%s", msg);
  return 0;
}

static int l_debug(lua_State *L) { return log_at(L, ML_LOG_DEBUG); }
static int l_info(lua_State *L) { return log_at(L, ML_LOG_INFO); }
static int l_warn(lua_State *L) { return log_at(L, ML_LOG_WARN); }
static int l_error(lua_State *L) { return log_at(L, ML_LOG_ERROR); }

/* log.isatty(): whether stderr is a terminal (live progress lines vs periodic ones). */
static int l_isatty(lua_State *L) {
  lua_pushboolean(L, isatty(2));
  return 1;
}

static int l_print(lua_State *L) {
  int n = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; i++) {
    if (i > 1)
      luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_addchar(&b, '\n');
  luaL_pushresult(&b);
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  fwrite(s, 1, len, stdout);
  fflush(stdout);
  return 0;
}

void log_open(lua_State *L, struct ml_rt *rt) {
  static const luaL_Reg funcs[] = {{"debug", l_debug}, {"info", l_info}, {"warn", l_warn},
                                   {"error", l_error}, {"isatty", l_isatty}, {NULL, NULL}};
  (void)rt;
  luaL_newlib(L, funcs);
  lua_setglobal(L, "log");
  lua_pushcfunction(L, l_print);
  lua_setglobal(L, "print");
}

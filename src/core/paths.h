/* Where the runtime's own Lua library lives: $MOONLOOP_LUA_DIR, else the directory
 * compiled in (ML_LUA_DIR, the source tree's lua/). */
#ifndef ML_PATHS_H
#define ML_PATHS_H

const char *ml_lua_dir(void);

#endif

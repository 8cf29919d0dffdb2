/* Locating the runtime's own Lua library (lua/moonloop/...). */
#include "core/paths.h"

#include <stdlib.h>

const char *ml_lua_dir(void) {
  const char *dir = getenv("MOONLOOP_LUA_DIR");
  if (dir != NULL && dir[0] != '\0')
    return dir;
  return ML_LUA_DIR;
}

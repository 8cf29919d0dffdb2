/* The Lua state of the Lua-level fuzz targets (see fuzz_lua.h). */
#include "fuzz_lua.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "lua/json.h"
#include "lua/modules.h"

#ifndef FUZZ_LUA_DIR
#error "FUZZ_LUA_DIR must name the runtime's Lua library directory"
#endif

#define LINE_COUNTERS 65536

/* libFuzzer adds every byte of this section to its coverage features. */
__attribute__((used,
               section("__libfuzzer_extra_counters"))) static uint8_t line_counters[LINE_COUNTERS];

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  struct fuzz_lua *f = ud;
  if (ptr == NULL)
    osize = 0;
  if (nsize == 0) {
    free(ptr);
    f->used -= osize;
    return NULL;
  }
  if (nsize > osize && nsize - osize > f->cap - f->used) {
    f->hit_cap = 1;
    return NULL;
  }
  void *p = realloc(ptr, nsize);
  if (p != NULL)
    f->used = f->used - osize + nsize;
  return p;
}

static void hook(lua_State *L, lua_Debug *ar) {
  void *ud = NULL;
  lua_getallocf(L, &ud);
  struct fuzz_lua *f = ud;
  if (ar->event == LUA_HOOKLINE) {
    uint32_t h = (uint32_t)f->prev_line * 2654435761u ^ (uint32_t)ar->currentline;
    uint8_t *c = &line_counters[(h ^ (h >> 16)) % LINE_COUNTERS];
    if (*c != 255)
      (*c)++;
    f->prev_line = ar->currentline;
  } else if (ar->event == LUA_HOOKCOUNT && ++f->steps > f->max_steps) {
    luaL_error(L, "fuzz: instruction budget of %d thousand spent", (int)f->max_steps);
  }
}

void fuzz_lua_open(struct fuzz_lua *f, size_t cap_mb, long max_ksteps, int lines) {
  memset(f, 0, sizeof *f);
  f->cap = cap_mb << 20;
  f->max_steps = max_ksteps;
  lua_State *L = lua_newstate(capped_alloc, f);
  if (L == NULL)
    abort();
  f->L = L;
  static const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},
                                  {LUA_LOADLIBNAME, luaopen_package},
                                  {LUA_STRLIBNAME, luaopen_string},
                                  {LUA_TABLIBNAME, luaopen_table},
                                  {LUA_MATHLIBNAME, luaopen_math},
                                  {LUA_UTF8LIBNAME, luaopen_utf8},
                                  {NULL, NULL}};
  for (const luaL_Reg *l = libs; l->func; l++) {
    luaL_requiref(L, l->name, l->func, 1);
    lua_pop(L, 1);
  }
  /* No file access and no bytecode: fuzz inputs are data, never code to trust. */
  static const char *const removed[] = {"dofile", "loadfile", "load", "print", NULL};
  for (int i = 0; removed[i]; i++) {
    lua_pushnil(L);
    lua_setglobal(L, removed[i]);
  }
  const char *dir = getenv("MOONLOOP_LUA_DIR");
  if (dir == NULL || !*dir)
    dir = FUZZ_LUA_DIR;
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", dir, dir);
  lua_setfield(L, -2, "path");
  lua_pushstring(L, "");
  lua_setfield(L, -2, "cpath");
  lua_pushnil(L);
  lua_setfield(L, -2, "loadlib");
  lua_pop(L, 1);
  ml_json_open(L);
  lua_setglobal(L, "json");
  text_open(L);
  lua_setglobal(L, "text");
  lua_sethook(L, hook, (lines ? LUA_MASKLINE : 0) | LUA_MASKCOUNT, 1000);
}

void fuzz_lua_require(struct fuzz_lua *f, const char *module, const char *name) {
  lua_State *L = f->L;
  long budget = f->max_steps;
  f->max_steps = 1L << 40; /* loading is not what is measured */
  lua_getglobal(L, "require");
  lua_pushstring(L, module);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    fprintf(stderr, "fuzz: cannot load %s: %s\n", module, lua_tostring(L, -1));
    abort();
  }
  lua_setglobal(L, name);
  f->max_steps = budget;
}

int fuzz_lua_call(struct fuzz_lua *f, int nargs, int nresults) {
  f->steps = 0;
  f->hit_cap = 0;
  f->prev_line = 0;
  return lua_pcall(f->L, nargs, nresults, 0);
}

int fuzz_lua_over_budget(const struct fuzz_lua *f) {
  return f->hit_cap || f->steps > f->max_steps;
}

int fuzz_lua_harness(struct fuzz_lua *f, const char *name, const char *harness, size_t len,
                     const char *global) {
  lua_State *L = f->L;
  char chunk[64];
  snprintf(chunk, sizeof chunk, "=%s", name);
  if (luaL_loadbufferx(L, harness, len, chunk, "t") != LUA_OK) {
    fprintf(stderr, "%s: harness: %s\n", name, lua_tostring(L, -1));
    abort();
  }
  lua_getglobal(L, global);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    fprintf(stderr, "%s: harness: %s\n", name, lua_tostring(L, -1));
    abort();
  }
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

void fuzz_lua_check(struct fuzz_lua *f, const char *name, int ref, const uint8_t *data,
                    size_t size) {
  lua_State *L = f->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
  lua_pushlstring(L, (const char *)data, size);
  if (fuzz_lua_call(f, 1, 0) != LUA_OK) {
    fprintf(stderr, "%s: %s%s\n", name, fuzz_lua_over_budget(f) ? "(over budget) " : "",
            lua_tostring(L, -1));
    abort();
  }
  /* The state is kept across inputs (loading the library each time would dominate); a full
   * collection now and then keeps memory flat. */
  static unsigned n;
  if (++n % 256 == 0)
    lua_gc(L, LUA_GCCOLLECT);
}

void fuzz_lua_close(struct fuzz_lua *f) {
  if (f->L)
    lua_close(f->L);
  f->L = NULL;
}

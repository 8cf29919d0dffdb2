/* libFuzzer target for ml_json_extract and the decode/encode path behind json.extract.
 * Checks the span contract, that a found value converts to Lua, and that decoding is
 * stable: decode -> encode(sorted) -> decode -> encode gives the same bytes. */
#include "lua/json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

static lua_State *fuzz_state(void) {
  static lua_State *L;
  if (L == NULL) {
    L = luaL_newstate();
    luaL_openlibs(L);
  }
  return L;
}

/* Decode s; if it decodes, the sorted encoding must be a fixed point. Encoding may only
 * fail for numbers that overflowed to infinity (1e999), which JSON cannot carry. */
static void check_stable(lua_State *L, const char *s, size_t len) {
  char err[512];
  if (ml_json_decode(L, s, len, err, sizeof err) != 0)
    return;
  char *once = ml_json_encode(L, -1, ML_JSON_SORT_KEYS, err, sizeof err);
  lua_pop(L, 1);
  if (once == NULL) {
    if (strstr(err, "inf") == NULL)
      abort();
    return;
  }
  if (ml_json_decode(L, once, strlen(once), err, sizeof err) != 0)
    abort();
  char *twice = ml_json_encode(L, -1, ML_JSON_SORT_KEYS, err, sizeof err);
  lua_pop(L, 1);
  if (twice == NULL || strcmp(once, twice) != 0)
    abort();
  free(once);
  free(twice);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = fuzz_state();
  const char *text = (const char *)data;
  size_t start = 0, end = 0;
  char err[512];
  cJSON *v = ml_json_extract(text, size, &start, &end, err, sizeof err);
  if (v != NULL) {
    if (!(start < end && end <= size) || !(cJSON_IsObject(v) || cJSON_IsArray(v)))
      abort();
    if (text[start] != (cJSON_IsObject(v) ? '{' : '[') ||
        text[end - 1] != (cJSON_IsObject(v) ? '}' : ']'))
      abort();
    if (ml_json_push(L, v, err, sizeof err) != 0)
      abort();
    lua_pop(L, 1);
    cJSON_Delete(v);
    check_stable(L, text + start, end - start);
  } else if (err[0] == '\0') {
    abort(); /* a failure must say why */
  }
  check_stable(L, text, size);
  lua_settop(L, 0);
  return 0;
}

/* The `json` Lua module on cJSON: encode (sorted keys, pretty), decode, extract, and
 * C helpers shared by the LLM wire formats and the mock server.
 * JSON null decodes to the sentinel `json.null`; arrays and objects decode to tables
 * (arrays keep a metatable marker so they re-encode as arrays, even when empty).
 *
 * Conventions shared by every function below:
 * - Numbers. Lua integers encode exactly. Floats with an integral value below 2^53 encode
 *   without a fraction (5.0 -> 5, as lua-cjson and JavaScript do; it decodes as integer 5,
 *   which == 5.0), -0.0 encodes as -0.0, other floats use the shortest of %.15g/%.16g/%.17g
 *   that reads back to the same double. NaN and +-inf are errors. Decoding gives a Lua
 *   integer for a number written without fraction or exponent that fits in 64 bits, and a
 *   float otherwise.
 * - null is the lightuserdata `json.null` (ml_json_push_null / ml_json_is_null in C).
 * - A table is an array when its keys are exactly 1..n, an object when all keys are
 *   strings. An empty table is an object unless its metatable is `json.array_mt`.
 * - Strings must be valid UTF-8 (encode and decode both report the byte offset otherwise;
 *   nothing is silently replaced). NUL bytes and \u0000 are refused on decode because cJSON
 *   strings end at NUL; encode writes them as \u0000.
 * - Byte positions in error messages are 1-based, like Lua's string functions.
 * - Nesting deeper than ML_JSON_MAX_DEPTH arrays/objects is refused in both directions. */
#ifndef ML_JSON_H
#define ML_JSON_H

#include <stddef.h>
#include <cjson/cJSON.h>
#include <lua.h>

#define ML_JSON_MAX_DEPTH 200

/* ml_json_extract parses at most this many candidate `{`/`[` positions, so a long text
 * full of stray brackets costs O(ML_JSON_EXTRACT_MAX_TRIES * len) at worst. */
#define ML_JSON_EXTRACT_MAX_TRIES 64

enum {
  ML_JSON_PRETTY = 1,    /* newlines and two-space indent; compact otherwise */
  ML_JSON_SORT_KEYS = 2, /* object keys in bytewise order: same table, same bytes */
};

/* luaopen-style: pushes the module table. */
int ml_json_open(lua_State *L);

/* Push a cJSON value as a Lua value. Returns 0, or -1 with an error message in err
 * (nothing pushed) when the document is nested deeper than ML_JSON_MAX_DEPTH.
 * cJSON keeps numbers as doubles, so a number becomes a Lua integer when its value is
 * integral and within +-2^53; use ml_json_decode to keep 64-bit integers exact.
 * Duplicate object keys: the last one wins. Raises only on memory errors. */
int ml_json_push(lua_State *L, const cJSON *v, char *err, size_t errlen);

/* Convert the Lua value at idx to cJSON. Returns NULL with a message in err for values
 * JSON cannot hold (functions, cycles, NaN, mixed tables, too deep). Object members come
 * in bytewise key order. Integers beyond +-2^53 and strings containing NUL bytes, which a
 * cJSON number or string cannot hold, become cJSON_Raw items with their exact JSON text. */
cJSON *ml_json_from_lua(lua_State *L, int idx, char *err, size_t errlen);

/* Encode the Lua value at idx; returns a malloc'd string or NULL with err set. */
char *ml_json_encode(lua_State *L, int idx, int flags, char *err, size_t errlen);

/* Print a cJSON tree with the number and string rules above (cJSON_Print indents with
 * tabs and cannot sort keys); returns a malloc'd string or NULL with err set. */
char *ml_json_print(const cJSON *v, int flags, char *err, size_t errlen);

/* Parse a whole JSON text and push it as a Lua value, keeping 64-bit integers exact.
 * Returns 0, or -1 with err naming the byte position and an excerpt (nothing pushed). */
int ml_json_decode(lua_State *L, const char *s, size_t len, char *err, size_t errlen);

/* Find the first complete JSON object or array in model text (code fences and prose
 * around it are skipped). On success returns a parsed cJSON (caller frees) and sets
 * *start and *end to the byte span; on failure returns NULL and err says what was found.
 * The span is 0-based and half-open: text[*start] is the `{` or `[`, *end is one past the
 * closing bracket. Search order: ```json fences (if any exist, only those), then other
 * ``` fences, then the whole text; in each, successive `{`/`[` positions. */
cJSON *ml_json_extract(const char *text, size_t len, size_t *start, size_t *end,
                       char *err, size_t errlen);

/* Offset of the first byte of s that is not valid UTF-8 (by the rules above), or len. */
size_t ml_json_utf8_check(const char *s, size_t len);

/* Push the `json.null` sentinel / test whether the value at idx is it. */
void ml_json_push_null(lua_State *L);
int ml_json_is_null(lua_State *L, int idx);

#endif

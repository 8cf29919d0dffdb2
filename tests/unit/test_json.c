/* Unit tests for the `json` module (src/lua/json.c): round-trips, canonical output, every
 * encode error, decode errors with byte positions, depth limits, and the hostile inputs
 * json.extract meets in model text. Most tests run Lua snippets against the module. */
#include "lua/json.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lualib.h>

#include "ml_test.h"

static lua_State *new_state(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  ml_json_open(L);
  lua_setglobal(L, "json");
  return L;
}

/* Run a chunk and return its first result as a string, or "error: <message>". The buffer
 * is reused by the next call. */
static const char *eval(lua_State *L, const char *code) {
  static char out[8192];
  int top = lua_gettop(L);
  if (luaL_loadstring(L, code) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK)
    snprintf(out, sizeof out, "error: %s", lua_tostring(L, -1));
  else
    snprintf(out, sizeof out, "%s", luaL_tolstring(L, -1, NULL));
  lua_settop(L, top);
  return out;
}

/* The error a chunk raises, without Lua's `[string "..."]:1: ` prefix ("no error" when
 * it returns). */
static const char *eval_err(lua_State *L, const char *code) {
  const char *r = eval(L, code);
  if (strncmp(r, "error: ", 7) != 0)
    return "no error";
  r += 7;
  const char *p = strstr(r, "]:");
  if (strncmp(r, "[string ", 8) == 0 && p != NULL) {
    p += 2;
    while (*p >= '0' && *p <= '9')
      p++;
    if (p[0] == ':' && p[1] == ' ')
      return p + 2;
  }
  return r;
}

#define CHECK_HAS(s, sub)                                                     \
  do {                                                                        \
    const char *ml_s_ = (s);                                                  \
    if (strstr(ml_s_, (sub)) == NULL)                                         \
      fprintf(stderr, "  %s:%d: \"%s\" lacks \"%s\"\n", __FILE__, __LINE__, ml_s_, (sub)); \
    ML_CHECK(strstr(ml_s_, (sub)) != NULL);                                   \
  } while (0)

/* ---- round-trips ---- */

static void test_unicode_round_trips_unescaped(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval(L, "return json.encode('h\\u{e9}llo \\u{4e16}\\u{754c} \\u{1F600}')"),
               "\"h\xc3\xa9llo \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x98\x80\"");
  ML_CHECK_STR(eval(L, "local s = 'h\\u{e9}llo \\u{1F600}'\n"
                       "return tostring(json.decode(json.encode(s)) == s)"), "true");
  ML_CHECK_STR(eval(L, "return json.decode('\"\\\\u00e9\\\\ud83d\\\\ude00\"')"),
               "\xc3\xa9\xf0\x9f\x98\x80");
  lua_close(L);
}

static void test_escapes_round_trip(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval(L, "return json.encode('q\"b\\\\n\\nr\\rt\\tb\\bf\\fc\\1d\\127/')"),
               "\"q\\\"b\\\\n\\nr\\rt\\tb\\bf\\fc\\u0001d\x7f/\"");
  ML_CHECK_STR(eval(L, "local s = 'q\"b\\\\n\\nr\\rt\\tb\\bf\\fc\\1d\\127/'\n"
                       "return tostring(json.decode(json.encode(s)) == s)"), "true");
  lua_close(L);
}

static void test_nul_in_string_encodes_as_u0000(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval(L, "return json.encode({'a\\0b'})"), "[\"a\\u0000b\"]");
  lua_close(L);
}

static void test_big_integers_stay_exact_integers(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval(L, "local v = json.decode('9007199254740993')\n"
                       "return math.type(v) .. ' ' .. v"), "integer 9007199254740993");
  ML_CHECK_STR(eval(L, "return json.encode(9007199254740993)"), "9007199254740993");
  ML_CHECK_STR(eval(L, "return json.encode(json.decode('[9223372036854775807,"
                       "-9223372036854775808]'))"),
               "[9223372036854775807,-9223372036854775808]");
  lua_close(L);
}

static void test_integer_beyond_64_bits_decodes_as_float(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval(L, "return math.type(json.decode('9223372036854775808'))"), "float");
  lua_close(L);
}

static void test_floats_round_trip_shortest(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval(L, "return json.encode({0.1, 1e300, -2.5e-7, 1/3})"),
               "[0.1,1e+300,-2.5e-07,0.3333333333333333]");
  ML_CHECK_STR(eval(L, "for _, x in ipairs({0.1, 1e300, -2.5e-7, 1/3, 2^-1074,\n"
                       "                     1.7976931348623157e308}) do\n"
                       "  local y = json.decode(json.encode(x))\n"
                       "  if y ~= x or math.type(y) ~= 'float' then return tostring(x) end\n"
                       "end\n"
                       "return 'ok'"), "ok");
  ML_CHECK_STR(eval(L, "return math.type(json.decode('1.0')) .. math.type(json.decode('1e2'))"),
               "floatfloat");
  lua_close(L);
}

static void test_integral_floats_print_without_fraction(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval(L, "return json.encode({5.0, 10/2, -3.0})"), "[5,5,-3]");
  ML_CHECK_STR(eval(L, "return json.encode(-0.0)"), "-0.0");
  ML_CHECK_STR(eval(L, "return json.encode(2.0^60)"), "1.152921504606847e+18");
  ML_CHECK_STR(eval(L, "return tostring(json.decode(json.encode(2.0^60)) == 2.0^60)"), "true");
  lua_close(L);
}

static void test_nested_arrays_and_objects_round_trip(void) {
  lua_State *L = new_state();
  const char *doc = "{\"a\":[1,[2,[3,{\"b\":{\"c\":[true,false,null]}}]]],\"d\":\"e\"}";
  char code[256];
  snprintf(code, sizeof code, "return json.encode(json.decode('%s'), {sort_keys=true})", doc);
  ML_CHECK_STR(eval(L, code), doc);
  lua_close(L);
}

static void test_empty_table_is_object_unless_marked_array(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval(L, "return json.encode({})"), "{}");
  ML_CHECK_STR(eval(L, "return json.encode(json.array({}))"), "[]");
  ML_CHECK_STR(eval(L, "return json.encode({a = setmetatable({}, json.array_mt)})"), "{\"a\":[]}");
  lua_close(L);
}

static void test_decoded_empty_array_stays_array(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval(L, "return json.encode(json.decode('{\"a\":[],\"b\":{}}'), {sort_keys=true})"),
               "{\"a\":[],\"b\":{}}");
  ML_CHECK_STR(eval(L, "return tostring(getmetatable(json.decode('[1]')) == json.array_mt)"),
               "true");
  lua_close(L);
}

static void test_array_refuses_foreign_metatable(void) {
  lua_State *L = new_state();
  CHECK_HAS(eval_err(L, "json.array(setmetatable({}, {}))"), "already has a metatable");
  ML_CHECK_STR(eval(L, "local t = json.array({}); return tostring(json.array(t) == t)"), "true");
  lua_close(L);
}

static void test_null_round_trips_as_sentinel(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval(L, "local t = json.decode('[1,null,{\"a\":null}]')\n"
                       "return type(json.null) .. ' ' .. #t .. ' ' .. tostring(t[2] == json.null)"
                       " .. ' ' .. tostring(t[3].a == json.null)"),
               "userdata 3 true true");
  ML_CHECK_STR(eval(L, "return json.encode(json.decode('[1,null,{\"a\":null}]'))"),
               "[1,null,{\"a\":null}]");
  ML_CHECK_STR(eval(L, "return json.encode(nil)"), "null");
  lua_close(L);
}

/* ---- canonical and pretty output ---- */

static void test_sort_keys_is_bytewise_and_deterministic(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval(L, "return json.encode({b=1, a=2, aa=3, B=4, ['\\u{e9}']=5, _=6},"
                       " {sort_keys=true})"),
               "{\"B\":4,\"_\":6,\"a\":2,\"aa\":3,\"b\":1,\"\xc3\xa9\":5}");
  /* The same content built in opposite orders, large enough that hash order differs. */
  ML_CHECK_STR(eval(L, "local x, y = {}, {}\n"
                       "for i = 1, 500 do x['k' .. i] = {i, {v = i, w = -i}} end\n"
                       "for i = 500, 1, -1 do y['k' .. i] = {i, {w = -i, v = i}} end\n"
                       "return tostring(json.encode(x, {sort_keys=true}) =="
                       " json.encode(y, {sort_keys=true}))"),
               "true");
  lua_close(L);
}

static void test_pretty_output_shape(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval(L, "return json.encode({a={1,{x=true}}, b={}, c=json.array({})},"
                       " {pretty=true, sort_keys=true})"),
               "{\n"
               "  \"a\": [\n"
               "    1,\n"
               "    {\n"
               "      \"x\": true\n"
               "    }\n"
               "  ],\n"
               "  \"b\": {},\n"
               "  \"c\": []\n"
               "}");
  lua_close(L);
}

static void test_unknown_encode_option_is_refused(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval_err(L, "json.encode({}, {indent=2})"),
               "json.encode: unknown option indent (known: pretty, sort_keys)");
  lua_close(L);
}

/* ---- encode errors ---- */

static void test_encode_function_names_key_path(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval_err(L, "json.encode({messages={{role='user'},{content=print}}})"),
               "json.encode: cannot encode function at messages[2].content");
  ML_CHECK_STR(eval_err(L, "json.encode(print)"),
               "json.encode: cannot encode function at the top level");
  ML_CHECK_STR(eval_err(L, "json.encode({['a b']={f=print}})"),
               "json.encode: cannot encode function at [\"a b\"].f");
  lua_close(L);
}

static void test_encode_userdata_and_thread_are_refused(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval_err(L, "json.encode({f=io.stdout})"),
               "json.encode: cannot encode userdata at f");
  ML_CHECK_STR(eval_err(L, "json.encode({coroutine.create(print)})"),
               "json.encode: cannot encode thread at [1]");
  lua_close(L);
}

static void test_encode_other_lightuserdata_is_refused(void) {
  lua_State *L = new_state();
  static int dummy;
  char err[256];
  lua_pushlightuserdata(L, &dummy);
  ML_CHECK(ml_json_encode(L, -1, 0, err, sizeof err) == NULL);
  ML_CHECK_STR(err, "cannot encode userdata at the top level");
  lua_close(L);
}

static void test_encode_nan_and_inf_are_refused(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval_err(L, "json.encode({x=0/0})"), "json.encode: cannot encode NaN at x");
  ML_CHECK_STR(eval_err(L, "json.encode({math.huge})"), "json.encode: cannot encode inf at [1]");
  ML_CHECK_STR(eval_err(L, "json.encode(-math.huge)"),
               "json.encode: cannot encode -inf at the top level");
  lua_close(L);
}

static void test_encode_cycle_is_refused(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval_err(L, "local t = {a={}}; t.a.b = t; json.encode(t)"),
               "json.encode: cycle: the table at the top level contains itself (again at a.b)");
  ML_CHECK_STR(eval(L, "local s = {1}; return json.encode({s, s})"), "[[1],[1]]");
  lua_close(L);
}

static void test_encode_depth_limit(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval(L, "local t = {}; for i = 2, 200 do t = {t} end\n"
                       "return #json.encode(t)"), "400");
  ML_CHECK_STR(eval_err(L, "local t = {}; for i = 2, 201 do t = {t} end; json.encode(t)"),
               "json.encode: nested deeper than 200 at [1][1][1][1][1][1][1][1]..."
               "[1][1][1][1][1][1][1][1]");
  ML_CHECK_STR(eval_err(L, "local t = {f=print}; for i = 1, 20 do t = {k=t} end; json.encode(t)"),
               "json.encode: cannot encode function at k.k.k.k.k.k.k.k...k.k.k.k.k.k.k.f");
  lua_close(L);
}

static void test_encode_mixed_table_names_key(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval_err(L, "json.encode({list={7, name='x'}})"),
               "json.encode: mixed table at list: string key \"name\" alongside integer key 1");
  lua_close(L);
}

static void test_encode_sparse_array_names_key(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval_err(L, "json.encode({[1]=1, [3]=3})"),
               "json.encode: table at the top level has integer key 3 but is not a sequence "
               "1..n (2 integer keys)");
  ML_CHECK_STR(eval_err(L, "json.encode({[0]='zero'})"),
               "json.encode: table at the top level has integer key 0 but is not a sequence "
               "1..n (1 integer keys)");
  lua_close(L);
}

static void test_encode_bad_key_types_are_named(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval_err(L, "json.encode({x={[true]=1}})"),
               "json.encode: table key true at x cannot be encoded (object keys must be strings, "
               "array keys 1..n)");
  ML_CHECK_STR(eval_err(L, "json.encode({[1.5]=1})"),
               "json.encode: table key 1.5 at the top level cannot be encoded (object keys must "
               "be strings, array keys 1..n)");
  ML_CHECK_STR(eval_err(L, "json.encode({[{}]=1})"),
               "json.encode: table key of type table at the top level cannot be encoded (object "
               "keys must be strings, array keys 1..n)");
  lua_close(L);
}

static void test_encode_marked_array_with_string_key_is_refused(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval_err(L, "json.encode(json.array({a=1}))"),
               "json.encode: table at the top level is marked as an array but has string key "
               "\"a\"");
  lua_close(L);
}

static void test_encode_invalid_utf8_names_byte(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval_err(L, "json.encode({msg={'ok', 'ab\\xff'}})"),
               "json.encode: invalid UTF-8 at byte 3 of the string at msg[2]");
  ML_CHECK_STR(eval_err(L, "json.encode({['\\xed\\xa0\\x80']=1})"), /* a UTF-16 surrogate */
               "json.encode: invalid UTF-8 at byte 1 of the key at [\"\\xed\\xa0\\x80\"]");
  ML_CHECK_STR(eval_err(L, "json.encode('\\xc0\\xaf')"), /* overlong '/' */
               "json.encode: invalid UTF-8 at byte 1 of the string at the top level");
  lua_close(L);
}

/* ---- decode errors ---- */

static void test_decode_error_names_byte_and_excerpt(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval_err(L, "json.decode('{\"a\": tru}')"),
               "json.decode: invalid JSON at byte 7 near \"tru}\"");
  lua_close(L);
}

static void test_decode_trailing_comma_is_explained(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval_err(L, "json.decode('[1, 2,]')"),
               "json.decode: invalid JSON at byte 7 near \"]\" (trailing comma)");
  ML_CHECK_STR(eval_err(L, "json.decode('{\"a\": 1,\\n}')"),
               "json.decode: invalid JSON at byte 10 near \"}\" (trailing comma)");
  lua_close(L);
}

static void test_decode_single_quotes_are_explained(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval_err(L, "json.decode(\"{'a': 1}\")"),
               "json.decode: invalid JSON at byte 3 near \"a': 1}\" (JSON strings and keys need "
               "double quotes)");
  lua_close(L);
}

static void test_decode_unclosed_input_says_what_is_open(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval_err(L, "json.decode('[1, {\"a\": 2')"),
               "json.decode: invalid JSON at byte 11 near \"2\"; the object at byte 5 is not "
               "closed");
  ML_CHECK_STR(eval_err(L, "json.decode('\"abc')"),
               "json.decode: invalid JSON at byte 2 near \"abc\"; the string at byte 1 is not "
               "closed");
  lua_close(L);
}

static void test_decode_trailing_text_is_refused(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval_err(L, "json.decode('{} x')"),
               "json.decode: unexpected text after the JSON value at byte 4 near \"x\"");
  lua_close(L);
}

static void test_decode_empty_input_is_refused(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval_err(L, "json.decode(' \\n')"),
               "json.decode: empty input (2 bytes of whitespace)");
  ML_CHECK_STR(eval_err(L, "json.decode('')"), "json.decode: empty input (0 bytes of whitespace)");
  lua_close(L);
}

static void test_decode_refuses_invalid_utf8_and_nul(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval_err(L, "json.decode('[\"ab\\xff\"]')"),
               "json.decode: invalid UTF-8 at byte 5");
  ML_CHECK_STR(eval_err(L, "json.decode('[\"a\\\\u0000b\"]')"),
               "json.decode: a \\u0000 escape (NUL is not supported) at byte 4");
  ML_CHECK_STR(eval_err(L, "json.decode('[1,\\0 2]')"), "json.decode: a NUL byte at byte 4");
  lua_close(L);
}

static void test_decode_scalars_at_top_level(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval(L, "return tostring(json.decode(' true ')) .. json.decode('\"s\"') .."
                       " json.decode('-12')"), "trues-12");
  lua_close(L);
}

static void test_decode_duplicate_keys_last_wins(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval(L, "return json.decode('{\"a\":1,\"a\":2}').a"), "2");
  lua_close(L);
}

/* ---- depth ---- */

static void test_decode_depth_200_is_accepted(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval(L, "local t = json.decode(('['):rep(200) .. (']'):rep(200))\n"
                       "local d = 0; while t[1] do t = t[1]; d = d + 1 end; return d"), "199");
  lua_close(L);
}

static void test_decode_depth_201_is_refused(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval_err(L, "json.decode(('['):rep(201) .. (']'):rep(201))"),
               "json.decode: nested deeper than 200 at byte 201");
  lua_close(L);
}

static void test_decode_ten_thousand_brackets_refused_without_crash(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval_err(L, "json.decode(('['):rep(10000))"),
               "json.decode: nested deeper than 200 at byte 201");
  ML_CHECK_STR(eval_err(L, "json.decode(('{\"a\":'):rep(10000))"),
               "json.decode: nested deeper than 200 at byte 1001");
  lua_close(L);
}

/* ---- C helpers ---- */

static void test_push_refuses_deep_cjson_tree(void) {
  lua_State *L = new_state();
  char err[128];
  cJSON *root = cJSON_CreateArray(), *cur = root;
  for (int i = 1; i < 201; i++) {
    cJSON *kid = cJSON_CreateArray();
    cJSON_AddItemToArray(cur, kid);
    cur = kid;
  }
  int top = lua_gettop(L);
  ML_CHECK_INT(ml_json_push(L, root, err, sizeof err), -1);
  ML_CHECK_STR(err, "nested deeper than 200");
  ML_CHECK_INT(lua_gettop(L), top);
  cJSON_Delete(root);
  lua_close(L);
}

static void test_push_converts_cjson_values(void) {
  lua_State *L = new_state();
  char err[128];
  cJSON *doc = cJSON_Parse("{\"n\":42,\"f\":1.5,\"s\":\"x\",\"z\":null,\"a\":[]}");
  ML_CHECK_INT(ml_json_push(L, doc, err, sizeof err), 0);
  lua_setglobal(L, "doc");
  ML_CHECK_STR(eval(L, "return math.type(doc.n) .. math.type(doc.f) .. doc.s .."
                       " tostring(doc.z == json.null) .. json.encode(doc.a)"),
               "integerfloatxtrue[]");
  cJSON_Delete(doc);
  lua_close(L);
}

static void test_from_lua_keeps_big_integers_exact_and_sorts_keys(void) {
  lua_State *L = new_state();
  char err[128];
  ML_CHECK_INT(luaL_dostring(L, "return {b = 9007199254740993, a = {1.5, 'x', json.null}}"),
               LUA_OK);
  cJSON *v = ml_json_from_lua(L, -1, err, sizeof err);
  ML_CHECK(v != NULL);
  char *s = cJSON_PrintUnformatted(v);
  ML_CHECK_STR(s, "{\"a\":[1.5,\"x\",null],\"b\":9007199254740993}");
  ML_CHECK(cJSON_IsRaw(cJSON_GetObjectItem(v, "b")));
  cJSON_free(s);
  /* ... and converts back exactly. */
  ML_CHECK_INT(ml_json_push(L, v, err, sizeof err), 0);
  ML_CHECK(lua_isinteger(L, -1) == 0);
  lua_getfield(L, -1, "b");
  ML_CHECK(lua_isinteger(L, -1));
  ML_CHECK(lua_tointeger(L, -1) == 9007199254740993LL);
  cJSON_Delete(v);
  lua_close(L);
}

static void test_from_lua_returns_error_instead_of_raising(void) {
  lua_State *L = new_state();
  char err[128];
  ML_CHECK_INT(luaL_dostring(L, "return {x = {y = print}}"), LUA_OK);
  int top = lua_gettop(L);
  ML_CHECK(ml_json_from_lua(L, -1, err, sizeof err) == NULL);
  ML_CHECK_STR(err, "cannot encode function at x.y");
  ML_CHECK_INT(lua_gettop(L), top);
  lua_close(L);
}

static void test_print_sorts_and_formats_numbers(void) {
  char err[128];
  cJSON *doc = cJSON_Parse("{\"b\":0.1,\"a\":[3000000000,1e300]}");
  char *s = ml_json_print(doc, ML_JSON_SORT_KEYS, err, sizeof err);
  ML_CHECK_STR(s, "{\"a\":[3000000000,1e+300],\"b\":0.1}");
  free(s);
  cJSON_Delete(doc);
}

static void test_null_helpers(void) {
  lua_State *L = new_state();
  ml_json_push_null(L);
  ML_CHECK(ml_json_is_null(L, -1));
  lua_getglobal(L, "json");
  lua_getfield(L, -1, "null");
  ML_CHECK(lua_rawequal(L, -1, -3));
  lua_pushboolean(L, 0);
  ML_CHECK(!ml_json_is_null(L, -1));
  lua_close(L);
}

/* ---- extract ---- */

static void test_extract_fence_with_language_tag(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval(L, "local t = 'Sure! Here:\\n```json\\n{\"a\": [1, 2]}\\n```\\n"
                       "Hope it helps.'\n"
                       "local v, s, f = json.extract(t)\n"
                       "return json.encode(v) .. ' ' .. s .. ' ' .. f .. ' ' .. t:sub(s, f)"),
               "{\"a\":[1,2]} 21 33 {\"a\": [1, 2]}");
  lua_close(L);
}

static void test_extract_fence_without_tag(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval(L, "return json.encode((json.extract('Result:\\n```\\n[{\"x\": 1}]\\n```')))"),
               "[{\"x\":1}]");
  lua_close(L);
}

static void test_extract_json_fence_preferred_over_prose_example(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval(L, "return json.encode((json.extract('Format: {\"a\": 0}\\n"
                       "```python\\nx = [1]\\n```\\n```JSON\\n{\"b\": 2}\\n```')))"),
               "{\"b\":2}");
  lua_close(L);
}

static void test_extract_broken_json_fence_does_not_fall_back_to_prose(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval_err(L, "json.extract('e.g. {\"a\": 0}\\n```json\\n{\"b\": 2,}\\n```')"),
               "json.extract: no JSON object or array in text (35 bytes, starts \"e.g. {\\\"a\\\": "
               "0}\\n```json\\n{\\\"...\"); the object at byte 23 does not parse: invalid JSON at "
               "byte 31 near \"}\" (trailing comma)");
  lua_close(L);
}

static void test_extract_prose_before_and_after(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval(L, "local v, s, f = json.extract('I think {\"ok\": true} is right.')\n"
                       "return json.encode(v) .. s .. ',' .. f"), "{\"ok\":true}9,20");
  lua_close(L);
}

static void test_extract_braces_inside_strings(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval(L, "return json.encode((json.extract("
                       "'x {\"a\": \"}{\", \"b\": \"[{\\\\\"\"} y')), {sort_keys=true})"),
               "{\"a\":\"}{\",\"b\":\"[{\\\"\"}");
  lua_close(L);
}

static void test_extract_close_before_open(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval(L, "return json.encode((json.extract('oops } ] then {\"a\": 1}')))"),
               "{\"a\":1}");
  lua_close(L);
}

static void test_extract_first_of_two_objects_wins(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval(L, "return json.encode((json.extract('{\"n\": 1} and {\"n\": 2}')))"),
               "{\"n\":1}");
  lua_close(L);
}

static void test_extract_skips_candidate_that_does_not_parse(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval(L, "return json.encode((json.extract('{\"a\": oops} then {\"b\": 1}')))"),
               "{\"b\":1}");
  ML_CHECK_STR(eval(L, "return json.encode((json.extract('{\"a\": {\"b\": 1} tail')))"),
               "{\"b\":1}");
  lua_close(L);
}

static void test_extract_array_at_top_level(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval(L, "local v = json.extract('[1, \"two\", {\"three\": 3}]')\n"
                       "return json.encode(v) .. tostring(getmetatable(v) == json.array_mt)"),
               "[1,\"two\",{\"three\":3}]true");
  lua_close(L);
}

static void test_extract_nested_fences(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval(L, "return json.encode((json.extract('````markdown\\nExample:\\n"
                       "```json\\n{\"inner\": true}\\n```\\n````')))"),
               "{\"inner\":true}");
  ML_CHECK_STR(eval(L, "return json.encode((json.extract('````\\nsee [not json]\\n"
                       "```\\n{\"in\": 1}\\n```\\n````')))"),
               "{\"in\":1}");
  lua_close(L);
}

static void test_extract_keeps_big_integers_exact(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval(L, "local v = json.extract('id: {\"id\": 9007199254740993, \"x\": \"1\"}')\n"
                       "return math.type(v.id) .. ' ' .. v.id"), "integer 9007199254740993");
  lua_close(L);
}

static void test_extract_unterminated_object_is_reported(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval_err(L, "json.extract('Sure! Here is the result: {\"a\": [1, 2')"),
               "json.extract: no JSON object or array in text (37 bytes, starts \"Sure! Here is "
               "the result...\"); an unterminated object starts at byte 27");
  lua_close(L);
}

static void test_extract_only_a_string_is_reported(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval_err(L, "json.extract(' \"just text\" ')"),
               "json.extract: no JSON object or array in text (13 bytes, starts \" \\\"just "
               "text\\\" \"); found only a bare string");
  ML_CHECK_STR(eval_err(L, "json.extract('42')"),
               "json.extract: no JSON object or array in text (2 bytes, starts \"42\"); found "
               "only a bare number");
  lua_close(L);
}

static void test_extract_prose_without_json_is_reported(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval_err(L, "json.extract('I cannot help with that.')"),
               "json.extract: no JSON object or array in text (24 bytes, starts \"I cannot help "
               "with that.\"); it has no '{' or '['");
  ML_CHECK_STR(eval_err(L, "json.extract('see {x} and [citation]')"),
               "json.extract: no JSON object or array in text (22 bytes, starts \"see {x} and "
               "[citation]\"); no '{' or '[' in it starts a JSON value");
  lua_close(L);
}

static void test_extract_empty_text_is_reported(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval_err(L, "json.extract('')"),
               "json.extract: no JSON object or array in text (0 bytes)");
  lua_close(L);
}

static void test_extract_single_quotes_are_explained(void) {
  lua_State *L = new_state();
  CHECK_HAS(eval_err(L, "json.extract(\"Here: {'a': 1}\")"),
            "the object at byte 7 does not parse: invalid JSON at byte 9 near \"a': 1}\" (JSON "
            "strings and keys need double quotes)");
  lua_close(L);
}

static void test_extract_invalid_utf8_around_json_is_fine(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval(L, "return json.encode((json.extract("
                       "'\\xff\\xfe {\"a\": \"\\u{e9}\"} \\xc0')))"),
               "{\"a\":\"\xc3\xa9\"}");
  lua_close(L);
}

static void test_extract_invalid_utf8_inside_json_is_reported(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval_err(L, "json.extract('{\"a\": \"x\\xffy\"}')"),
               "json.extract: no JSON object or array in text (12 bytes, starts \"{\\\"a\\\": "
               "\\\"x\\xffy\\\"}\"); the object at byte 1 has invalid UTF-8 at byte 9");
  lua_close(L);
}

static void test_extract_nul_bytes_around_json_are_fine(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval(L, "local v, s, f = json.extract('\\0\\0{\"a\": 1}\\0')\n"
                       "return json.encode(v) .. s .. ',' .. f"), "{\"a\":1}3,10");
  CHECK_HAS(eval_err(L, "json.extract('{\"a\":\\0 1}')"), "has a NUL byte at byte 6");
  lua_close(L);
}

/* Ten megabytes of hostile brackets must cost about one pass, not one pass per bracket. */
static void test_extract_ten_megabytes_of_open_braces_is_linear(void) {
  lua_State *L = new_state();
  clock_t t0 = clock();
  ML_CHECK_STR(eval_err(L, "json.extract(('{'):rep(10 * 1024 * 1024))"),
               "json.extract: no JSON object or array in text (10485760 bytes, starts "
               "\"{{{{{{{{{{{{{{{{{{{{{{{{...\"); an unterminated object starts at byte 10485760");
  ML_CHECK_STR(eval_err(L, "json.extract(('['):rep(10 * 1024 * 1024))"),
               "json.extract: no JSON object or array in text (10485760 bytes, starts "
               "\"[[[[[[[[[[[[[[[[[[[[[[[[...\"); the array at byte 1 is nested deeper than 200; "
               "gave up after 64 candidates");
  ML_CHECK_STR(eval_err(L, "json.extract(('{\"a\": '):rep(2 * 1024 * 1024))"),
               "json.extract: no JSON object or array in text (12582912 bytes, starts "
               "\"{\\\"a\\\": {\\\"a\\\": {\\\"a\\\": {\\\"a\\\": ...\"); the object at byte 1 is "
               "nested deeper than 200; gave up after 64 candidates");
  double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
  if (secs > 10)
    fprintf(stderr, "  took %.1f s\n", secs);
  ML_CHECK(secs < 10);
  lua_close(L);
}

/* An unterminated draft, then megabytes of prose brackets: still one pass or two. */
static void test_extract_finds_json_after_megabytes_of_stray_braces(void) {
  lua_State *L = new_state();
  clock_t t0 = clock();
  ML_CHECK_STR(eval(L, "local t = '{\"draft\": ' .. ('a {b} [c] x'):rep(500000) ..\n"
                       "  '{\"ok\": true}'\n"
                       "local v, s = json.extract(t)\n"
                       "return json.encode(v) .. ' at ' .. s"), "{\"ok\":true} at 5500011");
  ML_CHECK_STR(eval(L, "local t = ('a {b} [c] } ] {'):rep(500000) .. '{\"ok\": true}'\n"
                       "return json.encode((json.extract(t)))"), "{\"ok\":true}");
  ML_CHECK((double)(clock() - t0) / CLOCKS_PER_SEC < 10);
  lua_close(L);
}

static void test_extract_unterminated_unclosed_fence_still_searched(void) {
  lua_State *L = new_state();
  ML_CHECK_STR(eval(L, "return json.encode((json.extract('```json\\n{\"a\": 1}\\n')))"),
               "{\"a\":1}");
  lua_close(L);
}

static void test_extract_c_api_reports_span(void) {
  const char *text = "pre [1,2] post";
  size_t start = 0, end = 0;
  char err[256];
  cJSON *v = ml_json_extract(text, strlen(text), &start, &end, err, sizeof err);
  ML_CHECK(cJSON_IsArray(v));
  ML_CHECK_INT(start, 4);
  ML_CHECK_INT(end, 9);
  cJSON_Delete(v);
}

ML_TEST_MAIN(ML_CASE(test_unicode_round_trips_unescaped), ML_CASE(test_escapes_round_trip),
             ML_CASE(test_nul_in_string_encodes_as_u0000),
             ML_CASE(test_big_integers_stay_exact_integers),
             ML_CASE(test_integer_beyond_64_bits_decodes_as_float),
             ML_CASE(test_floats_round_trip_shortest),
             ML_CASE(test_integral_floats_print_without_fraction),
             ML_CASE(test_nested_arrays_and_objects_round_trip),
             ML_CASE(test_empty_table_is_object_unless_marked_array),
             ML_CASE(test_decoded_empty_array_stays_array),
             ML_CASE(test_array_refuses_foreign_metatable),
             ML_CASE(test_null_round_trips_as_sentinel),
             ML_CASE(test_sort_keys_is_bytewise_and_deterministic),
             ML_CASE(test_pretty_output_shape), ML_CASE(test_unknown_encode_option_is_refused),
             ML_CASE(test_encode_function_names_key_path),
             ML_CASE(test_encode_userdata_and_thread_are_refused),
             ML_CASE(test_encode_other_lightuserdata_is_refused),
             ML_CASE(test_encode_nan_and_inf_are_refused), ML_CASE(test_encode_cycle_is_refused),
             ML_CASE(test_encode_depth_limit), ML_CASE(test_encode_mixed_table_names_key),
             ML_CASE(test_encode_sparse_array_names_key),
             ML_CASE(test_encode_bad_key_types_are_named),
             ML_CASE(test_encode_marked_array_with_string_key_is_refused),
             ML_CASE(test_encode_invalid_utf8_names_byte),
             ML_CASE(test_decode_error_names_byte_and_excerpt),
             ML_CASE(test_decode_trailing_comma_is_explained),
             ML_CASE(test_decode_single_quotes_are_explained),
             ML_CASE(test_decode_unclosed_input_says_what_is_open),
             ML_CASE(test_decode_trailing_text_is_refused),
             ML_CASE(test_decode_empty_input_is_refused),
             ML_CASE(test_decode_refuses_invalid_utf8_and_nul),
             ML_CASE(test_decode_scalars_at_top_level),
             ML_CASE(test_decode_duplicate_keys_last_wins),
             ML_CASE(test_decode_depth_200_is_accepted), ML_CASE(test_decode_depth_201_is_refused),
             ML_CASE(test_decode_ten_thousand_brackets_refused_without_crash),
             ML_CASE(test_push_refuses_deep_cjson_tree), ML_CASE(test_push_converts_cjson_values),
             ML_CASE(test_from_lua_keeps_big_integers_exact_and_sorts_keys),
             ML_CASE(test_from_lua_returns_error_instead_of_raising),
             ML_CASE(test_print_sorts_and_formats_numbers), ML_CASE(test_null_helpers),
             ML_CASE(test_extract_fence_with_language_tag),
             ML_CASE(test_extract_fence_without_tag),
             ML_CASE(test_extract_json_fence_preferred_over_prose_example),
             ML_CASE(test_extract_broken_json_fence_does_not_fall_back_to_prose),
             ML_CASE(test_extract_prose_before_and_after),
             ML_CASE(test_extract_braces_inside_strings), ML_CASE(test_extract_close_before_open),
             ML_CASE(test_extract_first_of_two_objects_wins),
             ML_CASE(test_extract_skips_candidate_that_does_not_parse),
             ML_CASE(test_extract_array_at_top_level), ML_CASE(test_extract_nested_fences),
             ML_CASE(test_extract_keeps_big_integers_exact),
             ML_CASE(test_extract_unterminated_object_is_reported),
             ML_CASE(test_extract_only_a_string_is_reported),
             ML_CASE(test_extract_prose_without_json_is_reported),
             ML_CASE(test_extract_empty_text_is_reported),
             ML_CASE(test_extract_single_quotes_are_explained),
             ML_CASE(test_extract_invalid_utf8_around_json_is_fine),
             ML_CASE(test_extract_invalid_utf8_inside_json_is_reported),
             ML_CASE(test_extract_nul_bytes_around_json_are_fine),
             ML_CASE(test_extract_ten_megabytes_of_open_braces_is_linear),
             ML_CASE(test_extract_finds_json_after_megabytes_of_stray_braces),
             ML_CASE(test_extract_unterminated_unclosed_fence_still_searched),
             ML_CASE(test_extract_c_api_reports_span))

/* Chat request bodies: body_text must print exactly what cJSON prints for body_tree's
 * tree, for every spec it takes, and must step aside for the specs it does not take. */
#include <math.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lualib.h>

#include "llm/body.h"
#include "lua/json.h"
#include "ml_test.h"

struct tree_call {
  struct body_opts o;
  int want_json;
  char *text;
};

static int tree_text(lua_State *L) {
  struct tree_call *c = lua_touserdata(L, 2);
  cJSON *t = body_tree(L, 1, &c->o, &c->want_json);
  c->text = cJSON_PrintUnformatted(t);
  cJSON_Delete(t);
  return 0;
}

static lua_State *new_state(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  ml_json_open(L);
  lua_setglobal(L, "json");
  return L;
}

/* The spec the chunk returns, both ways. Returns 1 when body_text took it, 0 when it
 * stepped aside, -1 when the two disagree. */
static int compare(lua_State *L, const char *chunk, int stream_usage) {
  if (luaL_dostring(L, chunk) != LUA_OK) {
    fprintf(stderr, "  bad test chunk %s: %s\n", chunk, lua_tostring(L, -1));
    lua_settop(L, 0);
    return -1;
  }
  int spec = lua_gettop(L);
  struct tree_call c = {{"gpt-x", 1, 0, stream_usage, 0, SPEC_ALL_KEYS}, 0, NULL};
  lua_getfield(L, spec, "n");
  if (lua_isinteger(L, -1))
    c.o.n = (int)lua_tointeger(L, -1);
  lua_getfield(L, spec, "stream");
  c.o.stream = lua_toboolean(L, -1);
  lua_getfield(L, spec, "json");
  c.o.json = lua_toboolean(L, -1);
  lua_pop(L, 3);
  c.want_json = c.o.json;

  int top = lua_gettop(L);
  char *fast = body_text(L, spec, &c.o);
  int balanced = lua_gettop(L) == top;
  lua_pushcfunction(L, tree_text);
  lua_pushvalue(L, spec);
  lua_pushlightuserdata(L, &c);
  int ok = lua_pcall(L, 2, 0, 0) == LUA_OK;
  int rc;
  if (!balanced) {
    fprintf(stderr, "  body_text left the stack unbalanced for %s\n", chunk);
    rc = -1;
  } else if (fast == NULL) {
    rc = 0;
  } else if (!ok) {
    fprintf(stderr, "  body_text took a spec the tree refuses (%s): %s\n", lua_tostring(L, -1),
            chunk);
    rc = -1;
  } else if (strcmp(fast, c.text) != 0) {
    fprintf(stderr, "  bodies differ for %s\n    text: %s\n    tree: %s\n", chunk, fast, c.text);
    rc = -1;
  } else {
    rc = 1;
  }
  free(fast);
  free(c.text);
  lua_settop(L, 0);
  return rc;
}

/* Shapes the shortcut must take (and get right). */
static const char *const taken[] = {
    "return {prompt = 'hi', max_tokens = 16}",
    "return {model = 'x', prompt = 'say \"hi\"\\n\\tthen \\\\ stop \\1\\31\\127 caf\\195\\169'}",
    "return {prompt = 'p', system = 'be brief'}",
    "return {messages = {{role = 'user', content = 'a'}}}",
    "return {messages = {{role = 'system', content = 's'}, {role = 'user', content = 'u', name = 'n'},"
    " {content = 'c', role = 'assistant'}}, system = 'first'}",
    "return {messages = {{}}}",
    "return {prompt = 'x', temperature = 0.7, top_p = 1, max_tokens = 100, seed = 42}",
    "return {prompt = 'x', temperature = 1.0, top_p = 0.1 + 0.2, seed = -7}",
    "return {prompt = 'x', temperature = 1e20, top_p = 1 / 3, max_tokens = 16.5}",
    "return {prompt = 'x', temperature = -0.0, top_p = 1e-7, seed = 2^31}",
    "return {prompt = 'x', temperature = 2147483647, top_p = -2147483648, seed = 1 << 40}",
    "return {prompt = 'x', temperature = 0/0, top_p = 1/0, max_tokens = math.mininteger}",
    "return {prompt = 'x', temperature = 123456789.123456789, top_p = 5e-324}",
    "return {prompt = 'x', temperature = 1e15, top_p = 999999999999999, seed = -999999999999999}",
    "return {prompt = 'x', temperature = 2^53, top_p = 1e300, max_tokens = -1}",
    "return {prompt = 'x', temperature = 1e14 + 0.5, top_p = -1e-300, seed = math.maxinteger}",
    "return {prompt = 'x', n = 3}",
    "return {prompt = 'x', stop = 'END'}",
    "return {prompt = 'x', json = true}",
    "return {prompt = 'x', stream = true}",
    "return {prompt = 'x', stream = function() end, json = true, stop = 5, schema = 'no',"
    " extra = 'no', tags = {role = 'r'}, timeout_ms = 5, attempts = 1, cache = false}",
    "return {prompt = '\\255\\254 not UTF-8 is sent as it is'}",
    "return {messages = {{role = 'user', content = '\\u{10FFFF}\\u{E9}'}}}",
    "return {messages = {{zeta = 'z', alpha = 'a', al = 'b', ['\\195\\169'] = 'e'}}}",
};

/* Shapes it must leave to the tree (which builds them or reports the mistake). */
static const char *const left[] = {
    "return {prompt = 'x', schema = {type = 'object'}}",
    "return {prompt = 'x', extra = {logprobs = true}}",
    "return {prompt = 'x', stop = {'a', 'b'}}",
    "return {prompt = 'x', stop = 'bad \\255'}",
    "return {prompt = 'a\\0b'}",
    "return {prompt = 'x', system = 'a\\0b'}",
    "return {prompt = 'x', max_tokens = '16'}",
    "return {prompt = 'x', temperature = {}}",
    "return {prompt = 42}",
    "return {}",
    "return {messages = 'hi'}",
    "return {messages = {}}",
    "return {messages = {{role = 'user', content = {{type = 'text', text = 'x'}}}}}",
    "return {messages = {{role = 'user', content = 'bad \\255'}}}",
    "return {messages = {{role = 'user', content = 'x', cache = true, [1] = 2}}}",
    "return {messages = {{role = 'user', content = 'x'}, n = 2}}",
    "return {messages = {[2] = {role = 'user', content = 'x'}}}",
    "return {messages = setmetatable({{role = 'user', content = 'x'}}, {})}",
    "return {messages = {setmetatable({role = 'user', content = 'x'}, {})}}",
    "return {messages = {{a='1',b='2',c='3',d='4',e='5',f='6',g='7',h='8',i='9'}}}",
    "return {system = 5, prompt = 'x'}",
};

static void common_specs_are_written_directly_and_match_cjson(void) {
  lua_State *L = new_state();
  for (size_t i = 0; i < sizeof taken / sizeof taken[0]; i++) {
    ML_CHECK_INT(compare(L, taken[i], 0), 1);
    ML_CHECK_INT(compare(L, taken[i], 1), 1);
  }
  lua_close(L);
}

static void numbers_print_as_cjson_prints_them(void) {
  lua_State *L = new_state();
  unsigned long long x = 0x243f6a8885a308d3ULL;
  int bad = 0;
  for (int i = 0; i < 3000 && bad < 3; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    double d;
    if (i % 3 == 0) /* any bit pattern */
      memcpy(&d, &x, sizeof d);
    else if (i % 3 == 1) /* around the integers */
      d = (double)(long long)(x % 4000000000000000ULL) - 2e15 + (double)(x % 7) / 4;
    else /* everyday sampling values */
      d = (double)(x % 2001) / 1000;
    char chunk[128];
    snprintf(chunk, sizeof chunk, "return {prompt = 'x', temperature = %.17g}", d);
    if (isnan(d) || isinf(d))
      continue;
    if (compare(L, chunk, 0) != 1)
      bad++;
  }
  ML_CHECK_INT(bad, 0);
  lua_close(L);
}

static void other_specs_go_to_the_tree(void) {
  lua_State *L = new_state();
  for (size_t i = 0; i < sizeof left / sizeof left[0]; i++)
    ML_CHECK_INT(compare(L, left[i], 0), 0);
  lua_close(L);
}

static void absent_keys_are_not_looked_up(void) {
  /* With only the prompt bit set, a max_tokens the table holds is not read. */
  lua_State *L = new_state();
  luaL_dostring(L, "return {prompt = 'hi', max_tokens = 16}");
  struct body_opts o = {"m", 1, 0, 0, 0, 1u << SK_PROMPT};
  char *text = body_text(L, 1, &o);
  ML_CHECK_STR(text, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
  free(text);
  lua_close(L);
}

static void spec_keys_are_recognised(void) {
  static const char *const names[] = {"model", "messages", "prompt", "system", "temperature",
                                      "max_tokens", "stop", "json", "schema", "n", "stream",
                                      "timeout_ms", "cache", "tags", "extra", "seed", "top_p",
                                      "attempts"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    ML_CHECK_INT(spec_key_id(names[i], strlen(names[i])), (int)i);
  ML_CHECK_INT(spec_key_id("prompts", 7), -1);
  ML_CHECK_INT(spec_key_id("Model", 5), -1);
  ML_CHECK_INT(spec_key_id("", 0), -1);
}

ML_TEST_MAIN(ML_CASE(common_specs_are_written_directly_and_match_cjson),
             ML_CASE(numbers_print_as_cjson_prints_them),
             ML_CASE(other_specs_go_to_the_tree), ML_CASE(absent_keys_are_not_looked_up),
             ML_CASE(spec_keys_are_recognised))

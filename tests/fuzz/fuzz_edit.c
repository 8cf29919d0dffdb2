/* libFuzzer target for the SEARCH/REPLACE applier (lua/moonloop/edit.lua): edit.apply and
 * edit.parse_blocks on hostile model answers. The input is SOURCE NUL ANSWER; without a NUL
 * it is the answer alone, applied to a small recipe with two editable regions.
 *
 * Checked (SPEC section 6): parse_blocks, parse_rewrites and apply never raise an error,
 * they return (blocks, problems) and (new_source, info) or (nil, message); the same call
 * gives the same result (apply runs with the format the input's length picks: auto,
 * rewrite into challenger_prompt, or search_replace);
 * and an accepted edit leaves every byte outside the editable regions as it was: the frozen
 * text (the source with the bodies of `-- @editable NAME` ... `-- @end` removed, computed
 * here independently of edit.lua, with the marker grammar its header gives: a marker is a
 * whole line, "-- @end" alone or "-- @editable" and a name of letters, digits and _, and
 * any other "-- @editable" line is malformed) is identical before and after, and the regions keep their
 * names and order. So an answer cannot smuggle an `-- @end` into a region and write frozen
 * code after it. Each input has a memory cap and an instruction budget; running out of
 * either is reported as a finding too (a model answer must not hang the run). */
#include "fuzz_lua.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char harness[] =
    "local edit = ...\n"
    "local SAMPLE = table.concat({\n"
    "  'local asi = require \"moonloop.asi\"',\n"
    "  'return asi.recipe {',\n"
    "  '  name = \"fuzz\",',\n"
    "  '  -- @editable challenger_prompt',\n"
    "  '  challenger_prompt = [[Write one hard question about the source.',\n"
    "  'Ground it in a specific mechanism.]],',\n"
    "  '  -- @end',\n"
    "  '  max_rounds = 8,',\n"
    "  '  -- @editable refine_prompt',\n"
    "  '  refine_prompt = \"Earlier attempts failed:\",',\n"
    "  '  -- @end',\n"
    "  '  accept = { gap_min = 0.2 },',\n"
    "  '}',\n"
    "}, '\\n') .. '\\n'\n"
    /* The reference split: frozen lines, and region names in order, or nil when the markers
     * are not well formed (then only the no-raise and determinism checks apply). */
    "local function split(src)\n"
    "  local frozen, names, open = {}, {}, nil\n"
    "  for line in (src .. '\\n'):gmatch('(.-)\\r?\\n') do\n"
    "    local t = line:match('^%s*(.-)%s*$')\n"
    "    local name = t:match('^%-%-%s*@editable%s+([%w_]+)$')\n"
    "    if name then\n"
    "      if open then return nil end\n"
    "      open = name; names[#names + 1] = name; frozen[#frozen + 1] = line\n"
    "    elseif t:match('^%-%-%s*@end$') then\n"
    "      if not open then return nil end\n"
    "      open = nil; frozen[#frozen + 1] = line\n"
    "    elseif t:match('^%-%-%s*@editable') then\n"
    "      return nil\n"
    "    elseif not open then\n"
    "      frozen[#frozen + 1] = line\n"
    "    end\n"
    "  end\n"
    "  if open then return nil end\n"
    "  return table.concat(frozen, '\\n'), table.concat(names, ',')\n"
    "end\n"
    "local function same(a, b, depth)\n"
    "  if type(a) ~= type(b) then return false end\n"
    "  if type(a) ~= 'table' then return a == b or (a ~= a and b ~= b) end\n"
    "  if depth > 8 then return true end\n"
    "  for k, v in pairs(a) do if not same(v, b[k], depth + 1) then return false end end\n"
    "  for k in pairs(b) do if a[k] == nil then return false end end\n"
    "  return true\n"
    "end\n"
    "local OPTS = { {}, { format = 'rewrite', region = 'challenger_prompt' },\n"
    "  { format = 'search_replace' } }\n"
    "return function(input)\n"
    "  local source, answer = input:match('^(.-)%z(.*)$')\n"
    "  if not source then source, answer = SAMPLE, input end\n"
    "  local ok, blocks, errs = pcall(edit.parse_blocks, answer)\n"
    "  if not ok then error('parse_blocks raised: ' .. tostring(blocks), 0) end\n"
    "  if type(blocks) ~= 'table' then error('parse_blocks returned ' .. type(blocks), 0) end\n"
    "  local ok2, blocks2, errs2 = pcall(edit.parse_blocks, answer)\n"
    "  if not ok2 or not same(blocks, blocks2, 0) or not same(errs, errs2, 0) then\n"
    "    error('parse_blocks is not deterministic', 0)\n"
    "  end\n"
    "  local okr, rws = pcall(edit.parse_rewrites, answer)\n"
    "  if not okr or type(rws) ~= 'table' then error('parse_rewrites raised: ' .. tostring(rws), "
    "0) end\n"
    "  local opts = OPTS[#input % 3 + 1]\n"
    "  local ok3, new, err = pcall(edit.apply, source, answer, opts)\n"
    "  if not ok3 then error('apply raised: ' .. tostring(new), 0) end\n"
    "  if new == nil then\n"
    "    if type(err) ~= 'string' or err == '' then error('apply refused without a message', 0) "
    "end\n"
    "  elseif type(new) ~= 'string' then\n"
    "    error('apply returned a ' .. type(new), 0)\n"
    "  end\n"
    "  local ok4, new2, err2 = pcall(edit.apply, source, answer, opts)\n"
    "  if not ok4 or new2 ~= new or not same(err, err2, 0) then\n"
    "    error('apply is not deterministic', 0)\n"
    "  end\n"
    "  if new then\n"
    "    local f1, n1 = split(source)\n"
    "    if f1 then\n"
    "      local f2, n2 = split(new)\n"
    "      if not f2 then error('an accepted edit broke the region markers', 0) end\n"
    "      if n2 ~= n1 then error('an accepted edit changed the regions: ' .. n1 .. ' -> ' .. n2, "
    "0) end\n"
    "      if f2 ~= f1 then error('an accepted edit changed text outside the regions', 0) end\n"
    "    end\n"
    "  end\n"
    "end\n";

static struct fuzz_lua f;
static int check_ref = LUA_NOREF;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (f.L == NULL) {
    fuzz_lua_open(&f, 256, 20000, 1);
    fuzz_lua_require(&f, "moonloop.edit", "edit");
    check_ref = fuzz_lua_harness(&f, "fuzz_edit", harness, sizeof harness - 1, "edit");
  }
  fuzz_lua_check(&f, "fuzz_edit", check_ref, data, size);
  return 0;
}

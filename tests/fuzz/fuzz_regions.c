/* libFuzzer target for the editable-region parser (lua/moonloop/edit.lua): edit.regions on
 * arbitrary recipe text, markers nested, unclosed, duplicated, indented, with CRLF, inside
 * strings, or with invalid UTF-8.
 *
 * Checked: regions never raises and returns (regions, problems) with regions a table and
 * problems nil or a table; the same call gives the same result; each region has a string
 * name; and when the text has well-formed markers (computed here independently) and
 * edit.regions reports no problem, it finds exactly those regions in that order. Memory and
 * instructions are capped per input; running out of either is a finding. */
#include "fuzz_lua.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char harness[] =
    "local edit = ...\n"
    "local function names_of(src)\n"
    "  local names, open = {}, nil\n"
    "  for line in (src .. '\\n'):gmatch('(.-)\\r?\\n') do\n"
    "    local t = line:match('^%s*(.-)%s*$')\n"
    "    local name = t:match('^%-%-%s*@editable%s+([%w_]+)$')\n"
    "    if name then\n"
    "      if open then return nil end\n"
    "      open = name; names[#names + 1] = name\n"
    "    elseif t:match('^%-%-%s*@end$') then\n"
    "      if not open then return nil end\n"
    "      open = nil\n"
    "    elseif t:match('^%-%-%s*@editable') then\n"
    "      return nil\n"
    "    end\n"
    "  end\n"
    "  if open then return nil end\n"
    "  local seen = {}\n"
    "  for _, n in ipairs(names) do if seen[n] then return nil end seen[n] = true end\n"
    "  return table.concat(names, ',')\n"
    "end\n"
    "local function listed(regions)\n"
    "  local out = {}\n"
    "  for i, r in ipairs(regions) do\n"
    "    if type(r) ~= 'table' or type(r.name) ~= 'string' then\n"
    "      error('region ' .. i .. ' has no string name', 0)\n"
    "    end\n"
    "    out[#out + 1] = r.name\n"
    "  end\n"
    "  return table.concat(out, ',')\n"
    "end\n"
    "return function(src)\n"
    "  local ok, regions, problems = pcall(edit.regions, src)\n"
    "  if not ok then error('regions raised: ' .. tostring(regions), 0) end\n"
    "  if type(regions) ~= 'table' then error('regions returned a ' .. type(regions), 0) end\n"
    "  if problems ~= nil and type(problems) ~= 'table' then\n"
    "    error('problems is a ' .. type(problems), 0)\n"
    "  end\n"
    "  local got = listed(regions)\n"
    "  local ok2, regions2, problems2 = pcall(edit.regions, src)\n"
    "  if not ok2 or listed(regions2) ~= got or (problems2 == nil) ~= (problems == nil) or\n"
    "     (problems and #problems ~= #problems2) then\n"
    "    error('regions is not deterministic', 0)\n"
    "  end\n"
    "  local want = names_of(src)\n"
    "  if want and (problems == nil or #problems == 0) and got ~= want then\n"
    "    error('regions found [' .. got .. '], the markers say [' .. want .. ']', 0)\n"
    "  end\n"
    "end\n";

static struct fuzz_lua f;
static int check_ref = LUA_NOREF;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (f.L == NULL) {
    fuzz_lua_open(&f, 256, 20000, 1);
    fuzz_lua_require(&f, "moonloop.edit", "edit");
    check_ref = fuzz_lua_harness(&f, "fuzz_regions", harness, sizeof harness - 1, "edit");
  }
  fuzz_lua_check(&f, "fuzz_regions", check_ref, data, size);
  return 0;
}

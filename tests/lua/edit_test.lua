-- Self-edits: region parsing, SEARCH/REPLACE and whole-region rewrites, the frozen-text
-- check, and the diff, with the hostile answers a model can give.
package.path = os.getenv("MOONLOOP_LUA_DIR") .. "/?.lua;" .. package.path
local t = dofile("lib/t.lua")
local edit = require "moonloop.edit"

local SRC = table.concat({
  "local asi = require \"moonloop.asi\"",           -- 1
  "return asi.recipe {",                            -- 2
  "  name = \"x\",",                                -- 3
  "  -- @editable challenger_prompt",               -- 4
  "  challenger_prompt = [[",                       -- 5
  "Ask a question.",                                -- 6
  "Be precise.",                                    -- 7
  "Ask a question.",                                -- 8
  "]],",                                            -- 9
  "  -- @end",                                      -- 10
  "  accept = { gap_min = 0.20 },",                 -- 11
  "  -- @editable refine_prompt",                   -- 12
  "  refine_prompt = \"Try again.\",",              -- 13
  "  -- @end",                                      -- 14
  "}",                                              -- 15
  "",
}, "\n")

local function block(region, search, replace)
  return ("<<<<<<< SEARCH %s\n%s\n=======\n%s\n>>>>>>> REPLACE"):format(region, search, replace)
end

t.test("regions: names, marker lines and bodies", function()
  local r, p = edit.regions(SRC)
  t.eq(#p, 0, "problems")
  t.eq(#r, 2)
  t.eq(r[1].name, "challenger_prompt"); t.eq(r[1].open, 4); t.eq(r[1].close, 10)
  t.eq(r[1].first, 5); t.eq(r[1].last, 9)
  t.eq(r[2].text, "  refine_prompt = \"Try again.\",")
end)

t.test("regions: unclosed, nested, duplicate and stray markers are reported with lines", function()
  local _, p = edit.regions("-- @editable a\nx\n")
  t.ok(p[1]:find("line 1: region \"a\" is never closed", 1, true), p[1])
  _, p = edit.regions("-- @editable a\n-- @editable b\n-- @end\n")
  t.ok(p[1]:find("line 2: region \"b\" starts inside region \"a\"", 1, true), p[1])
  _, p = edit.regions("-- @editable a\n-- @end\n-- @editable a\n-- @end\n")
  t.ok(p[1]:find("line 3: region \"a\" is defined twice", 1, true), p[1])
  _, p = edit.regions("x\n-- @end\n")
  t.ok(p[1]:find("line 2: @end without @editable", 1, true), p[1])
  _, p = edit.regions("-- @editable a-b\n-- @end\n")
  t.ok(p[1]:find("line 1: malformed marker", 1, true), p[1])
end)

t.test("a SEARCH/REPLACE block changes only its region", function()
  local new, info = edit.apply(SRC, "Here is my edit.\n\n" .. block("challenger_prompt", "Be precise.", "Be precise.\nName the mechanism."))
  t.ok(new, info)
  t.eq(info.format, "search_replace")
  t.ok(new:find("Be precise.\nName the mechanism.", 1, true))
  t.eq(edit.check(SRC, new), true)
  t.eq(edit.frozen_hash(SRC), edit.frozen_hash(new), "frozen hash")
end)

t.test("a SEARCH that matches twice is rejected naming both lines", function()
  local new, err = edit.apply(SRC, block("challenger_prompt", "Ask a question.", "Ask two."))
  t.eq(new, nil)
  t.ok(err:find("occurs 2 times in region \"challenger_prompt\", at lines 6 and 8", 1, true), err)
end)

t.test("a SEARCH that matches nothing is rejected naming the region and its lines", function()
  local _, err = edit.apply(SRC, block("challenger_prompt", "Ask a query.", "x"))
  t.ok(err:find("matches nothing in region \"challenger_prompt\" (lines 5-9 of the file)", 1, true), err)
  t.ok(err:find("\"Ask a query.\"", 1, true), err)
end)

t.test("an edit aimed at a frozen threshold is rejected, however it is phrased", function()
  -- addressed to a region that does not exist
  local _, err = edit.apply(SRC, block("accept", "gap_min = 0.20", "gap_min = 0.0"))
  t.ok(err:find("\"accept\", which is not an editable region", 1, true), err)
  -- text outside the region, addressed to a region: not found there
  _, err = edit.apply(SRC, block("challenger_prompt", "accept = { gap_min = 0.20 },", "accept = { gap_min = 0 },"))
  t.ok(err:find("matches nothing in region", 1, true), err)
  -- closing the region early to reach the frozen part
  _, err = edit.apply(SRC, block("challenger_prompt", "Be precise.", "]],\n  -- @end\n  accept = { gap_min = 0 },\n  -- @editable challenger_prompt"))
  t.ok(err:find("contains a region marker", 1, true), err)
  -- a whole file written back with a changed threshold
  local changed = SRC:gsub("gap_min = 0.20", "gap_min = 0.0")
  local ok, cerr = edit.check(SRC, changed)
  t.eq(ok, nil)
  t.ok(cerr:find("changes frozen text outside the editable regions (near line", 1, true), cerr)
  t.ok(edit.frozen_hash(SRC) ~= edit.frozen_hash(changed), "frozen hash differs")
end)

t.test("re-indented SEARCH text still matches when it is unique", function()
  local new, err = edit.apply(SRC, block("refine_prompt", "refine_prompt = \"Try again.\",", "  refine_prompt = \"Try a new angle.\","))
  t.ok(new, err)
  t.ok(new:find("Try a new angle", 1, true))
end)

t.test("malformed blocks: no separator, not closed, empty SEARCH, no region name", function()
  local _, err = edit.apply(SRC, "<<<<<<< SEARCH challenger_prompt\nBe precise.\n>>>>>>> REPLACE")
  t.ok(err:find("answer line 3: the block of line 1 has no =======", 1, true), err)
  _, err = edit.apply(SRC, "<<<<<<< SEARCH challenger_prompt\nBe precise.\n=======\nx")
  t.ok(err:find("answer line 1: the block is not closed", 1, true), err)
  _, err = edit.apply(SRC, "<<<<<<< SEARCH challenger_prompt\n=======\nx\n>>>>>>> REPLACE")
  t.ok(err:find("the SEARCH text is empty", 1, true), err)
  _, err = edit.apply(SRC, "<<<<<<< SEARCH\nBe precise.\n=======\nx\n>>>>>>> REPLACE")
  t.ok(err:find("names no region", 1, true), err)
  _, err = edit.apply(SRC, "I think the prompt is fine.")
  t.ok(err:find("no BEGIN REGION", 1, true), err)
end)

t.test("hostile answers: huge, binary, and a region bomb", function()
  local _, err = edit.apply(SRC, ("x"):rep(edit.MAX_ANSWER + 1))
  t.ok(err:find("at most", 1, true), err)
  _, err = edit.apply(SRC, "\0\255\254<<<<<<< SEARCH\0")
  t.ok(err ~= nil, "binary answer rejected")
  _, err = edit.apply(SRC, block("refine_prompt", "Try again.", ("y"):rep(edit.MAX_REGION)))
  t.ok(err:find("would grow to", 1, true), err)
end)

t.test("whole-region rewrite replaces the region and keeps the rest", function()
  local new, info = edit.apply(SRC, "BEGIN REGION refine_prompt\n  refine_prompt = \"Start over.\",\nEND REGION\n", { format = "rewrite" })
  t.ok(new, info)
  t.eq(info.format, "rewrite")
  t.eq(edit.check(SRC, new), true)
  t.ok(new:find("Start over", 1, true) and not new:find("Try again", 1, true))
  local _, err = edit.apply(SRC, "BEGIN REGION nope\nx\nEND REGION")
  t.ok(err:find("\"nope\", which is not an editable region", 1, true), err)
  _, err = edit.apply(SRC, "BEGIN REGION refine_prompt\nx\n")
  t.ok(err:find("not closed with END REGION", 1, true), err)
end)

t.test("several blocks apply in order and the second sees the first's result", function()
  local new, err = edit.apply(SRC, block("challenger_prompt", "Be precise.", "Be exact.") .. "\n"
    .. block("challenger_prompt", "Be exact.", "Be exact and brief."))
  t.ok(new, err)
  t.ok(new:find("Be exact and brief.", 1, true))
end)

t.test("diff shows the changed lines with context and is empty for equal texts", function()
  local new = edit.apply(SRC, block("challenger_prompt", "Be precise.", "Be exact."))
  local d = edit.diff(SRC, new, "v1", "v2")
  t.ok(d:find("--- v1\n+++ v2\n@@ -4,7 +4,7 @@", 1, true), d)
  t.ok(d:find("\n-Be precise.\n+Be exact.\n", 1, true), d)
  t.eq(edit.diff(SRC, SRC), "")
  local d2 = edit.diff("a\nb\n", "a\nb\nc\n")
  t.ok(d2:find("+c", 1, true), d2)
end)

t.test("an edit keeps every byte outside its region, CRLF line endings included", function()
  -- A file saved with CRLF endings, one frozen line with a stray extra "\r" (what the
  -- fuzzer found: a rebuild that re-split lines at "\r?\n" dropped one "\r" per line).
  local crlf = SRC:gsub("\n", "\r\n"):gsub("name = \"x\",", "name = \"x\",\r")
  local new, info = edit.apply(crlf, "BEGIN REGION refine_prompt\n  refine_prompt = \"Again.\",\nEND REGION\n",
    { format = "rewrite" })
  t.ok(new, info)
  t.ok(new:find("refine_prompt = \"Again.\",", 1, true), new)
  local before = crlf:gsub("  %-%- @editable refine_prompt.-%-%- @end", "")
  local after = new:gsub("  %-%- @editable refine_prompt.-%-%- @end", "")
  t.eq(after, before, "the bytes outside refine_prompt")
  t.ok(new:find("name = \"x\",\r\r\n", 1, true), "the stray \\r is still there")
  t.ok(new:find("-- @editable challenger_prompt\r\n  challenger_prompt = [[\r\n", 1, true),
    "the untouched region keeps its CRLF endings")
  t.eq(edit.frozen_hash(crlf), edit.frozen_hash(new), "frozen hash")
  local lf = edit.apply(SRC, "BEGIN REGION refine_prompt\nx\nEND REGION\n", { format = "rewrite" })
  t.eq(edit.frozen(lf), edit.frozen(SRC), "LF files: frozen text as before")
end)

t.done()

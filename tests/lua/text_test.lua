-- The text module: templates, UTF-8-safe truncation, word counts, near-duplicate scores and
-- the stable hash. Pure functions, so every test is a plain call; hostile inputs included.
local t = dofile("lib/t.lua")

-- render ------------------------------------------------------------------------------

t.test("render replaces {{name}} and {{ name }}", function()
  t.eq(text.render("{{a}}-{{ b }}-{{\tc\t}}", { a = 1, b = "two", c = "3" }), "1-two-3")
end)

t.test("render converts values with tostring, __tostring included", function()
  local obj = setmetatable({}, { __tostring = function() return "OBJ" end })
  t.eq(text.render("{{x}} {{y}} {{z}} {{f}}", { x = false, y = 1.5, z = obj, f = 10 }),
    "false 1.5 OBJ 10")
end)

t.test("render raises for an unknown name, naming it and its position", function()
  local err = t.raises(function() text.render("Hello {{ who }}", {}) end)
  t.ok(tostring(err):find("unknown name 'who' at position 7", 1, true), tostring(err))
end)

t.test("render reports the line and column of an unknown name in a long template", function()
  local err = t.raises(function() text.render("line one\nline {{two}}", { one = 1 }) end)
  t.ok(tostring(err):find("position 15 (line 2, column 6)", 1, true), tostring(err))
end)

t.test("render without vars works for a template without placeholders", function()
  t.eq(text.render("plain text"), "plain text")
  t.raises(function() text.render("{{x}}") end, "unknown name 'x'")
end)

t.test("render writes a literal {{ with the {{\"{{\"}} escape", function()
  t.eq(text.render('use {{"{{"}}name}} for a variable'), "use {{name}} for a variable")
  t.eq(text.render('{{ "}}" }}'), "}}")
end)

t.test("render leaves single braces and a lone }} alone, so JSON passes through", function()
  t.eq(text.render('{"a": {"b": 1}} {{v}}', { v = "!" }), '{"a": {"b": 1}} !')
  t.eq(text.render("ends with {"), "ends with {")
end)

t.test("render refuses a malformed placeholder instead of passing it through", function()
  t.raises(function() text.render("{{ name", { name = 1 }) end, "expected }}")
  t.raises(function() text.render("{{}}", {}) end, "expected a name")
  t.raises(function() text.render("{{ 1abc }}", {}) end, "expected a name")
  t.raises(function() text.render("{{ a-b }}", { a = 1 }) end, "expected }}")
  t.raises(function() text.render('{{ "open }}', {}) end, "unterminated")
end)

t.test("render does not expand placeholders that arrive inside values", function()
  -- A value (say, model output) holding {{secret}} must not pull in another variable.
  t.eq(text.render("{{a}}", { a = "{{secret}}", secret = "S" }), "{{secret}}")
end)

t.test("render looks names up with __index, so a proxy table works", function()
  local vars = setmetatable({}, { __index = function(_, k) return k:upper() end })
  t.eq(text.render("{{abc}}", vars), "ABC")
end)

t.test("render keeps NUL bytes and invalid UTF-8 in the template as they are", function()
  t.eq(text.render("a\0b\255{{x}}", { x = "\0" }), "a\0b\255\0")
end)

t.test("render checks its arguments", function()
  t.raises(function() text.render(nil) end, "bad argument #1")
  t.raises(function() text.render("x", "vars") end, "bad argument #2")
end)

-- truncate ----------------------------------------------------------------------------

t.test("truncate returns the string itself when it fits", function()
  t.eq(text.truncate("hello", 5), "hello")
  t.eq(text.truncate("hello", 100, "..."), "hello")
end)

t.test("truncate never cuts a UTF-8 character in half", function()
  local s = "aé東😀" -- 1 + 2 + 3 + 4 bytes
  t.eq(text.truncate(s, 2), "a")
  t.eq(text.truncate(s, 3), "aé")
  t.eq(text.truncate(s, 5), "aé")
  t.eq(text.truncate(s, 6), "aé東")
  t.eq(text.truncate(s, 9), "aé東")
  t.eq(text.truncate(s, 0), "")
  for n = 0, #s do t.ok(utf8.len(text.truncate(s, n)), "valid UTF-8 at max " .. n) end
end)

t.test("truncate counts the ellipsis within max_bytes", function()
  local r = text.truncate("abcdefghij", 6, "...")
  t.eq(r, "abc...")
  t.eq(#r, 6)
  -- 3 bytes are left for the text: one é, not one and a half.
  t.eq(text.truncate("ééééé", 6, "…"), "é…")
end)

t.test("truncate cuts the ellipsis itself when not even it fits", function()
  t.eq(text.truncate("abcdef", 2, "..."), "..")
  t.eq(text.truncate("abcdef", 2, "…"), "")
end)

t.test("truncate cuts invalid UTF-8 at max_bytes without looping", function()
  t.eq(text.truncate(("\128"):rep(10), 4), ("\128"):rep(4))
  t.eq(text.truncate("\255\255\255", 1), "\255")
end)

t.test("truncate rejects a negative or fractional max_bytes", function()
  t.raises(function() text.truncate("abc", -1) end, "max_bytes must be >= 0")
  t.raises(function() text.truncate("abc", 1.5) end, "bad argument #2")
end)

-- similarity --------------------------------------------------------------------------

t.test("similarity of identical texts is 1 and of disjoint texts 0", function()
  local s = "the quick brown fox jumps over the lazy dog"
  t.eq(text.similarity(s, s), 1.0)
  t.eq(text.similarity(s, "completely different words appear in this one"), 0.0)
end)

t.test("similarity ignores case, punctuation and spacing", function()
  t.eq(text.similarity("The cat sat on the mat.", "the  CAT, sat on the mat!"), 1.0)
end)

t.test("similarity scores a near-duplicate high and a rewrite low", function()
  local a = "Write a function that returns the sum of two numbers and prints it to the screen"
  local near = "Write a function that returns the sum of two numbers and prints it to the console"
  local far = "Explain how photosynthesis turns light into chemical energy inside plant cells"
  t.ok(text.similarity(a, near) > 0.7, "near: " .. text.similarity(a, near))
  t.ok(text.similarity(a, far) < 0.1, "far: " .. text.similarity(a, far))
end)

t.test("similarity is symmetric", function()
  local a, b = "one two three four five", "three four five six seven eight"
  t.eq(text.similarity(a, b), text.similarity(b, a))
end)

t.test("similarity uses word order through shingles for longer texts", function()
  -- Same words, reversed order: word sets are equal, shingles share nothing.
  t.eq(text.similarity("alpha beta gamma delta", "delta gamma beta alpha"), 0.0)
end)

t.test("similarity falls back to word sets for texts under three words", function()
  t.eq(text.similarity("hello world", "world hello"), 1.0)
  t.eq(text.similarity("hello", "hello there"), 0.5)
end)

t.test("similarity of empty and punctuation-only texts", function()
  t.eq(text.similarity("", ""), 1.0)
  t.eq(text.similarity("...", "!!!"), 1.0)
  t.eq(text.similarity("", "words here"), 0.0)
end)

t.test("similarity handles a large text quickly", function()
  local words = {}
  for i = 1, 200000 do words[i] = "w" .. (i % 5000) end
  local big = table.concat(words, " ")
  local t0 = os.clock()
  t.eq(text.similarity(big, big), 1.0)
  t.ok(os.clock() - t0 < 2, "took " .. (os.clock() - t0) .. " s")
end)

-- hash --------------------------------------------------------------------------------

t.test("hash is 32 lowercase hex digits and matches MurmurHash3 x64-128", function()
  local h = text.hash("The quick brown fox jumps over the lazy dog")
  t.eq(h, "e34bbc7bbc071b6c7a433ca9c49a9347")
  t.eq(text.hash(""), ("0"):rep(32))
  t.ok(text.hash("abc"):match("^[0-9a-f]+$") and #text.hash("abc") == 32)
end)

t.test("hash tells apart inputs that differ in one byte or only in length", function()
  local seen = {}
  for n = 0, 64 do
    local h = text.hash(("a"):rep(n))
    t.eq(seen[h], nil, "collision at length " .. n)
    seen[h] = true
  end
  t.ok(text.hash("a\0b") ~= text.hash("a\0c"))
end)

t.test("hash is the same for the same bytes every time", function()
  t.eq(text.hash("key"), text.hash("k" .. "ey"))
end)

t.test("hash refuses a non-string", function()
  t.raises(function() text.hash({}) end, "bad argument #1")
end)

-- words -------------------------------------------------------------------------------

t.test("words counts whitespace-separated words", function()
  t.eq(text.words("one two  three\nfour\tfive"), 5)
  t.eq(text.words(""), 0)
  t.eq(text.words("   "), 0)
end)

t.test("words does not count punctuation on its own", function()
  t.eq(text.words("hello , world - !"), 2)
  t.eq(text.words("don't stop"), 2)
end)

t.test("words counts non-ASCII words", function()
  t.eq(text.words("naïve café 東京"), 3)
end)

-- the module itself -------------------------------------------------------------------

t.test("text has exactly its five pure functions (no I/O to leak into a sandbox)", function()
  local names = {}
  for k in pairs(text) do names[#names + 1] = k end
  table.sort(names)
  t.eq(table.concat(names, ","), "hash,render,similarity,truncate,words")
end)

t.done()

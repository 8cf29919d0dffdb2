-- Work items from a recipe's sources: files and globs (relative to the recipe's folder),
-- read and cut into chunks at paragraph boundaries where possible.
local M = {}

local function is_abs(p) return p:sub(1, 1) == "/" end

-- Cut text into chunks of at most `size` bytes, preferring blank lines, then line ends,
-- then spaces; consecutive chunks share about `overlap` bytes of context.
function M.chunk(text, size, overlap)
  if #text <= size then return { text } end
  local chunks, start = {}, 1
  while start <= #text do
    local stop = math.min(start + size - 1, #text)
    if stop < #text then
      local window = text:sub(start, stop)
      local cut = window:match(".*()\n%s*\n") or window:match(".*()\n") or window:match(".*() ")
      if cut and cut > size / 2 then stop = start + cut - 1 end
    end
    chunks[#chunks + 1] = text:sub(start, stop)
    if stop >= #text then break end
    start = math.max(stop + 1 - overlap, start + 1)
  end
  return chunks
end

-- Items {id=, source=, chunk=, text=} in a stable order (sorted file names).
function M.load(recipe, base_dir)
  local patterns = type(recipe.sources) == "table" and recipe.sources or { recipe.sources }
  local files, seen = {}, {}
  for _, pat in ipairs(patterns) do
    local full = is_abs(pat) and pat or fs.join(base_dir, pat)
    local matches = fs.glob(full)
    if #matches == 0 then
      error(("recipe %s: sources %q matched no file (looked for %s)"):format(recipe.name, pat, full), 0)
    end
    for _, f in ipairs(matches) do
      if not seen[f] then seen[f] = true; files[#files + 1] = f end
    end
  end
  local items = {}
  for _, f in ipairs(files) do
    local text = fs.read(f)
    local label = fs.basename(f)
    for i, c in ipairs(M.chunk(text, recipe.chunk.size, recipe.chunk.overlap)) do
      if c:match("%S") then
        items[#items + 1] = { id = #items + 1, source = label, chunk = i, text = c }
      end
      if recipe.max_items and #items >= recipe.max_items then return items end
    end
  end
  return items
end

return M

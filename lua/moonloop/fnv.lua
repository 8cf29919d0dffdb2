-- A fast non-cryptographic string hash for deterministic choices (the mock server's
-- default answers, the simulator's random streams): FNV-1a over 8-byte words, then the
-- byte tail, and MurmurHash3's finalizer to spread every input bit over the whole word.
local M = {}

local unpack, byte = string.unpack, string.byte

M.OFFSET = 0xcbf29ce484222325 -- wraps to a negative integer; arithmetic is mod 2^64
M.PRIME = 0x100000001b3

-- One multiply per 8 bytes keeps long prompts cheap in Lua.
function M.feed(h, s)
  local n, i = #s, 1
  while i + 7 <= n do
    h = (h ~ unpack("<i8", s, i)) * M.PRIME
    i = i + 8
  end
  while i <= n do
    h = (h ~ byte(s, i)) * M.PRIME
    i = i + 1
  end
  return h
end

function M.avalanche(h)
  h = (h ~ (h >> 33)) * 0xff51afd7ed558ccd
  h = (h ~ (h >> 33)) * 0xc4ceb9fe1a85ec53
  return h ~ (h >> 33)
end

return M

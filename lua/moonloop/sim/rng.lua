-- Hashing and a small seeded PRNG for the simulator. Every random choice the simulated
-- models make comes from a generator seeded by a hash of the request, never from shared
-- state, so the same request gives the same answer in any process and in any order.
local M = {}

local fnv = require "moonloop.fnv"

local FNV_OFFSET, FNV_PRIME, avalanche = fnv.OFFSET, fnv.PRIME, fnv.avalanche

-- Strings are separated by one more multiply so ("ab", "c") and ("a", "bc") differ.
local function feed(h, s)
  return fnv.feed(h, s) * FNV_PRIME
end

M.avalanche = avalanche

-- hash(...) -> a 64-bit integer from any mix of strings and numbers.
function M.hash(...)
  local h = FNV_OFFSET
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    h = feed(h, type(v) == "string" and v or tostring(v))
  end
  return avalanche(h)
end

local Gen = {}
Gen.__index = Gen

-- splitmix64: tiny, fast, and the same sequence for the same seed everywhere.
function Gen:next()
  self.s = self.s + 0x9e3779b97f4a7c15
  local z = self.s
  z = (z ~ (z >> 30)) * 0xbf58476d1ce4e5b9
  z = (z ~ (z >> 27)) * 0x94d049bb133111eb
  return z ~ (z >> 31)
end

-- Uniform in [0, 1) from the top 53 bits.
function Gen:float()
  return (self:next() >> 11) * (1.0 / 9007199254740992.0)
end

-- Uniform integer in [lo, hi].
function Gen:int(lo, hi)
  return lo + math.floor(self:float() * (hi - lo + 1))
end

function Gen:chance(p)
  return self:float() < p
end

function Gen:pick(list)
  return list[self:int(1, #list)]
end

-- Standard normal draw (Box-Muller; one value per call keeps the sequence simple).
function Gen:normal()
  local u = 1.0 - self:float()
  return math.sqrt(-2.0 * math.log(u)) * math.cos(2.0 * math.pi * self:float())
end

-- A shuffled copy of list (Fisher-Yates).
function Gen:shuffled(list)
  local out = table.move(list, 1, #list, 1, {})
  for i = #out, 2, -1 do
    local j = self:int(1, i)
    out[i], out[j] = out[j], out[i]
  end
  return out
end

-- k distinct items of list in random order (all of them when k >= #list).
function Gen:sample(list, k)
  local out = self:shuffled(list)
  for i = #out, k + 1, -1 do out[i] = nil end
  return out
end

-- new(seed) -> a generator; seed is an integer (a hash) or any value hash() accepts.
function M.new(seed)
  if math.type(seed) ~= "integer" then seed = M.hash(seed) end
  return setmetatable({ s = seed }, Gen)
end

return M

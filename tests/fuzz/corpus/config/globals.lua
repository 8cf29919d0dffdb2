table = nil; string = nil
local p = {}
for i = 1, 40 do p["p" .. i] = { kind = i % 2 == 0 and "openai" or "sim" } end
return { providers = p, models = { [1] = "x" } }

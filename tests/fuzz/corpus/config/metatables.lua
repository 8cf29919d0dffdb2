local t = { providers = { a = { kind = "sim" } } }
return setmetatable(t, { __index = function(_, k) error("no " .. k) end })

local s = [[
-- @editable inside_string
]]
-- @editable r
ÿþ
-- @end

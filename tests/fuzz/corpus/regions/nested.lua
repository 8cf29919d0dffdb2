-- @editable a
-- @editable b
x
-- @end
-- @end

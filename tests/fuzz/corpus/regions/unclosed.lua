-- @editable a
x

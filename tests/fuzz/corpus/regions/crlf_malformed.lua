  --@editable   crlf_name  
body
	-- @end	
-- @editable bad-name
-- @editable
-- @endx

-- Revision strategy "rewrite_region": the analyst returns the whole new text of one region
-- (BEGIN REGION name ... END REGION). The fallback for models that do not produce exact
-- SEARCH text. Same contract as search_replace.lua.
local common = require "moonloop.strategies.common"

local S = { name = "rewrite_region", format = "rewrite" }

-- @editable analyst_instructions
S.instructions = [[
FORMAT: rewrite
Propose ONE focused improvement to an editable region that should raise the validation
pass rate. Start with one paragraph of rationale. Then write the complete new text of the
region between these lines:

BEGIN REGION region_name
the whole new region text
END REGION

Keep the region valid Lua. Nothing outside the regions may change.]]
-- @end

S.system = "You analyse a synthetic-data pipeline's failures and edit its recipe."

S.propose = common.proposer(S)

return S

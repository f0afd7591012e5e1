-- Routing: the agent idle the longest gets the conversation (the same
-- choice as the built-in policy, written as a script).
local pick = require "pick"

local M = {}

---@param conversation sb.Conversation
---@param candidates sb.Agent[]
---@param ctx sb.RouteContext
---@return string|nil
function M.route(conversation, candidates, ctx)
  local a = pick.longest_idle(candidates)
  return a and a.id
end

M.tests = {
  picks_the_longest_idle = function()
    local c = {
      { id = "a", idle_since = 20, load = 0, skill = {} },
      { id = "b", idle_since = 10, load = 1, skill = {} },
    }
    assert(M.route({}, c, {}) == "b")
  end,
}

return M

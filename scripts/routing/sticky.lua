-- Sticky routing: the customer's last agent when it is a candidate, else
-- the agent idle the longest.
local pick = require "pick"

local M = {}

---@param conversation sb.Conversation
---@param candidates sb.Agent[]
function M.route(conversation, candidates, ctx)
  local last = conversation.last_agent
  if last ~= nil then
    for i = 1, #candidates do
      if candidates[i].id == last then return last end
    end
  end
  local a = pick.longest_idle(candidates)
  return a and a.id
end

M.tests = {
  returns_to_the_last_agent = function()
    local c = { { id = "a", idle_since = 1, load = 0 }, { id = "b", idle_since = 9, load = 0 } }
    assert(M.route({ last_agent = "b" }, c, {}) == "b")
    assert(M.route({}, c, {}) == "a")
  end,
}

return M

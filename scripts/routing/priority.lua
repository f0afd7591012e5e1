-- Priority routing: VIP customers (CAD `vip` = "true") are offered to
-- agents with the `vip` skill first, then to anyone; other customers go to
-- agents without the `vip` skill first, keeping VIP agents free.
local pick = require "pick"

local M = {}

local function ranked(candidates, first)
  local a, b = {}, {}
  for i = 1, #candidates do
    local c = candidates[i]
    if first(c) then a[#a + 1] = c else b[#b + 1] = c end
  end
  local by_idle = function(x, y)
    if x.idle_since ~= y.idle_since then return x.idle_since < y.idle_since end
    return x.id < y.id
  end
  table.sort(a, by_idle)
  table.sort(b, by_idle)
  local out = {}
  for _, c in ipairs(a) do out[#out + 1] = c.id end
  for _, c in ipairs(b) do out[#out + 1] = c.id end
  return out
end

---@param conversation sb.Conversation
---@param candidates sb.Agent[]
function M.route(conversation, candidates, ctx)
  if conversation.cad.vip == "true" then
    return ranked(candidates, function(c) return c.skill.vip == true end)
  end
  return ranked(candidates, function(c) return not c.skill.vip end)
end

M.tests = {
  vip_goes_to_vip_agents_first = function()
    local c = {
      { id = "a", idle_since = 1, skill = {} },
      { id = "v", idle_since = 5, skill = { vip = true } },
    }
    assert(M.route({ cad = { vip = "true" } }, c, {})[1] == "v")
    assert(M.route({ cad = {} }, c, {})[1] == "a")
  end,
}

return M

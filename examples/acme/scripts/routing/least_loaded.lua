-- Acme's policy: the agent with the fewest conversations for its capacity;
-- Spanish speakers (CAD `language` = "es") to agents with the `es` skill
-- first. Questions mentioning a "refund" join the support queue.
local M = {}

---@param conversation sb.Conversation
---@return string|nil
function M.entry(conversation)
  if string.find(string.lower(conversation.preview), "refund", 1, true) then
    return "support"
  end
  return nil
end

---@param conversation sb.Conversation
---@param candidates sb.Agent[]
---@param ctx sb.RouteContext
---@return string[]
function M.route(conversation, candidates, ctx)
  local spanish = conversation.cad.language == "es"
  local list = {}
  for i = 1, #candidates do list[i] = candidates[i] end
  table.sort(list, function(a, b)
    if spanish and (a.skill.es ~= b.skill.es) then return a.skill.es == true end
    local ra, rb = a.load / a.capacity, b.load / b.capacity
    if ra ~= rb then return ra < rb end
    return a.id < b.id
  end)
  local ids = {}
  for i, a in ipairs(list) do ids[i] = a.id end
  sb.log.info("ranked " .. #ids .. " agents for conversation " .. conversation.id)
  return ids
end

M.tests = {
  least_loaded_first = function()
    local c = {
      { id = "a", load = 2, capacity = 4, skill = {} },
      { id = "b", load = 1, capacity = 4, skill = { es = true } },
    }
    assert(M.route({ id = 1, cad = {} }, c, {})[1] == "b")
    assert(M.entry({ preview = "I want a REFUND" }) == "support")
  end,
}

return M

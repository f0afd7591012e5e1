-- Routing by skills: the conversation's language (CAD `language`) and tags
-- (CAD `tags`, comma-separated) are skills the agent must have. Agents with
-- every skill come first, longest idle first; when none has them all, any
-- candidate will do. Entry: CAD `topic` = billing goes to the billing queue.
local pick = require "pick"

local M = {}

local function wanted(conversation)
  local w = pick.words(conversation.cad.tags)
  local lang = conversation.cad.language
  if lang ~= nil and lang ~= "" then w[#w + 1] = string.lower(lang) end
  return w
end

---@param conversation sb.Conversation
function M.entry(conversation)
  if conversation.cad.topic == "billing" then return "billing" end
  return nil
end

---@param conversation sb.Conversation
---@param candidates sb.Agent[]
function M.route(conversation, candidates, ctx)
  local w = wanted(conversation)
  local a = pick.longest_idle(candidates, w) or pick.longest_idle(candidates)
  return a and a.id
end

M.tests = {
  prefers_the_skilled_agent = function()
    local c = {
      { id = "a", idle_since = 1, load = 0, skill = { en = true } },
      { id = "b", idle_since = 5, load = 0, skill = { en = true, fr = true } },
    }
    assert(M.route({ cad = { language = "fr" } }, c, {}) == "b")
    assert(M.route({ cad = {} }, c, {}) == "a")
  end,
}

return M

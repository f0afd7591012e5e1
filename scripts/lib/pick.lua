-- Helpers shared by the bundled routing policies (require "pick").
local pick = {}

--- The candidate idle the longest (ties: lower load, then id), or nil.
---@param candidates sb.Agent[]
---@param accept? fun(agent: sb.Agent): boolean
---@return sb.Agent|nil
function pick.longest_idle(candidates, accept)
  local best
  for i = 1, #candidates do
    local a = candidates[i]
    if accept == nil or accept(a) then
      if best == nil
        or a.idle_since < best.idle_since
        or (a.idle_since == best.idle_since and (a.load < best.load
          or (a.load == best.load and a.id < best.id))) then
        best = a
      end
    end
  end
  return best
end

--- Whether `agent` has every skill in `wanted`.
---@param agent sb.Agent
---@param wanted string[]
function pick.has_all(agent, wanted)
  for _, s in ipairs(wanted) do
    if not agent.skill[s] then return false end
  end
  return true
end

--- The comma- or space-separated words of `s` (nil gives {}).
---@param s string|nil
---@return string[]
function pick.words(s)
  local out = {}
  if s == nil then return out end
  for w in string.gmatch(s, "[^,%s]+") do out[#out + 1] = string.lower(w) end
  return out
end

return pick

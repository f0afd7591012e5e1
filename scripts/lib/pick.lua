-- Helpers shared by the bundled routing policies (require "pick").
-- Routing runs on every offer: without a filter function the scan is done
-- by the host (sb.pick); the Lua loop reads each candidate's fields once
-- and keeps the best one's in locals.
local pick = {}

--- The candidate idle the longest (ties: lower load, then id), or nil.
--- `accept`, when given, filters candidates: a list of skills the agent
--- must all have (done by the host, `sb.pick.longest_idle`: the fast
--- way), or a function.
---@param candidates sb.Agent[]
---@param accept? string[]|fun(agent: sb.Agent): boolean
---@return sb.Agent|nil
function pick.longest_idle(candidates, accept)
  if accept == nil or type(accept) == "table" then
    return sb.pick.longest_idle(candidates, accept)
  end
  local best, best_idle, best_load
  for i = 1, #candidates do
    local a = candidates[i]
    local idle = a.idle_since
    if (best == nil or idle <= best_idle) and accept(a) then
      local load = a.load
      if best == nil or idle < best_idle
        or load < best_load or (load == best_load and a.id < best.id) then
        best, best_idle, best_load = a, idle, load
      end
    end
  end
  return best
end

--- Whether `agent` has every skill in `wanted`.
---@param agent sb.Agent
---@param wanted string[]
function pick.has_all(agent, wanted)
  local skill = agent.skill
  for i = 1, #wanted do
    if not skill[wanted[i]] then return false end
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

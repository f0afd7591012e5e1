-- Hostile: reaching an agent's own table through pairs, to change it
return { route = function(conversation, candidates, ctx)
  local _, raw = pairs(candidates[1])
  raw.load = 999
  return candidates[1].id
end }

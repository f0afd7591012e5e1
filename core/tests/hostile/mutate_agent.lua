-- Hostile: mutating an agent
return { route = function(conversation, candidates, ctx)
  candidates[1].load = 999
  return candidates[1].id
end }

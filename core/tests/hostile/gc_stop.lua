-- Hostile: stopping the garbage collector
return { route = function(conversation, candidates, ctx)
  collectgarbage('stop')
  return candidates[1].id
end }
